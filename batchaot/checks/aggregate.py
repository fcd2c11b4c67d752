"""`aggregate: "<fn>(col)"` with `between: [lo, hi]` or `equals: v`, and optional `where:`.

Functions (DuckDB names): count(*), count(x), sum, avg, min, max, stddev_samp (also
stddev), count(DISTINCT x) / count_distinct(x) (exact), approx_count_distinct(x) (HyperLogLog),
approx_quantile(x, q) (KLL), null_fraction(x). The argument is a column; `where:` picks
the rows that count.

Partial states merge exactly: counts, exact integer sums (see moments.py: also exact for
floats), min/max, the distinct values themselves, or serialized DataSketches sketches.
Everything but the two approximate functions gives the same value for any split of the
data. The approximate ones are within their documented error (details report it):
HLL with lg_k = 14 has a relative standard error of about 0.8 %; a KLL sketch with k = 200
has a normalized rank error of about 1.65 % (99 % confidence). KLL compaction is randomized,
so approx_quantile may differ between runs and splits within that bound.

A failing aggregate is a fact about the dataset: it has no violating rows (violations = 0)
and passed = False; `details` says so.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from fractions import Fraction

import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..compiler.aggregate import Call, parse_aggregate
from ..errors import RuleError
from ..spec import RuleSpec
from . import keys, moments
from .base import Bounds, CheckBase, CheckOutcome, jsonable, no_mostly, resolve_column, spec_error

HLL_LG_K = 14
KLL_K = 200
NUMERIC = ("sum", "avg", "stddev_samp", "min", "max", "approx_quantile")


@dataclass
class AggregatePartial:
    """Rows counted (after `where`) and the state the function needs; unused parts stay empty."""

    rows: int = 0
    nonnull: int = 0
    moments: moments.Moments = field(default_factory=moments.Moments)
    lo: float | int | None = None          # min over non-NaN values
    hi: float | int | None = None          # max over non-NaN values
    nan: bool = False                      # a NaN was seen (it sorts above every number)
    distinct: pa.Array | None = None       # count_distinct: distinct comparable values
    sketch: bytes | None = None            # serialized HLL or KLL sketch


def parse_call(spec: RuleSpec, schema: pa.Schema) -> Call:
    """The aggregate text → Call (parsed by the compiler), its column bound to `schema`,
    with errors naming the rule and what is supported."""
    text = spec.body
    if not isinstance(text, str) or not text.strip():
        raise spec_error(spec, "'aggregate' must be an aggregate expression string, e.g. \"avg(amount)\"")
    call = parse_aggregate(spec.name, text)
    if call.column is None:
        return call
    fn, column = call.fn, resolve_column(spec, call.column, schema)
    t = schema.field(column).type
    if fn in NUMERIC and not _numeric(t):
        raise RuleError(spec.name, f"{fn}({column}): column '{column}' is {t}; {fn} needs a number column")
    if fn in ("count_distinct", "approx_count_distinct") and not keys.is_key_type(t):
        raise RuleError(spec.name, f"{fn}({column}): values of type {t} cannot be compared")
    return replace(call, column=column)


def metric_text(what: str, where: str | None) -> str:
    """A metric's name in the history: the expression, and the rows it counts."""
    return what if where is None else f"{what} where {' '.join(str(where).split())}"


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


class AggregateValue(CheckBase):
    """One aggregate over the rows `where` picks, computed map → merge → :meth:`value`:
    what an aggregate rule bounds, and what change/anomaly checks (history.py) compare
    with past runs — so both accept exactly the same expressions."""

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        no_mostly(spec)
        self.call = parse_call(spec, schema)
        self.out_columns = [self.call.column] if self.call.column else []
        self.type = schema.field(self.call.column).type if self.call.column else None

    @property
    def metric_name(self) -> str:
        """The aggregate as a history metric: `avg(amount)`, `count(*) where status = 'lost'`."""
        return metric_text(str(self.call), self.spec.options.get("where"))

    def describe(self) -> str:
        return self.metric_name

    # -- map ----------------------------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> AggregatePartial:
        sub, _ = self.rows_of(batch, first_row)
        if self.call.column is None:
            return AggregatePartial(rows=sub.num_rows)
        col = sub.column(0)
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if pa.types.is_float16(col.type):
            col = col.cast(pa.float32())      # exact; pyarrow's kernels have no halffloat
        part = AggregatePartial(rows=sub.num_rows, nonnull=len(col) - col.null_count)
        fn = self.call.fn
        if fn in ("sum", "avg", "stddev_samp"):
            part.moments, _ = moments.column_moments(col)
        elif fn in ("min", "max"):
            part.lo, part.hi, part.nan = _min_max(col)
        elif fn == "count_distinct":
            part.distinct = pc.unique(keys.comparable(col).drop_null())
        elif fn == "approx_count_distinct":
            part.sketch = hll_sketch(col)
        elif fn == "approx_quantile":
            part.sketch = _kll(col)
        return part

    # -- merge ----------------------------------------------------------------------------
    def merge(self, partials: list[AggregatePartial]) -> AggregatePartial:
        out = AggregatePartial(rows=sum(p.rows for p in partials), nonnull=sum(p.nonnull for p in partials))
        fn = self.call.fn
        if fn in ("sum", "avg", "stddev_samp"):
            for p in partials:
                out.moments = out.moments + p.moments
        elif fn in ("min", "max"):
            out.lo = min((p.lo for p in partials if p.lo is not None), default=None)
            out.hi = max((p.hi for p in partials if p.hi is not None), default=None)
            out.nan = any(p.nan for p in partials)
        elif fn == "count_distinct":
            found = [p.distinct for p in partials if p.distinct is not None]
            out.distinct = pc.unique(pa.concat_arrays(found)) if found else None
        elif fn == "approx_count_distinct":
            out.sketch = merge_hll([p.sketch for p in partials if p.sketch])
        elif fn == "approx_quantile":
            out.sketch = _merge_kll([p.sketch for p in partials if p.sketch])
        return out

    def value(self, p: AggregatePartial) -> tuple[float | int | None, dict]:
        """The aggregate of the merged partial, and what details say about it."""
        value, details = self._value(p)
        return _plain(value), details

    def finish(self, partial: AggregatePartial) -> CheckOutcome:
        value, details = self.value(partial)
        return CheckOutcome(passed=True, violations=0, rows=partial.rows, value=value, details=jsonable(details))

    def _value(self, p: AggregatePartial) -> tuple[float | int | None, dict]:
        fn = self.call.fn
        if fn == "count(*)":
            return p.rows, {}
        if fn == "count":
            return p.nonnull, {}
        if fn == "null_fraction":
            return (None if p.rows == 0 else (p.rows - p.nonnull) / p.rows), {"null_rows": p.rows - p.nonnull}
        if fn in ("sum", "avg", "stddev_samp"):
            return self._moment_value(p), {}
        if fn in ("min", "max"):
            return _extreme(fn, p), {}
        if fn == "count_distinct":
            return (len(p.distinct) if p.distinct is not None else 0), {}
        if fn == "approx_count_distinct":
            return hll_value(replace(p, sketch=merge_hll([p.sketch] if p.sketch else [])))
        return _kll_value(p.sketch, self.call.q)

    def _moment_value(self, p: AggregatePartial) -> float | int | None:
        m, fn = p.moments, self.call.fn
        if m.n == 0 or (fn == "stddev_samp" and m.n < 2):
            return None
        special = moments.special_value(m)
        if special is not None:
            return float("nan") if fn == "stddev_samp" else special
        base, e = moments.scale_of(self.type)
        total = moments.exact_sum(m, base, e)
        if fn == "sum":
            return int(total) if pa.types.is_integer(self.type) else float(total)
        if fn == "avg":
            return float(total / m.n)
        squares = moments.exact_sum_squares(m, base, e)
        variance = (squares - total * total / m.n) / (m.n - 1)
        return math.sqrt(variance) if variance > 0 else 0.0


class AggregateCheck(AggregateValue):
    """`aggregate:` with bounds: the value must lie within them."""

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        self.bounds = Bounds.parse(spec, spec.options, "aggregate: \"avg(amount)\", between: [10, 500]")

    def describe(self) -> str:
        where = f" where {self.spec.options['where']}" if "where" in self.spec.options else ""
        return f"{self.call}{where} {self.bounds.describe()}"

    def finish(self, partial: AggregatePartial) -> CheckOutcome:
        value, details = self.value(partial)
        passed = self.bounds.holds(value)
        details.update(function=str(self.call), rows=partial.rows, expected=self.bounds.describe())
        if value is None:
            details["reason"] = "the aggregate is NULL (no non-NULL value to aggregate), which no bound accepts"
        if not passed:
            details["note"] = "a dataset-level fact: no single row violates it, so no violating rows are listed"
        return CheckOutcome(passed=passed, violations=0, rows=partial.rows, value=value,
                            details=jsonable(details), violating=None)


def _plain(value):
    return value if not isinstance(value, Fraction) else float(value)


def _min_max(col: pa.Array) -> tuple[float | int | None, float | int | None, bool]:
    """min and max over the non-NaN values, and whether a NaN was seen."""
    has_nan = False
    if pa.types.is_floating(col.type):
        has_nan = bool(pc.any(pc.is_nan(col)).as_py() or False)
        col = pc.filter(col, pc.invert(pc.is_nan(col))) if has_nan else col
    mm = pc.min_max(col)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return _number(lo), _number(hi), has_nan


def _number(v):
    """Arrow scalars' Python values as int/float; -0.0 as 0.0 so every split prints the same."""
    if v is None:
        return None
    if isinstance(v, float):
        return v + 0.0
    return v if isinstance(v, int) else float(v)


def _extreme(fn: str, p: AggregatePartial) -> float | int | None:
    if fn == "max":
        return float("nan") if p.nan else p.hi
    if p.lo is None and p.nan:
        return float("nan")             # every value was NaN
    return p.lo


# --- sketches -----------------------------------------------------------------------

def _sketch_values(col: pa.Array) -> list:
    """Distinct values as ints or strs, hashed the same way in every batch and process."""
    values = pc.unique(keys.comparable(col).drop_null())
    t = values.type
    if not (pa.types.is_integer(t) or pa.types.is_large_string(t)):
        values = values.cast(pa.large_string()) if not pa.types.is_large_binary(t) else values
    return values.to_pylist()


def hll_sketch(col: pa.Array) -> bytes:
    """The HLL sketch of `col`'s distinct values (the sketch takes one value per call:
    map() keeps that loop in C, 2-4x faster than a Python for loop)."""
    sketch = datasketches.hll_sketch(HLL_LG_K, datasketches.tgt_hll_type.HLL_8)
    values = _sketch_values(col)
    if values and isinstance(values[0], bytes):
        values = [v.hex() for v in values]
    deque(map(sketch.update, values), maxlen=0)
    return sketch.serialize_compact()


def merge_hll(blobs: list[bytes]) -> bytes | None:
    # always through a union: its estimate depends only on the registers, not on the order
    # in which values arrived, so any split of the data gives the same estimate
    if not blobs:
        return None
    union = datasketches.hll_union(HLL_LG_K)
    for blob in blobs:
        union.update(datasketches.hll_sketch.deserialize(blob))
    return union.get_result(datasketches.tgt_hll_type.HLL_8).serialize_compact()


def hll_value(p: AggregatePartial) -> tuple[float | int | None, dict]:
    if p.sketch is None:
        return 0, {"sketch": "hll", "lg_k": HLL_LG_K}
    sk = datasketches.hll_sketch.deserialize(p.sketch)
    return round(sk.get_estimate()), {"sketch": "hll", "lg_k": HLL_LG_K, "estimate": sk.get_estimate(),
                                     "lower_bound_2sd": sk.get_lower_bound(2),
                                     "upper_bound_2sd": sk.get_upper_bound(2)}


def _kll(col: pa.Array) -> bytes | None:
    values = col.cast(pa.float64()).drop_null().to_numpy(zero_copy_only=False)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    sketch = datasketches.kll_doubles_sketch(KLL_K)
    sketch.update(np.ascontiguousarray(values))
    return sketch.serialize()


def _merge_kll(blobs: list[bytes]) -> bytes | None:
    if not blobs:
        return None
    sketch = datasketches.kll_doubles_sketch.deserialize(blobs[0])
    for blob in blobs[1:]:
        sketch.merge(datasketches.kll_doubles_sketch.deserialize(blob))
    return sketch.serialize()


def _kll_value(blob: bytes | None, q: float) -> tuple[float | None, dict]:
    info = {"sketch": "kll", "k": KLL_K}
    if blob is None:
        return None, info
    sk = datasketches.kll_doubles_sketch.deserialize(blob)
    info.update(n=sk.n, normalized_rank_error=sk.normalized_rank_error(False))
    return sk.get_quantile(q), info
