"""Rules a person would keep, inferred from a Profile, written as commented YAML.

For each column: ``not_null`` when it has no NULL (with ``mostly``, the present share rounded
down to a percent, when at most MOSTLY_NULLS of it is NULL); ``unique`` for a candidate key; a
range for numbers, dates and timestamps (min and max rounded outward: two significant
digits of the larger magnitude, whole months, whole days); for strings an ``IN`` set
when there are few distinct values, else a ``regexp_matches`` pattern when one fits
(patterns.py), else a ``length`` range; and ``row_count`` bounds (half and twice the rows
seen). Each rule carries the comment that says what it was inferred from.

This module only proposes; api.suggest runs the proposals on the data they came from and
keeps those that pass (a candidate key with a duplicate, say, is dropped and reported).
"""
from __future__ import annotations

import calendar
import datetime as dt
import decimal
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .state import LOW_CARDINALITY, ColumnProfile
from .summary import Profile

MOSTLY_NULLS = 0.10      # a column with at most this share of NULLs gets `not_null` with `mostly`
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
# words DuckDB reserves that make a plain column name unreadable as one
_RESERVED = {"all", "and", "any", "as", "asc", "between", "by", "case", "cast", "check", "column",
             "create", "default", "desc", "distinct", "else", "end", "false", "for", "from", "group",
             "having", "in", "is", "join", "like", "limit", "not", "null", "on", "or", "order",
             "select", "table", "then", "to", "true", "union", "unique", "user", "when", "where", "with"}


@dataclass
class Suggestion:
    rule: dict            # a rule as the rules file holds it
    why: str              # what it was inferred from (its comment)

    @property
    def name(self) -> str:
        return self.rule["name"]


def suggestions(profile: Profile) -> list[Suggestion]:
    """Every rule the profile supports, row_count first, then column by column."""
    out = [_row_count(profile.rows)] if profile.rows else []
    for column in profile.columns:
        out += _for_column(column)
    taken: set[str] = set()
    for s in out:                         # column names that differ only in odd characters
        name, k = s.rule["name"], 2
        while name in taken:
            name, k = f"{s.rule['name']}_{k}", k + 1
        taken.add(name)
        s.rule["name"] = name
    return out


def rule_name(column: str, what: str) -> str:
    """`<column>_<what>`, the column's name reduced to letters, digits and underscores."""
    word = re.sub(r"[^A-Za-z0-9_]+", "_", column).strip("_")[:100] or "column"
    return f"{word}_{what}"


def _row_count(rows: int) -> Suggestion:
    lo, hi = _round_out(rows / 2, rows * 2)
    return Suggestion({"name": "row_count_expected", "row_count": {"between": [int(lo), int(hi)]}},
                      f"{rows:,} rows; bounds at half and twice that, rounded outward")


def _for_column(c: ColumnProfile) -> list[Suggestion]:
    nonnull = c.rows - c.nulls
    if nonnull == 0 or c.kind in ("other", "null"):
        return []
    found: list[Suggestion] = []
    col = quote_ident(c.name)
    if c.nulls == 0:
        found.append(Suggestion({"name": rule_name(c.name, "not_null"), "not_null": c.name},
                                f"no NULL in {c.rows:,} rows"))
    elif c.null_fraction <= MOSTLY_NULLS:
        present = math.floor((1 - c.null_fraction) * 100) / 100
        found.append(Suggestion({"name": rule_name(c.name, "mostly_present"), "not_null": c.name,
                                 "mostly": present},
                                f"{c.nulls:,} NULLs in {c.rows:,} rows ({c.null_fraction:.2%}); "
                                "the present share rounded down to a percent"))
    if c.candidate_key and c.kind in ("integer", "string", "decimal", "date", "timestamp"):
        how = "exactly" if c.distinct_exact else "by HyperLogLog estimate"
        found.append(Suggestion({"name": rule_name(c.name, "unique"), "unique": [c.name]},
                                f"{c.distinct:,} distinct values ({how}) in {nonnull:,} rows, no NULL"))
    if c.kind == "string":
        found += _for_strings(c, col)
    else:
        found += _for_range(c, col)
    return found


def _for_strings(c: ColumnProfile, col: str) -> list[Suggestion]:
    nonnull = c.rows - c.nulls
    if c.values is not None and len(c.values) <= LOW_CARDINALITY and nonnull >= 2 * len(c.values) \
            and not c.candidate_key:
        listed = ", ".join(sql_string(v) for v in c.values)
        return [Suggestion({"name": rule_name(c.name, "known_values"), "check": f"{col} IN ({listed})"},
                           f"{len(c.values)} distinct values in {nonnull:,} non-NULL rows")]
    if c.pattern is not None:
        check = f"regexp_matches({col}, {sql_string(c.pattern)})"
        return [Suggestion({"name": rule_name(c.name, "pattern"), "check": check},
                           f"every value's characters, position by position; "
                           f"lengths {c.length[0]} to {c.length[1]}")]
    if c.length is not None:
        lo, hi = c.length
        return [Suggestion({"name": rule_name(c.name, "length"), "check": f"length({col}) BETWEEN {lo} AND {hi}"},
                           f"shortest value {lo} characters, longest {hi}")]
    return []


def _for_range(c: ColumnProfile, col: str) -> list[Suggestion]:
    if c.min is None or c.max is None or c.nan:
        return []                         # NaN sorts above every number: no range holds it
    seen = f"min {_text(c.min)}, max {_text(c.max)}"
    if c.kind in ("integer", "float", "decimal"):
        lo, hi = _round_out(c.min, c.max)
        if c.kind == "integer":          # rounded past BIGINT's range: the value seen is the bound
            lo = int(lo) if lo >= -2 ** 63 else c.min
            hi = int(hi) if hi < 2 ** 63 else c.max
        check = f"{col} BETWEEN {_number(lo)} AND {_number(hi)}"
        return [Suggestion({"name": rule_name(c.name, "range"), "check": check}, f"{seen}, rounded outward")]
    if c.kind == "date":
        lo, hi = c.min.replace(day=1), _month_end(c.max)
        return [Suggestion({"name": rule_name(c.name, "range"),
                            "check": f"{col} BETWEEN DATE '{lo.isoformat()}' AND DATE '{hi.isoformat()}'"},
                           f"{seen}, whole months")]
    if c.kind == "timestamp":
        zoned = c.min.tzinfo is not None          # compared as UTC instants, so bounded in UTC days
        first, last = (c.min.astimezone(dt.timezone.utc), c.max.astimezone(dt.timezone.utc)) if zoned \
            else (c.min, c.max)
        try:
            lo = dt.datetime.combine(first.date(), dt.time(), first.tzinfo)
            hi = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), last.tzinfo)
        except OverflowError:                     # the last day Python can write: no upper day
            return []
        typ = "TIMESTAMPTZ" if zoned else "TIMESTAMP"
        return [Suggestion({"name": rule_name(c.name, "range"),
                            "check": f"{col} >= {typ} '{_stamp(lo)}' AND {col} < {typ} '{_stamp(hi)}'"},
                           f"{seen}, whole days" + (" (UTC)" if zoned else ""))]
    return []


# --- numbers, names, literals ------------------------------------------------------------

def _round_out(lo: Any, hi: Any) -> tuple[decimal.Decimal, decimal.Decimal]:
    """lo rounded down and hi up to two significant digits of the larger magnitude (a whole
    number step at least for magnitudes of 10 and more); a bound never crosses zero."""
    lo, hi = decimal.Decimal(str(lo)), decimal.Decimal(str(hi))
    big = max(abs(lo), abs(hi))
    if big == 0:
        return lo, hi
    step = decimal.Decimal(10) ** (big.adjusted() - 1)
    down = (lo / step).to_integral_value(rounding=decimal.ROUND_FLOOR) * step
    up = (hi / step).to_integral_value(rounding=decimal.ROUND_CEILING) * step
    return down, up


def _number(v: Any) -> str:
    if isinstance(v, decimal.Decimal):
        text = format(v.normalize(), "f")
        return text if text != "-0" else "0"
    return str(v)


def _month_end(d: dt.date) -> dt.date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _stamp(t: dt.datetime) -> str:
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    return text + "+00" if t.tzinfo is not None else text


def _text(v: Any) -> str:
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v)) if math.isfinite(v) else str(v)
    return f"{v:,}" if isinstance(v, int) else str(v)


def quote_ident(name: str) -> str:
    """A column name as SQL reads it: plain when it is a plain lower-case word."""
    if _IDENT.fullmatch(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- YAML ---------------------------------------------------------------------------------

def rules_yaml(kept: list[Suggestion], dropped: list[tuple[Suggestion, str]], profile: Profile) -> str:
    """The rules file: a header, each rule as a one-line mapping under its comment, and the
    rules that did not pass, as comments."""
    more = len(profile.sources) - 3
    where = ", ".join(profile.sources[:3]) + (f" and {more} more files" if more > 0 else "") \
        if profile.sources else "a table"
    lines = [f"# Rules suggested by `batchaot suggest` from {where}",
             f"# ({profile.rows:,} rows, {len(profile.columns)} columns). Each rule passed on that data",
             "# when this file was written, and its comment says what it was inferred from.",
             "# They describe the data as it was, its defects included: review them before relying on them.",
             "rules:"]
    for s in kept:
        lines += [f"  # {s.why}", f"  - {_flow(s.rule)}"]
    if not kept:
        lines[-1] = "rules: []"
    if dropped:
        lines.append("# Inferred but not kept (they do not pass on the data):")
        lines += [f"#   {s.name}: {reason}" for s, reason in dropped]
    return "\n".join(lines) + "\n"


def _flow(value: Any, key: str | None = None) -> str:
    """A rule as a YAML flow mapping on one line, written as the rules files in jobs/ are:
    SQL in double quotes, plain words bare."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v, k)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str):
        plain = key != "check" and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value, ensure_ascii=False)
    return "null" if value is None else str(value)


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
