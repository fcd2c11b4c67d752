"""String expressions, evaluated once per distinct value with pyarrow.compute.

A Program's LUT instruction indexes a table built here from a column's dictionary:
entry i is the expression's value for dictionary value i, and one extra last entry
holds its value for a NULL input. So a predicate over 10M rows with 5 distinct
statuses costs 6 evaluations, never a Python object per row.
"""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError

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
    return _ARROW_TYPES[kind]


def evaluate(e: list, values: pa.Array) -> pa.Array | pa.Scalar:
    """Value of SExpr `e` for each string in `values`."""
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
        return _cast(evaluate(e[1], values), e[2], e[3], e[4])
    raise ValueError(f"unknown string expression {tag!r}")


def _regexp(arr, pattern: str):
    try:
        return pc.match_substring_regex(arr, pattern)
    except pa.ArrowInvalid as exc:
        raise DataError(f"invalid regular expression {pattern!r}: {exc}") from None


def _is_in(arr, items: list):
    """SQL IN: TRUE on a match; else NULL if the list holds a NULL; NULL input → NULL."""
    present = [x for x in items if x is not None]
    hit = pc.is_in(arr, value_set=pa.array(present, pa.string()))
    if len(present) < len(items):
        hit = pc.if_else(hit, True, pa.scalar(None, pa.bool_()))
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.bool_()), hit)


def _cast(arr: pa.Array, kind: str, scale: int, safe: bool) -> pa.Array:
    target = arrow_type(kind, scale)
    trimmed = pc.utf8_trim_whitespace(arr)
    if kind == "boolean":
        low = pc.utf8_lower(trimmed)
        truthy = pc.is_in(low, value_set=pa.array(["true", "t", "1", "yes", "y"]))
        falsy = pc.is_in(low, value_set=pa.array(["false", "f", "0", "no", "n"]))
        bad = pc.and_not(pc.invert(truthy), falsy)
        out = pc.if_else(truthy, True, pc.if_else(falsy, False, pa.scalar(None, pa.bool_())))
        if not safe and pc.any(pc.and_kleene(bad, pc.is_valid(arr))).as_py():
            raise DataError(f"CAST to BOOLEAN failed for '{_first_bad(arr, bad)}'; use TRY_CAST to get NULL")
        return out
    try:
        return pc.cast(trimmed, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for v in trimmed.to_pylist():  # per distinct value, not per row
        try:
            out.append(pc.cast(pa.array([v], pa.string()), target)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if not safe:
                raise DataError(f"CAST of '{v}' to {kind.upper()} failed; use TRY_CAST to get NULL") from None
            out.append(None)
    return pa.array(out, target)


def _first_bad(arr: pa.Array, bad: pa.Array) -> str:
    return pc.filter(arr, pc.fill_null(bad, False))[0].as_py()
