"""String expressions evaluated with pyarrow.compute: the reference for every form.

``evaluate`` gives the value of a string SExpr (compiler/ir.py's forms and the SQL
string functions below) for each string of an array; it follows DuckDB, NULLs
included. The compiler folds constant string expressions with it; the engine builds
lookup tables with it per distinct value (engine/strings/, whose Numba kernels take
the common shapes faster and give the same answers).
"""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..io import arrays
from . import sqltext

_CMP = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal,
        "gt": pc.greater, "ge": pc.greater_equal}
_ARROW_TYPES = {"bigint": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(),
                "date": pa.date32(), "varchar": pa.string()}
_TS_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def like_to_regex(pattern: str, escape: str | None) -> str:
    """SQL LIKE → an anchored RE2 pattern (no escape character unless one is given)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "(?s)^" + "".join(out) + "$"


def arrow_type(kind: str, scale: int) -> pa.DataType:
    if kind == "decimal":
        return pa.decimal128(18, scale)
    if kind == "timestamp":
        return pa.timestamp(_TS_UNITS[scale])
    if kind == "double" and scale == 32:
        return pa.float32()                  # DuckDB's FLOAT
    return _ARROW_TYPES[kind]


def evaluate(e: list, values: pa.Array) -> pa.Array | pa.Scalar:
    """Value of SExpr `e` for each string in `values`.

    Besides compiler/ir.py's forms: ["concat", [e, ...], skip_nulls], ["trim", e, chars,
    side], ["substr", e, start, length], ["replace", e, old, new], ["contains" |
    "ends_with" | "strpos" | "regexp_full", e, literal], ["nullif", a, b],
    ["extreme", "max" | "min", [e, ...]], ["distinct", a, b], ["cast", e, kind, scale,
    safe, int type name, decimal precision]; ["joint", ...] tables need two columns
    (joint_lut). Every one follows DuckDB, NULLs included (tests/test_sql_functions.py
    checks them value by value against DuckDB)."""
    tag = e[0]
    if tag == "col":
        return values
    if tag == "lit":
        return pa.scalar(e[1], pa.string())
    if tag in ("lower", "upper"):
        return (pc.utf8_lower if tag == "lower" else pc.utf8_upper)(evaluate(e[1], values))
    if tag == "length":
        return pc.cast(pc.utf8_length(evaluate(e[1], values)), pa.int64())
    if tag == "like":
        _, arg, pattern, ci, escape = e
        return pc.match_substring_regex(evaluate(arg, values), like_to_regex(pattern, escape),
                                        ignore_case=bool(ci))
    if tag == "regexp":
        return _regexp(evaluate(e[1], values), e[2])
    if tag == "starts_with":
        return pc.starts_with(evaluate(e[1], values), e[2])
    if tag == "cmp":
        return _CMP[e[1]](evaluate(e[2], values), evaluate(e[3], values))
    if tag == "in":
        return _is_in(evaluate(e[1], values), e[2])
    if tag == "isnull":
        return pc.is_null(evaluate(e[1], values))
    if tag == "coalesce":
        return pc.coalesce(*[evaluate(x, values) for x in e[1]])
    if tag == "cast":
        return _cast(evaluate(e[1], values), *e[2:])
    fn = _FUNCTIONS.get(tag)
    if fn is None:
        raise ValueError(f"unknown string expression {tag!r}")
    return fn(e, values)


def _regexp(arr, pattern: str):
    try:
        return pc.match_substring_regex(arr, pattern)
    except pa.ArrowInvalid as exc:
        raise DataError(f"invalid regular expression {pattern!r}: {exc}") from None


def _null(typ: pa.DataType) -> pa.Scalar:
    """A NULL of `typ` without pa.scalar() (which imports pandas: io/arrays.py)."""
    return pa.nulls(1, typ)[0]


def _is_in(arr, items: list):
    """SQL IN: TRUE on a match; else NULL if the list holds a NULL; NULL input → NULL."""
    present = [x for x in items if x is not None]
    hit = pc.is_in(arr, value_set=arrays.strings(present))
    if len(present) < len(items):
        hit = pc.if_else(hit, True, _null(pa.bool_()))
    return pc.if_else(pc.is_null(arr), _null(pa.bool_()), hit)


def _cast(arr, kind: str, scale: int, safe: bool = True, type_name: str | None = None,
          precision: int = 18) -> pa.Array:
    """CAST of strings as DuckDB's TRY_CAST: NULL where the text does not parse (a plain
    CAST too: sqltext.py says why). `type_name`: the SQL integer type, whose range
    the value must fit; `precision`: a DECIMAL's."""
    if isinstance(arr, pa.Scalar):
        arr = pa.array([arr.as_py()], pa.string())
    return sqltext.cast_strings(arr, kind, scale, type_name, precision)


# -- SQL string functions, per distinct value (pyarrow.compute) ----------------------------
# Each takes the SExpr and the values; NULL in gives NULL out unless DuckDB says otherwise
# (concat skips NULLs; IS DISTINCT FROM is never NULL).

def broadcast(x, n: int) -> pa.Array:
    """A scalar broadcast to n rows (several kernels mishandle all-scalar arguments)."""
    if isinstance(x, pa.Scalar):
        return pa.array([x.as_py()] * n, x.type)
    return x


def _args(e: list, values: pa.Array) -> list:
    return [broadcast(evaluate(x, values), len(values)) for x in e]


def _concat(e: list, values: pa.Array):
    """["concat", [e, ...], skip_nulls]: concat() skips NULLs (all NULL gives ''),
    `||` is NULL when any part is."""
    parts = _args(e[1], values)
    if e[2]:
        parts = [pc.fill_null(p, "") for p in parts]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def _trim(e: list, values: pa.Array):
    """["trim", e, characters | None, side]: without characters DuckDB trims spaces only."""
    _, arg, chars, side = e
    fn = {"both": pc.utf8_trim, "left": pc.utf8_ltrim, "right": pc.utf8_rtrim}[side]
    return fn(evaluate(arg, values), characters=" " if chars is None else chars)


def _substr(e: list, values: pa.Array):
    """["substr", e, start, length | None], DuckDB's rules: 1-based; start < 0 counts from
    the end; start 0 is one before the first character; a negative length takes the
    characters before start. Out-of-range parts are clipped (possibly to '')."""
    _, arg, start, length = e
    arr = evaluate(arg, values)
    length = None if length is None else max(min(length, 2 ** 40), -(2 ** 40))
    start = max(min(start, 2 ** 40), -(2 ** 40))
    if start > 0:
        first = start - 1
    elif start < 0:
        first = start                      # from the end: python's negative index
    else:
        first = -1
    if length is None:
        if start == 0:
            return pc.utf8_slice_codeunits(arr, 0)
        return pc.utf8_slice_codeunits(arr, first)
    if length == 0:
        return _empty_like(arr)
    if start >= 0:
        lo, hi = (first, first + length) if length > 0 else (first + length, first)
        if hi <= 0:
            return _empty_like(arr)
        return pc.utf8_slice_codeunits(arr, max(lo, 0), hi)
    lo, hi = (start, start + length) if length > 0 else (start + length, start)
    return pc.utf8_slice_codeunits(arr, lo, hi if hi < 0 else 2 ** 62)


def _empty_like(arr):
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), pa.scalar("", pa.string()))


def _replace(e: list, values: pa.Array):
    _, arg, old, new = e
    arr = evaluate(arg, values)
    if old == "":                          # DuckDB: nothing to replace (pyarrow would loop)
        return arr
    return pc.replace_substring(arr, pattern=old, replacement=new)


def _contains(e: list, values: pa.Array):
    return pc.match_substring(evaluate(e[1], values), e[2])


def _ends_with(e: list, values: pa.Array):
    return pc.ends_with(evaluate(e[1], values), e[2])


def _strpos(e: list, values: pa.Array):
    """["strpos", e, needle]: 1-based position in characters of the first match, 0 if none."""
    arr = broadcast(evaluate(e[1], values), len(values))
    needle = e[2]
    if needle == "":
        return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.int64()), pa.scalar(1, pa.int64()))
    found = pc.match_substring(arr, needle)
    head = pc.list_element(pc.split_pattern(arr, needle, max_splits=1), 0)
    pos = pc.add(pc.cast(pc.utf8_length(head), pa.int64()), 1)
    return pc.if_else(found, pos, pa.scalar(0, pa.int64()))


def full_match_regex(pattern: str) -> str:
    """regexp_full_match: the pattern must match the whole string."""
    return "^(?:" + pattern + ")$"


def _regexp_full(e: list, values: pa.Array):
    return _regexp(evaluate(e[1], values), full_match_regex(e[2]))


def _nullif(e: list, values: pa.Array):
    a, b = _args(e[1:3], values)
    same = pc.fill_null(pc.equal(a, b), False)
    return pc.if_else(same, _null(a.type), a)


def _extreme(e: list, values: pa.Array):
    """["extreme", "max" | "min", [e, ...]]: greatest / least, skipping NULLs (bytewise
    order, as DuckDB compares strings)."""
    fn = pc.max_element_wise if e[1] == "max" else pc.min_element_wise
    return fn(*_args(e[2], values), skip_nulls=True)


def _distinct(e: list, values: pa.Array):
    """["distinct", a, b]: a IS DISTINCT FROM b (never NULL)."""
    a, b = _args(e[1:3], values)
    return pc.fill_null(pc.not_equal(a, b), pc.xor(pc.is_null(a), pc.is_null(b)))


def _joint(e: list, values: pa.Array):
    raise DataError("comparing string expressions of two columns needs the engine's joint "
                    "lookup tables (strings.joint_lut), which this engine does not build")


_FUNCTIONS = {"concat": _concat, "trim": _trim, "substr": _substr, "replace": _replace,
              "contains": _contains, "ends_with": _ends_with, "strpos": _strpos,
              "regexp_full": _regexp_full, "nullif": _nullif, "extreme": _extreme,
              "distinct": _distinct, "joint": _joint}
