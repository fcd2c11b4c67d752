"""Exact single-column keys: counted and partitioned on their values, no hash-and-confirm.

A key that is one fixed-width column (integers, floats, dates, times, timestamps) has a
comparable form of one int64 per row, so equality of those int64 values *is* key
equality: such keys are counted exactly in a hash table of the values themselves, with
no hash-and-confirm step. Their bucket is taken from the same hash the generic path
computes (hash_rows of one int64 column is mix(value)), so a bucket may mix pieces of
both kinds and still hold every copy of a key.
"""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from ...engine import parallel
from . import hashing
from .arrays import empty
from .hashing import mix
from .tables import bucket_bits, table_size

_NEG_ZERO = np.int64(-0x8000000000000000)      # bits of -0.0
_EXP_BITS = np.int64(0x7FF0000000000000)
_MANT_BITS = np.int64(0x000FFFFFFFFFFFFF)
_NAN_BITS = np.int64(0x7FF8000000000000)       # bits of the one NaN (as _float_bits)


class ExactColumn:
    """A NULL-free-or-masked fixed-width key column, ready for the exact kernels.

    ``values``: int64 per row (the raw bits of a float64, normalized inside the kernels
    when ``is_float``), garbage under NULLs; ``raw``: the column's own values as unsigned
    ints of its width (what pieces store, so violating rows show the value as it was);
    ``valid``: the validity bitmap as uint8 (empty when there is no NULL) and its bit offset.
    """

    __slots__ = ("type", "values", "is_float", "raw", "valid", "valid_offset", "nulls")

    def __init__(self, typ, values, is_float, raw, valid, valid_offset, nulls):
        self.type, self.values, self.is_float, self.raw = typ, values, is_float, raw
        self.valid, self.valid_offset, self.nulls = valid, valid_offset, nulls


_RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_EMPTY_U8 = np.zeros(0, np.uint8)


def exact_column(arr: pa.Array | pa.ChunkedArray) -> ExactColumn | None:
    """`arr` as an ExactColumn, or None when its key equality is not one int64 per row
    (strings, decimals, booleans, date64, uint64 values of 2**63 and up...)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_dictionary(t):
        return exact_column(arr.dictionary_decode())
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date32(t)
            or pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_duration(t)):
        return None
    width = t.bit_width // 8
    n, off = len(arr), arr.offset
    bufs = arr.buffers()
    raw = np.frombuffer(bufs[1], _RAW[width], count=off + n)[off:] if n else np.zeros(0, _RAW[width])
    is_float = pa.types.is_floating(t)
    if is_float:
        values = raw.view(np.float64) if width == 8 else raw.view(f"<f{width}").astype(np.float64)
        values = values.view(np.int64)
    elif width == 8:
        values = raw.view(np.int64)
        if pa.types.is_uint64(t) and n and _any_negative(values, *_validity(arr)):
            return None                    # 2**63 and up: no int64 of that value
    else:
        signed = pa.types.is_signed_integer(t) or not pa.types.is_integer(t)
        values = (raw.view(f"<i{width}") if signed else raw).astype(np.int64)
    valid, voff = _validity(arr)
    return ExactColumn(t, values, is_float, raw, valid, voff, arr.null_count)


def _validity(arr: pa.Array) -> tuple[np.ndarray, int]:
    if arr.null_count == 0 or arr.buffers()[0] is None:
        return _EMPTY_U8, 0
    nbytes = (arr.offset + len(arr) + 7) // 8
    return np.frombuffer(arr.buffers()[0], np.uint8, count=nbytes), arr.offset


@numba.njit(cache=True, nogil=True)
def valid_at(valid, voff, i):
    j = voff + i
    return valid.shape[0] == 0 or (valid[j >> 3] >> (j & 7)) & 1 == 1


@numba.njit(cache=True, nogil=True)
def _any_negative(values, valid, voff):
    for i in range(values.shape[0]):
        if values[i] < 0 and valid_at(valid, voff, i):
            return True
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def canon(b, is_float):
    if is_float:
        if b == _NEG_ZERO:
            return np.int64(0)
        if (b & _EXP_BITS) == _EXP_BITS and (b & _MANT_BITS) != 0:
            return _NAN_BITS
    return b


@numba.njit(cache=True, nogil=True, inline="always")
def hash1(v, forced, use_forced):
    # what hash_rows gives a one-column int64 key (or the forced hash)
    if use_forced:
        return forced
    return mix(np.uint64(v))


@numba.njit(inline="always")
def count_part(values, origin, lo, hi, forced, use_forced, tkeys, tcount, tfirst, slot):
    """Count values[lo:hi] (canonical int64 keys) in an open-addressing table sized for
    them: tcount[s] of key tkeys[s], tfirst[s] = origin[j] of its first row j; slot[j - lo]
    is row j's slot. The tables must hold table_size(hi - lo) slots; the rest is untouched."""
    size = table_size(hi - lo)
    tcount[:size] = 0
    mask = np.uint64(size - 1)
    for j in range(lo, hi):
        v = values[j]
        s = hash1(v, forced, use_forced) & mask
        while tcount[s] != 0 and tkeys[s] != v:
            s = (s + np.uint64(1)) & mask
        c = tcount[s]
        tkeys[s] = v                             # the same value when it was there
        tfirst[s] = origin[j] if c == 0 else tfirst[s]
        tcount[s] = c + 1
        slot[j - lo] = s


@numba.njit(cache=True, nogil=True)
def _exact_buckets(values, is_float, valid, voff, lo, hi, bits, forced, use_forced, bucket, hist_out, span_out):
    # bucket of each row in [lo, hi) by the hash's top `bits` bits; NULL rows get len(hist);
    # counted in a local histogram (threads share hist_out's cache lines); the smallest
    # and largest canonical value go to span_out
    skip = hist_out.shape[0]
    hist = np.zeros(skip, np.int64)
    shift = np.uint64(64 - bits) if bits > 0 else np.uint64(0)
    low = np.int64(0x7FFFFFFFFFFFFFFF)
    high = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    for i in range(lo, hi):
        if not valid_at(valid, voff, i):
            bucket[i] = skip
            continue
        v = canon(values[i], is_float)
        low = min(low, v)
        high = max(high, v)
        b = 0
        if bits > 0:
            b = np.int64(hash1(v, forced, use_forced) >> shift)
        bucket[i] = b
        hist[b] += 1
    hist_out[:] = hist
    span_out[0] = low
    span_out[1] = high


@numba.njit(cache=True, nogil=True)
def _scatter_rows(bucket, rows, row0, lo, hi, pos, out):
    # each row's offset from row0 (rows empty: row i is row0 + i); one pass per output
    # column: half the write streams of one pass for both, and faster
    skip = pos.shape[0]
    if rows.shape[0] == 0:
        for i in range(lo, hi):
            b = bucket[i]
            if b != skip:
                out[pos[b]] = i
                pos[b] += 1
    else:
        for i in range(lo, hi):
            b = bucket[i]
            if b != skip:
                out[pos[b]] = rows[i] - row0
                pos[b] += 1


@numba.njit(cache=True, nogil=True)
def _scatter_keys(bucket, src, base, lo, hi, pos, out):
    # src[i] - base (the narrow form: it fits out's width) or src itself (base 0)
    skip = pos.shape[0]
    for i in range(lo, hi):
        b = bucket[i]
        if b != skip:
            out[pos[b]] = src[i] - base
            pos[b] += 1


_PARALLEL_ROWS = 1 << 17


class ExactParts:
    """A batch's exact key column partitioned into buckets: bucket b is [bounds[b],
    bounds[b + 1]) of `rows` (offsets from the batch's first row: uint32, or int64 for a
    batch of 2**32 rows or more) and `keys`. `keys` is narrow when `key0` is set (the
    values less key0, in as few bytes as their range needs: integers, dates, times...),
    else the raw values of the column."""

    __slots__ = ("rows", "keys", "bounds", "key0")

    def __init__(self, rows, keys_, bounds, key0):
        self.rows, self.keys, self.bounds, self.key0 = rows, keys_, bounds, key0


def exact_partition(col: ExactColumn, rows: np.ndarray | None, first_row: int, buckets: int,
                    narrow: bool = True) -> ExactParts:
    """The non-NULL rows of `col`, stably partitioned into `buckets` by the key's hash
    (as hash_rows would hash it). `rows` None means first_row + 0..n-1."""
    bits = bucket_bits(buckets)
    n = len(col.values)
    parts = parallel.threads() if n >= _PARALLEL_ROWS else 1
    cuts = parallel.cuts(n, parts)
    bucket = empty(n, np.uint8 if buckets < 255 else np.int32)
    hists = np.zeros((parts, buckets), np.int64)
    spans = np.zeros((parts, 2), np.int64)
    forced, use_forced = hashing.forced()
    parallel.run_parallel(lambda k: _exact_buckets(col.values, col.is_float, col.valid, col.valid_offset,
                                          cuts[k], cuts[k + 1], bits, forced, use_forced, bucket,
                                          hists[k], spans[k]), list(range(parts)))
    per_bucket = hists.sum(axis=0)
    bounds = np.zeros(buckets + 1, np.int64)
    np.cumsum(per_bucket, out=bounds[1:])
    starts = bounds[:-1] + np.cumsum(hists, axis=0) - hists        # part k's first slot per bucket
    total = int(bounds[-1])
    span = n if rows is None or not len(rows) else int(rows[-1]) - first_row + 1   # rows ascend
    out_rows = empty(total, np.uint32 if span <= 2**32 else np.int64)
    rows_in = np.zeros(0, np.int64) if rows is None else np.ascontiguousarray(rows, np.int64)
    key0, width = None, None
    if narrow and not col.is_float and total:
        low, high = int(spans[:, 0].min()), int(spans[:, 1].max())
        width = next((w for w in (1, 2, 4) if high - low < 2 ** (8 * w)), None)
        if width is not None:
            key0 = low
    if key0 is not None:
        out_keys = empty(total, _RAW[width])
        src, base = col.values, np.int64(key0)
    else:
        out_keys = empty(total, col.raw.dtype)
        src, base = col.raw, col.raw.dtype.type(0)

    def scatter(k: int) -> None:
        _scatter_rows(bucket, rows_in, np.int64(first_row), cuts[k], cuts[k + 1], starts[k].copy(), out_rows)
        _scatter_keys(bucket, src, base, cuts[k], cuts[k + 1], starts[k].copy(), out_keys)
    parallel.run_parallel(scatter, list(range(parts)))
    return ExactParts(out_rows, out_keys, bounds, key0)


def raw_array(typ: pa.DataType, raw: np.ndarray) -> pa.Array:
    """An Arrow array of fixed-width type `typ` over raw values (no NULLs), zero-copy."""
    return pa.Array.from_buffers(typ, len(raw), [None, pa.py_buffer(raw)])


def raw_values(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The raw values of a NULL-free fixed-width array, as unsigned ints of its width."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    width = arr.type.bit_width // 8
    n, off = len(arr), arr.offset
    if n == 0:
        return np.zeros(0, _RAW[width])
    return np.frombuffer(arr.buffers()[1], _RAW[width], count=off + n)[off:]
