"""`freshness: {column: updated_at, max_age: 36h}`: the newest value is recent enough.

Passes when ``max(column)`` is at most ``max_age`` before the run's "now"
(compiler/clock.py: fixed once per run, or by ``--now`` / ``now:``). The column is a
timestamp (any unit, with or without a time zone: a naive timestamp is read as UTC) or a
date (read as midnight UTC of that day). ``max_age`` is a number and a unit: ``90s``,
``90m``, ``36h``, ``7d``, ``2w``, or a sum such as ``1d12h``.

NULLs are ignored, as by SQL's max(); with no non-NULL value at all (empty data, every
row NULL, or no row passing ``where``) nothing shows the data is fresh, so the check
fails and its details say why. A newest value after "now" counts as fresh (its age is
negative; details show it). Like an aggregate, it is a fact about the dataset: it fails
with no violating rows.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..compiler import clock
from ..errors import RuleError
from ..spec import RuleSpec
from .base import CheckBase, CheckOutcome, no_mostly, resolve_column, spec_error

EXAMPLE = "freshness: {column: updated_at, max_age: 36h}"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_US = 1_000_000


@dataclass
class FreshnessPartial:
    rows: int = 0
    nonnull: int = 0
    latest: int | None = None      # microseconds since 1970 UTC


def parse_age(spec: RuleSpec, value) -> int:
    """`max_age` in seconds."""
    if isinstance(value, str):
        pos, total = 0, 0.0
        text = value.strip()
        while pos < len(text):
            m = _AGE.match(text, pos)
            if not m:
                break
            total += float(m[1]) * UNITS[m[2].lower()]
            pos = m.end()
        if text and pos == len(text) and total > 0:
            return int(round(total))
    raise spec_error(spec, f"'max_age' must be a positive duration such as 90m, 36h, 7d or 1d12h, "
                     f"got {value!r}")


def show_age(seconds: float) -> str:
    """36h, 1d 2h 5m, 45s: the largest units, at most three."""
    sign, left = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return sign + " ".join(parts[:3])


_PER_TICK = {"s": 1_000_000, "ms": 1_000, "us": 1}


def latest_micros(col: pa.Array) -> int | None:
    """max(col) in microseconds since 1970 UTC, from the integers themselves (a nanosecond
    timestamp Python's datetime cannot hold is rounded to its microsecond, half away from
    zero, as DuckDB casts TIMESTAMP_NS to TIMESTAMP)."""
    t = col.type
    if pa.types.is_timestamp(t):
        ticks = pc.max(col.cast(pa.int64())).as_py()
        if ticks is None or t.unit != "ns":
            return None if ticks is None else ticks * _PER_TICK[t.unit]
        return (abs(ticks) + 500) // 1000 * (1 if ticks >= 0 else -1)
    if pa.types.is_date32(t):
        days = pc.max(col.cast(pa.int32())).as_py()
        return None if days is None else days * 86_400_000_000
    ms = pc.max(col.cast(pa.int64())).as_py()          # date64: milliseconds
    return None if ms is None else ms * 1000


class FreshnessCheck(CheckBase):
    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        no_mostly(spec)
        body = spec.body
        if not isinstance(body, dict) or set(body) - {"column", "max_age"} or "max_age" not in body:
            raise spec_error(spec, f"'freshness' takes {{column: ..., max_age: ...}}, e.g. {EXAMPLE}; "
                             f"got {body!r}")
        self.column = resolve_column(spec, body.get("column"), schema)
        t = schema.field(self.column).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            raise RuleError(spec.name, f"freshness: column '{self.column}' is {t}; it needs a "
                            "timestamp or date column")
        self.type = t
        self.max_age_s = parse_age(spec, body["max_age"])
        self.max_age = body["max_age"] if isinstance(body["max_age"], str) else show_age(self.max_age_s)
        self.now = clock.now()              # the run's: fixed while the rules are compiled
        self.out_columns = [self.column]

    def describe(self) -> str:
        return f"freshness max({self.column}) within {self.max_age} of {clock.iso(self.now)}"

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> FreshnessPartial:
        sub, _ = self.rows_of(batch, first_row)
        col = sub.column(0)
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        nonnull = len(col) - col.null_count
        return FreshnessPartial(sub.num_rows, nonnull, latest_micros(col) if nonnull else None)

    def merge(self, partials: list[FreshnessPartial]) -> FreshnessPartial:
        found = [p.latest for p in partials if p.latest is not None]
        return FreshnessPartial(sum(p.rows for p in partials), sum(p.nonnull for p in partials),
                                max(found) if found else None)

    def finish(self, partial: FreshnessPartial) -> CheckOutcome:
        details = {"column": self.column, "now": clock.iso(self.now), "max_age": self.max_age,
                   "max_age_s": self.max_age_s, "rows": partial.rows, "non_null_rows": partial.nonnull}
        if partial.latest is None:
            details["note"] = ("no non-NULL value (empty data, every value NULL, or no row passing "
                               "'where'): nothing shows the data is fresh")
            return CheckOutcome(passed=False, violations=0, rows=partial.rows, value=None, details=details)
        age_us = clock.micros(self.now) - partial.latest
        latest = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=partial.latest)
        details.update(latest=clock.iso(latest), age=show_age(age_us / _US))
        if age_us < 0:
            details["note"] = "the newest value is after now"
        passed = age_us <= self.max_age_s * _US
        if not passed:
            details["note"] = (f"the newest {self.column} is {show_age(age_us / _US)} old, more than "
                               f"{self.max_age}: a dataset-level fact, no single row violates it")
        return CheckOutcome(passed=passed, violations=0, rows=partial.rows, value=age_us / _US,
                            details=details)
