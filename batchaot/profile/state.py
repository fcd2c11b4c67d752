"""One column's profile as a mergeable state: map a batch → merge states → finish.

A state holds, for the rows it saw: counts (rows, NULLs, NaNs), min and max, the exact
count of every distinct value while there are at most EXACT_DISTINCT of them (then a
HyperLogLog sketch, the one `approx_count_distinct` uses), string lengths, the
character-class state of patterns.py, and ordered *segments* for monotonicity. Merging is
associative and order-independent, so a profile over many units (and Ray workers) equals
the profile of the data read as one table (a sketch's estimate: within its error, as the
union of sketches depends a little on how the values were split).

Values are compared as DuckDB does: floats by value (-0.0 = 0.0, NaN = NaN; NaN is no
min or max and breaks monotonicity), strings bytewise, integers whatever their width.
Every step works on whole Arrow arrays (pyarrow.compute, numpy): nothing loops over rows
in Python (the sketch takes distinct values one by one, only past EXACT_DISTINCT).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..checks import keys
from ..checks.base import jsonable
from ..checks.aggregate import AggregatePartial, hll_sketch, hll_value, merge_hll
from . import patterns

# Distinct values counted exactly; past that, HyperLogLog. Every unit's partial travels to
# the driver and waits there for the others (checks' partials are merged at the end), so
# this bounds what a profile of many files holds: about 160 KB per column per unit.
EXACT_DISTINCT = 10_000
# A column whose estimated distinct count is within this of its rows may be a key (the
# sketch's standard error is about 0.8 %; `unique` decides before a rule is suggested).
KEY_TOLERANCE = 0.03
LOW_CARDINALITY = 20         # columns with at most this many distinct values list them
TOP = 10                     # top values shown


@dataclass
class Segment:
    """Consecutive rows of one source and what they say about order: their first and last
    non-NULL values and whether the values in between never decrease / always increase
    (and the reverse)."""

    order: tuple               # (source rank, source, first row): where the rows sit
    end: int                   # the row after the last
    first: Any = None
    last: Any = None
    flags: tuple = (True, True, True, True)     # non-decreasing, increasing, non-increasing, decreasing


@dataclass
class ColumnState:
    rows: int = 0
    nulls: int = 0
    nan: int = 0
    lo: Any = None
    hi: Any = None
    counts: pa.Table | None = None       # value (comparable form), count; None once past EXACT_DISTINCT
    sketch: bytes | None = None          # HLL of every value, once counts overflowed
    len_lo: int | None = None            # strings: shortest and longest, in characters
    len_hi: int | None = None
    shape: np.ndarray | None = None      # patterns.seen state (strings)
    segments: list[Segment] = field(default_factory=list)


def kind_of(t: pa.DataType) -> str:
    """What a column is, for profiling and for the rules suggested for it."""
    if pa.types.is_dictionary(t):
        return kind_of(t.value_type)
    for kind, test in (("boolean", pa.types.is_boolean), ("integer", pa.types.is_integer),
                       ("float", pa.types.is_floating), ("decimal", pa.types.is_decimal),
                       ("date", pa.types.is_date), ("timestamp", pa.types.is_timestamp),
                       ("null", pa.types.is_null)):
        if test(t):
            return kind
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return "other" if not keys.is_key_type(t) else "value"


ORDERED = ("integer", "float", "decimal", "date", "timestamp", "string")


# --- map ------------------------------------------------------------------------------

def map_column(col: pa.Array, order: tuple) -> ColumnState:
    """The state of one batch of a column; `order`: (source rank, source, first row)."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_float16(col.type):
        col = col.cast(pa.float32())           # exact; pyarrow's kernels have no halffloat
    kind = kind_of(col.type)
    state = ColumnState(rows=len(col), nulls=col.null_count)
    if kind in ("other", "null") or state.nulls == state.rows:
        state.counts = _empty_counts() if kind not in ("other", "null") else None
        if kind in ORDERED:
            state.segments = [Segment(order, order[2] + len(col))]
        return state
    values = col.drop_null() if col.null_count else col
    if kind == "float":
        is_nan = pc.is_nan(values)
        state.nan = int(pc.sum(is_nan).as_py() or 0)
        if state.nan:
            values = values.filter(pc.invert(is_nan))
    state.lo, state.hi = _min_max(values)
    distinct = pc.value_counts(keys.comparable(col).drop_null())
    table = pa.table({"value": distinct.field("values"), "count": distinct.field("counts")})
    if table.num_rows > EXACT_DISTINCT:
        state.sketch = hll_sketch(table.column("value").combine_chunks())
    else:
        state.counts = table
    if kind == "string":
        uniq = distinct.field("values")
        lengths = pc.min_max(pc.utf8_length(uniq))
        state.len_lo, state.len_hi = lengths["min"].as_py(), lengths["max"].as_py()
        state.shape = patterns.seen(uniq)
    if kind in ORDERED:
        state.segments = [_segment(values, order, len(col), broken=state.nan > 0)]
    return state


def _empty_counts() -> pa.Table:
    return pa.table({"value": pa.array([], pa.null()), "count": pa.array([], pa.int64())})


def _min_max(values: pa.Array) -> tuple[Any, Any]:
    if len(values) == 0:
        return None, None
    try:
        mm = pc.min_max(values)
    except pa.ArrowNotImplementedError:         # a type without an order (e.g. intervals)
        return None, None
    return _plain(mm["min"].as_py()), _plain(mm["max"].as_py())


def _plain(v: Any) -> Any:
    return v + 0.0 if isinstance(v, float) else v      # -0.0 as 0.0: every split prints the same


def _segment(values: pa.Array, order: tuple, rows: int, broken: bool) -> Segment:
    """Order flags of the non-NULL values of one batch (NaN breaks them all)."""
    seg = Segment(order, order[2] + rows)
    if len(values) == 0:
        return seg
    seg.first, seg.last = _plain(values[0].as_py()), _plain(values[-1].as_py())
    if broken:
        seg.flags = (False,) * 4
    elif len(values) > 1:
        a, b = values.slice(0, len(values) - 1), values.slice(1)
        seg.flags = tuple(bool(pc.all(fn(a, b)).as_py())
                          for fn in (pc.less_equal, pc.less, pc.greater_equal, pc.greater))
    return seg


# --- merge ----------------------------------------------------------------------------

def merge_states(states: list[ColumnState]) -> ColumnState:
    out = ColumnState(rows=sum(s.rows for s in states), nulls=sum(s.nulls for s in states),
                      nan=sum(s.nan for s in states))
    out.lo = min((s.lo for s in states if s.lo is not None), default=None)
    out.hi = max((s.hi for s in states if s.hi is not None), default=None)
    out.len_lo = min((s.len_lo for s in states if s.len_lo is not None), default=None)
    out.len_hi = max((s.len_hi for s in states if s.len_hi is not None), default=None)
    with_shape = [s for s in states if s.len_lo is not None]
    out.shape = patterns.merge([s.shape for s in with_shape]) if with_shape else None
    out.counts, out.sketch = _merge_distinct(states)
    out.segments = _fold(sorted((g for s in states for g in s.segments), key=lambda g: g.order),
                         contiguous_only=True)
    return out


def _merge_distinct(states: list[ColumnState]) -> tuple[pa.Table | None, bytes | None]:
    tables = [s.counts for s in states if s.counts is not None and s.counts.num_rows]
    sketches = [s.sketch for s in states if s.sketch is not None]
    if all(s.counts is None for s in states) and not sketches:
        return None, None                       # a column of a type without distinct values
    merged = tables[0] if len(tables) == 1 else _sum_counts(tables) if tables else None
    if not sketches and (merged is None or merged.num_rows <= EXACT_DISTINCT):
        return (merged if merged is not None else _empty_counts()), None
    if merged is not None and merged.num_rows:
        sketches.append(hll_sketch(merged.column("value").combine_chunks()))
    return None, merge_hll(sketches)


def _sum_counts(tables: list[pa.Table]) -> pa.Table:
    """Counts of the same value added up: the values dictionary-encoded, the counts summed
    per code (np.bincount; exact below 2^53 rows)."""
    values = pa.chunked_array([t.column("value").combine_chunks() for t in tables]).combine_chunks() \
        if len({t.schema.field("value").type for t in tables}) == 1 else \
        pa.concat_tables(tables, promote_options="permissive").column("value").combine_chunks()
    counts = np.concatenate([t.column("count").to_numpy() for t in tables])
    encoded = pc.dictionary_encode(values)
    sums = np.bincount(encoded.indices.to_numpy(), weights=counts, minlength=len(encoded.dictionary))
    return pa.table({"value": encoded.dictionary, "count": pa.array(sums.astype(np.int64))})


def _fold(segments: list[Segment], contiguous_only: bool) -> list[Segment]:
    """Adjacent segments folded into one (only rows that follow each other in one source
    when `contiguous_only`, so a merge never joins rows another partial sits between)."""
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if prev is not None and (not contiguous_only or
                                 (prev.order[:2] == seg.order[:2] and prev.end == seg.order[2])):
            out[-1] = _join(prev, seg)
        else:
            out.append(seg)
    return out


def _join(a: Segment, b: Segment) -> Segment:
    flags = tuple(x and y for x, y in zip(a.flags, b.flags))
    if a.last is not None and b.first is not None:
        try:
            step = (a.last <= b.first, a.last < b.first, a.last >= b.first, a.last > b.first)
        except TypeError:               # values of different types across files: no order
            step = (False,) * 4
        flags = tuple(x and y for x, y in zip(flags, step))
    return Segment(a.order, b.end, a.first if a.first is not None else b.first,
                   b.last if b.last is not None else a.last, flags)


# --- finish ---------------------------------------------------------------------------

@dataclass
class ColumnProfile:
    """What a profile says about one column (values as Python values of the column's type)."""

    name: str
    type: str
    kind: str
    rows: int
    nulls: int
    nan: int = 0
    min: Any = None
    max: Any = None
    distinct: int | None = None
    distinct_exact: bool = True
    distinct_upper: int | None = None   # approximate: the sketch's upper bound (2 standard errors)
    top: list[tuple[Any, int]] | None = None
    values: list | None = None         # every distinct value, when there are few
    length: tuple[int, int] | None = None
    pattern: str | None = None
    monotonic: str | None = None
    candidate_key: bool = False

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def to_dict(self) -> dict:
        out = {"name": self.name, "type": self.type, "kind": self.kind, "rows": self.rows,
               "nulls": self.nulls, "null_fraction": round(self.null_fraction, 12),
               "min": self.min, "max": self.max, "distinct": self.distinct,
               "distinct_exact": self.distinct_exact, "top_values": self.top,
               "length": list(self.length) if self.length else None, "pattern": self.pattern,
               "monotonic": self.monotonic, "candidate_key": self.candidate_key}
        if self.kind == "float":
            out["nan"] = self.nan
        if not self.distinct_exact:
            out["distinct_upper_bound"] = self.distinct_upper
        return jsonable(out)


def finish_state(name: str, type_: pa.DataType, state: ColumnState) -> ColumnProfile:
    kind = kind_of(type_)
    prof = ColumnProfile(name, str(type_), kind, state.rows, state.nulls, state.nan, state.lo, state.hi)
    if state.counts is not None:
        prof.distinct = state.counts.num_rows
        if 0 < prof.distinct <= LOW_CARDINALITY:
            prof.top, prof.values = _top(state.counts, type_)
    elif state.sketch is not None:
        estimate, details = hll_value(AggregatePartial(sketch=state.sketch))
        prof.distinct, prof.distinct_exact = estimate, False
        prof.distinct_upper = math.ceil(details["upper_bound_2sd"])
    if state.len_lo is not None:
        prof.length = (state.len_lo, state.len_hi)
        prof.pattern = patterns.regex(state.shape, state.len_lo, state.len_hi)
    prof.monotonic = _monotonic(state.segments, state.rows - state.nulls)
    nonnull = state.rows - state.nulls
    if state.nulls == 0 and state.rows > 1 and prof.distinct is not None:
        prof.candidate_key = (prof.distinct == nonnull) if prof.distinct_exact \
            else prof.distinct >= (1 - KEY_TOLERANCE) * nonnull
    return prof


def _top(counts: pa.Table, type_: pa.DataType) -> tuple[list[tuple[Any, int]], list]:
    """The TOP most frequent values (ties: smaller first) and every distinct value, sorted."""
    ordered = counts.sort_by([("count", "descending"), ("value", "ascending")])
    shown = _shown(ordered.column("value").combine_chunks(), type_)
    top = list(zip(shown, ordered.column("count").to_pylist()))[:TOP]
    everything = sorted(v for v in shown if not (isinstance(v, float) and math.isnan(v)))
    return top, everything


def _shown(values: pa.Array, type_: pa.DataType) -> list:
    """Comparable-form values (keys.comparable) as the column's values."""
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    if pa.types.is_floating(type_):
        return [_plain(v) for v in values.to_numpy(zero_copy_only=False).view(np.float64).tolist()]
    return values.to_pylist()


def _monotonic(segments: list[Segment], nonnull: int) -> str | None:
    """increasing, non-decreasing, decreasing, non-increasing or constant over the non-NULL values in
    source order (files in the order given, rows in file order); None for none of them or
    fewer than two values."""
    if nonnull < 2 or not segments:
        return None
    (whole,) = _fold(segments, contiguous_only=False)
    nondec, inc, noninc, dec = whole.flags
    if nondec and noninc:
        return "constant"
    if inc:
        return "increasing"
    if nondec and not noninc:
        return "non-decreasing"
    if dec:
        return "decreasing"
    if noninc and not nondec:
        return "non-increasing"
    return None
