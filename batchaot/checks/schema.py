"""`schema: {columns: {order_id: int64, amount: "decimal(12,2)", status: string},
extra_columns: allow | forbid, nullable: {order_id: false}, exact: false}`.

What the data's schema must be: each listed column present with its type, no other
column when ``extra_columns: forbid``, and no NULL in a column declared ``nullable:
false``. Types are written as Arrow prints them (``int64``, ``timestamp[us, tz=UTC]``,
``decimal(12,2)``, ``list<item: int64>``) or as a family: ``string`` (also
large_string, string_view and dictionaries of strings), ``binary``, ``integer``,
``float``, ``number``, ``decimal``, ``date``, ``timestamp`` (any unit or zone), ``bool``.
Without ``exact: true`` a column matches its declared type also when it is
dictionary-encoded or a large/view variant of it; with it, only that exact Arrow type.

The structure is checked from the schema (Parquet: the footer) of every file before any
row is read (runtime/schema_gate.py); NULLs from the footers' statistics where every row
group has them, and by counting while the data is read otherwise (map/merge/finish,
like any dataset check). A failing schema check of severity error stops the run before
it reads rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from ..spec import RuleSpec
from .base import CheckBase, CheckOutcome, no_mostly, spec_error

EXAMPLE = 'schema: {columns: {order_id: int64, status: string}, extra_columns: forbid}'
BODY_KEYS = ("columns", "extra_columns", "nullable", "exact")
SHOWN_PROBLEMS = 20

_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_ALIASES = {"integer": None, "int": None, "bigint": "int64", "smallint": "int16", "tinyint": "int8",
            "double": "float64", "float8": "float64", "real": "float32", "float4": "float32",
            "boolean": "bool", "text": "string", "varchar": "string", "utf8": "string",
            "large_utf8": "large_string", "bytes": "binary", "blob": "binary"}
_DECIMAL = re.compile(r"decimal(?:128|256)?\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)


def _plain(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _family(name: str):
    """A predicate on (non-dictionary) Arrow types for a family name, or None."""
    string_view = getattr(pa.types, "is_string_view", lambda t: False)
    binary_view = getattr(pa.types, "is_binary_view", lambda t: False)
    families = {
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or string_view(t),
        "binary": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or binary_view(t)
        or pa.types.is_fixed_size_binary(t),
        "integer": pa.types.is_integer, "int": pa.types.is_integer,
        "float": pa.types.is_floating, "floating": pa.types.is_floating,
        "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
        "decimal": pa.types.is_decimal, "date": pa.types.is_date, "timestamp": pa.types.is_timestamp,
        "bool": pa.types.is_boolean, "boolean": pa.types.is_boolean,
        "list": lambda t: pa.types.is_list(t) or pa.types.is_large_list(t),
    }
    return families.get(name)


@dataclass(frozen=True)
class Expected:
    """One column's declared type: its text and how a type is matched."""

    text: str
    exact: bool

    def matches(self, t: pa.DataType) -> bool:
        name = self.text.strip().lower()
        if self.exact:
            return _arrow_name(t) == _canonical(name)
        t = _plain(t)
        m = _DECIMAL.fullmatch(name)
        if m:
            return pa.types.is_decimal(t) and (t.precision, t.scale) == (int(m[1]), int(m[2]))
        name = _ALIASES.get(name, name) or "integer"
        family = _family(name)
        if family is not None:
            return family(t)
        if name == "large_string":
            return _family("string")(t)
        if name == "large_binary":
            return _family("binary")(t)
        return _arrow_name(t) == _canonical(name)


def _canonical(name: str) -> str:
    """Arrow's spelling of a type name a user may write differently."""
    name = re.sub(r"\s+", " ", name)
    name = {"float64": "double", "float32": "float", "float16": "halffloat", "string": "string",
            "utf8": "string", "boolean": "bool", "date": "date32[day]", "date32": "date32[day]",
            "date64": "date64[ms]"}.get(name, name)
    m = _DECIMAL.fullmatch(name)
    return f"decimal128({m[1]}, {m[2]})" if m else name


def _arrow_name(t: pa.DataType) -> str:
    return re.sub(r"\s+", " ", str(t)).lower()


@dataclass
class SchemaPartial:
    rows: int = 0
    nulls: dict = field(default_factory=dict)      # column → NULL rows seen


class SchemaCheck(CheckBase):
    """Never refuses a schema (a missing column is what it reports); only a malformed
    body is an error of the rules file."""

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        no_mostly(spec)
        if "where" in spec.options:
            raise spec_error(spec, "'where' does not apply to a schema check (it describes every row)")
        body = spec.body
        if not isinstance(body, dict) or set(body) - set(BODY_KEYS) or not body:
            bad = [k for k in body if k not in BODY_KEYS] if isinstance(body, dict) else []
            raise spec_error(spec, f"'schema' takes {{{', '.join(BODY_KEYS)}}}, e.g. {EXAMPLE}"
                             + (f"; unknown field '{bad[0]}'" if bad else f"; got {body!r}"))
        exact = body.get("exact", False)
        if not isinstance(exact, bool):
            raise spec_error(spec, "schema 'exact' must be true or false")
        columns = body.get("columns", {}) or {}
        if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                     for k, v in columns.items()):
            raise spec_error(spec, "schema 'columns' must map column names to type names, e.g. "
                             "{order_id: int64, status: string}")
        self.expected = {k: Expected(v, exact) for k, v in columns.items()}
        extra = body.get("extra_columns", "allow")
        if extra not in ("allow", "forbid"):
            raise spec_error(spec, f"schema 'extra_columns' must be allow or forbid, got {extra!r}")
        self.forbid_extra = extra == "forbid"
        nullable = body.get("nullable", {}) or {}
        if not isinstance(nullable, dict) or not all(isinstance(v, bool) for v in nullable.values()):
            raise spec_error(spec, "schema 'nullable' must map column names to true or false, "
                             "e.g. {order_id: false}")
        self.not_null = [c for c, ok in nullable.items() if not ok]
        # what the runtime reads: the non-nullable columns this schema has (NULLs are counted)
        self.out_columns = [c for c in self.not_null if c in schema.names]
        self.found: dict[str, list[str]] = {}        # file → problems, set by the schema gate
        self.footer_nulls: dict[str, int] = {}       # column → NULLs the footers proved
        self.null_files: dict[str, list[str]] = {}   # file → its columns with NULLs (footers)

    def describe(self) -> str:
        cols = ", ".join(f"{k} {v.text}" for k, v in self.expected.items())
        parts = [f"columns {{{cols}}}" if cols else "", "no other columns" if self.forbid_extra else "",
                 f"no NULL in {', '.join(self.not_null)}" if self.not_null else "",
                 "exact types" if any(v.exact for v in self.expected.values()) else ""]
        return "schema: " + "; ".join(p for p in parts if p)

    def problems(self, schema: pa.Schema) -> list[str]:
        """What is wrong with `schema` (columns and types; NULLs are counted elsewhere)."""
        out = []
        for name, want in self.expected.items():
            if name not in schema.names:
                out.append(f"column '{name}' is missing")
            elif not want.matches(schema.field(name).type):
                out.append(f"column '{name}' is {schema.field(name).type}, expected {want.text}")
        if self.forbid_extra:
            extra = [n for n in schema.names if n not in self.expected]
            if extra:
                out.append(f"extra column(s) {', '.join(extra)} (extra_columns: forbid)")
        for name in self.not_null:
            if name not in schema.names and name not in self.expected:
                out.append(f"column '{name}' (declared not nullable) is missing")
        return out

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> SchemaPartial:
        return SchemaPartial(batch.num_rows, {c: batch.column(c).null_count for c in self.out_columns})

    def merge(self, partials: list[SchemaPartial]) -> SchemaPartial:
        nulls: dict[str, int] = {}
        for p in partials:
            for c, n in p.nulls.items():
                nulls[c] = nulls.get(c, 0) + n
        return SchemaPartial(sum(p.rows for p in partials), nulls)

    def finish(self, partial: SchemaPartial) -> CheckOutcome:
        found = dict(self.found) or {"<schema>": self.problems(self.schema)}
        nulls = {c: max(n, self.footer_nulls.get(c, 0)) for c, n in partial.nulls.items()}
        nulls.update({c: n for c, n in self.footer_nulls.items() if c not in nulls})
        return outcome(found, {c: n for c, n in nulls.items() if n}, partial.rows, self.null_files)


def outcome(found: dict[str, list[str]], nulls: dict[str, int], rows: int,
            null_files: dict[str, list[str]] | None = None) -> CheckOutcome:
    """A schema check's outcome from the problems per file and NULLs per column."""
    bad_files = {f: p for f, p in found.items() if p}
    problems = sorted({p for ps in bad_files.values() for p in ps})
    problems += [f"column '{c}' has {n:,} NULL(s) (nullable: false)" for c, n in nulls.items()]
    details: dict = {"problems": problems[:SHOWN_PROBLEMS]}
    if len(found) > 1 or "<schema>" not in found:
        details["files_checked"] = len(found)
        if bad_files:
            details["files_failing"] = {f: p for f, p in list(bad_files.items())[:SHOWN_PROBLEMS]}
        if len(bad_files) > SHOWN_PROBLEMS:
            details["more_files_failing"] = len(bad_files) - SHOWN_PROBLEMS
    if nulls:
        details["null_rows"] = sum(nulls.values())
        details["nulls"] = nulls
    if null_files:
        details["files_with_nulls"] = dict(list(null_files.items())[:SHOWN_PROBLEMS])
    if problems:
        details["note"] = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    return CheckOutcome(passed=not problems, violations=0, rows=rows, value=len(problems), details=details)
