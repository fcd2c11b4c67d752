"""Key columns: a comparable form, a 64-bit row hash over Arrow buffers, hash tables.

`unique` and `reference` both compare key tuples. They never trust a hash for equality:
the hash only narrows the search (partitioning, candidate duplicates, set probes) and
every answer is confirmed on the real key values. Equality follows DuckDB: -0.0 = 0.0
and NaN = NaN for floats; integers compare by value whatever their width.

`comparable()` turns a key column into the form in which Arrow's own equality, group-by
and joins give exactly those semantics (floats become the int64 bits of a normalized
double), and hashing works on that same form, so equal keys always hash equally.

A key of one fixed-width column needs no confirming at all: its comparable form is one
int64 per row, and the exact kernels below (exact_column, exact_partition,
exact_duplicates) compare those values themselves.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CANON_NAN = np.float64("nan")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FNV_PRIME = np.uint64(0x100000001B3)
_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

# Test hook: when set, every row hashes to this value (see force_hash).
_forced_hash: int | None = None


# --- comparable form ---------------------------------------------------------------

def is_key_type(t: pa.DataType) -> bool:
    """Types a key column may have (anything with a well-defined equality)."""
    if pa.types.is_dictionary(t):
        return is_key_type(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_null(t)
            or (pa.types.is_temporal(t) and not pa.types.is_interval(t))
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_string_view(t) or pa.types.is_binary_view(t))


def comparable(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`arr` in a canonical form whose Arrow equality is SQL key equality (see module doc)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_dictionary(t):
        return comparable(arr.dictionary_decode())
    if pa.types.is_floating(t):
        return _float_bits(arr)
    if pa.types.is_integer(t) and not pa.types.is_uint64(t):
        return arr.cast(pa.int64())          # widths differ between files and datasets
    if pa.types.is_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.large_string())
    if pa.types.is_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return arr.cast(pa.large_binary())
    if pa.types.is_date64(t):
        return arr.cast(pa.date32())
    return arr


def _float_bits(arr: pa.Array) -> pa.Array:
    values = arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    values = np.where(values == 0.0, 0.0, values)                # -0.0 = 0.0
    values = np.where(np.isnan(values), _CANON_NAN, values)      # every NaN is one NaN
    mask = None if arr.null_count == 0 else pc.is_null(arr).to_numpy(zero_copy_only=False)
    return pa.array(values.view(np.int64), pa.int64(), mask=mask)


def valid_rows(arrays: Sequence[pa.Array]) -> np.ndarray | None:
    """Mask of rows where no key column is NULL, or None when there is no NULL at all."""
    mask = None
    for arr in arrays:
        if arr.null_count:
            valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
            mask = valid if mask is None else mask & valid
    return mask


# --- hashing -------------------------------------------------------------------------

@contextlib.contextmanager
def force_hash(value: int = 0) -> Iterator[None]:
    """Make every row hash to `value` (tests prove that collisions never fake a duplicate)."""
    global _forced_hash
    saved, _forced_hash = _forced_hash, value
    try:
        yield
    finally:
        _forced_hash = saved


@numba.njit(cache=True, nogil=True)
def _mix(x):
    # splitmix64 finalizer: every input bit affects every output bit
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit(cache=True, nogil=True)
def _fold_words(h, words):
    for i in range(h.shape[0]):
        h[i] = _mix(h[i] * _GOLDEN + words[i])


@numba.njit(cache=True, nogil=True)
def _fold_bytes(h, offsets, data):
    for i in range(h.shape[0]):
        x = _FNV_BASIS
        for k in range(offsets[i], offsets[i + 1]):
            x = (x ^ np.uint64(data[k])) * _FNV_PRIME
        x ^= np.uint64(offsets[i + 1] - offsets[i])
        h[i] = _mix(h[i] * _GOLDEN + _mix(x))


def hash_rows(arrays: Sequence[pa.Array], n: int) -> np.ndarray:
    """uint64 hash per row of the key tuple; `arrays` must be `comparable()` forms."""
    if _forced_hash is not None:
        return np.full(n, _forced_hash, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    for arr in arrays:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        _fold_column(h, arr)
    return h


def _fold_column(h: np.ndarray, arr: pa.Array) -> None:
    t = arr.type
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        _, offs, data = arr.buffers()
        offsets = np.frombuffer(offs, np.int64, count=arr.offset + len(arr) + 1)[arr.offset:]
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        _fold_bytes(h, offsets, raw)
    elif pa.types.is_decimal(t):
        words_per = t.byte_width // 8
        raw = np.frombuffer(arr.buffers()[1], np.uint64, count=words_per * (arr.offset + len(arr)))
        raw = raw[words_per * arr.offset:].reshape(-1, words_per)
        for w in range(words_per):
            _fold_words(h, np.ascontiguousarray(raw[:, w]))
    elif pa.types.is_boolean(t):
        _fold_words(h, pc.cast(arr, pa.uint8()).fill_null(0).to_numpy().astype(np.uint64))
    elif pa.types.is_null(t):
        return
    else:                                   # int64, uint64, dates, times, timestamps
        width = t.bit_width // 8
        raw = np.frombuffer(arr.buffers()[1], f"<i{width}", count=arr.offset + len(arr))[arr.offset:]
        _fold_words(h, raw.astype(np.int64, copy=False).view(np.uint64))


# --- hash tables -------------------------------------------------------------------

@numba.njit(inline="always")
def table_size(n):
    """Slots of an open-addressing table for n keys: a power of two, at least 16 and 2n
    (at most half full). Kernels inline it; Python calls _capacity."""
    cap = 16
    while cap < 2 * n:
        cap *= 2
    return cap


_capacity = table_size.py_func


@numba.njit(cache=True, nogil=True)
def duplicate_hashes(h):
    """Mask of rows whose hash occurs at least twice (the only candidates for duplicates)."""
    n = h.shape[0]
    cap = table_size(n)
    mask = np.uint64(cap - 1)
    keys = np.empty(cap, np.uint64)
    counts = np.zeros(cap, np.uint8)        # 0 empty, 1 seen once, 2 seen twice or more
    slot_of = np.empty(n, np.int64)
    for i in range(n):
        s = h[i] & mask
        while counts[s] != 0 and keys[s] != h[i]:
            s = (s + np.uint64(1)) & mask
        if counts[s] == 0:
            keys[s] = h[i]
            counts[s] = 1
        else:
            counts[s] = 2
        slot_of[i] = s
    out = np.empty(n, np.bool_)
    for i in range(n):
        out[i] = counts[slot_of[i]] == 2
    return out


@numba.njit(cache=True, nogil=True)
def _build_table(h, cap):
    mask = np.uint64(cap - 1)
    keys = np.empty(cap, np.uint64)
    first = np.full(cap, -1, np.int64)      # first row with that hash
    shared = np.zeros(h.shape[0], np.bool_)  # another row has the same hash
    for i in range(h.shape[0]):
        s = h[i] & mask
        while first[s] >= 0 and keys[s] != h[i]:
            s = (s + np.uint64(1)) & mask
        if first[s] < 0:
            keys[s] = h[i]
            first[s] = i
        else:
            shared[first[s]] = True
            shared[i] = True
    return keys, first, shared


@numba.njit(cache=True, nogil=True)
def _probe_table(keys, first, h):
    mask = np.uint64(keys.shape[0] - 1)
    out = np.empty(h.shape[0], np.int64)
    for i in range(h.shape[0]):
        s = h[i] & mask
        while first[s] >= 0 and keys[s] != h[i]:
            s = (s + np.uint64(1)) & mask
        out[i] = first[s]
    return out


class HashIndex:
    """Open-addressing table from hash to the first row with that hash (rebuilt, never shipped)."""

    def __init__(self, hashes: np.ndarray):
        self.keys, self.first, self.shared = _build_table(hashes, _capacity(len(hashes)))

    def probe(self, hashes: np.ndarray) -> np.ndarray:
        """Per probe row, the index of a row with the same hash, or -1."""
        return _probe_table(self.keys, self.first, hashes)


def equal_rows(left: Sequence[pa.Array], right: Sequence[pa.Array]) -> np.ndarray:
    """Row-wise equality of two aligned comparable key tuples (no NULLs in either)."""
    eq = None
    for a, b in zip(left, right):
        col = pc.equal(a, b).to_numpy(zero_copy_only=False)
        eq = col if eq is None else eq & col
    return eq


# --- partitioning ------------------------------------------------------------------

def bucket_bits(buckets: int) -> int:
    """log2 of a bucket count, which must be a power of two (buckets take the top hash bits)."""
    if buckets < 1 or buckets & (buckets - 1):
        raise ValueError(f"bucket count must be a power of two, got {buckets}")
    return buckets.bit_length() - 1


@numba.njit(cache=True, nogil=True)
def _partition(h, bits):
    # counting sort on the top `bits` bits: the low bits stay random for the hash tables
    nb = 1 << bits
    shift = np.uint64(64 - bits) if bits > 0 else np.uint64(0)
    bucket = np.zeros(h.shape[0], np.int64)
    if bits > 0:
        for i in range(h.shape[0]):
            bucket[i] = np.int64(h[i] >> shift)
    bounds = np.zeros(nb + 1, np.int64)
    for i in range(h.shape[0]):
        bounds[bucket[i] + 1] += 1
    for b in range(nb):
        bounds[b + 1] += bounds[b]
    fill = bounds[:-1].copy()
    order = np.empty(h.shape[0], np.int64)
    for i in range(h.shape[0]):
        order[fill[bucket[i]]] = i
        fill[bucket[i]] += 1
    return order, bounds


def partition(hashes: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): rows of bucket b are order[bounds[b]:bounds[b + 1]], in row order."""
    return _partition(hashes, bucket_bits(buckets))


def group_keys(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Group the rows of `table` by the real values of `columns` (NULL-free).

    Returns one row per distinct key: ``i_list`` (row positions), ``i_min`` (first
    position) and ``i_count``; the key values themselves are at ``table.take(i_min)``.
    """
    names = [f"k{i}" for i in range(len(columns))]
    grouping = pa.table({**{n: comparable(table[c]) for n, c in zip(names, columns)},
                         "i": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    return grouping.group_by(names, use_threads=False).aggregate(
        [("i", "list"), ("i", "min"), ("i", "count")])


# --- exact single-column keys --------------------------------------------------------
# A key that is one fixed-width column (integers, floats, dates, times, timestamps) has a
# comparable form of one int64 per row, so equality of those int64 values *is* key
# equality: such keys are counted exactly in a hash table of the values themselves, with
# no hash-and-confirm step. Their bucket is taken from the same hash the generic path
# computes (hash_rows of one int64 column is _mix(value)), so a bucket may mix pieces of
# both kinds and still hold every copy of a key.

_NEG_ZERO = np.int64(-0x8000000000000000)      # bits of -0.0
_EXP_BITS = np.int64(0x7FF0000000000000)
_MANT_BITS = np.int64(0x000FFFFFFFFFFFFF)
_NAN_BITS = np.int64(0x7FF8000000000000)       # bits of the one NaN (as _float_bits)
_SUB_ROWS = 16384                              # rows per sub-partition when counting


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
_POOL_BYTES = 1 << 16


def empty(n: int, dtype) -> np.ndarray:
    """An uninitialized array; a big one lives in Arrow's memory pool, whose allocator
    hands freed memory out again, where numpy's big arrays are fresh pages from the OS
    every time (a page fault per 4 KiB: as slow as the kernels themselves at these sizes)."""
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < _POOL_BYTES:
        return np.empty(n, dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype)


_shared_zeros = np.zeros(0, np.uint8)


def shared_zeros(n: int, dtype) -> np.ndarray:
    """n zeros, read-only, all views of one buffer (grown as needed): for Arrow columns of
    zeros, such as the dictionary indices of a constant column, that cost no memory each."""
    global _shared_zeros
    nbytes = n * np.dtype(dtype).itemsize
    buf = _shared_zeros
    if len(buf) < nbytes:
        buf = zeros(max(nbytes, 2 * len(buf)), np.uint8)
        buf.flags.writeable = False
        if len(buf) > len(_shared_zeros):
            _shared_zeros = buf
    return buf[:nbytes].view(dtype)


def zeros(n: int, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(0)
    return out


def full(n: int, value, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(value)
    return out


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
def _valid_at(valid, voff, i):
    j = voff + i
    return valid.shape[0] == 0 or (valid[j >> 3] >> (j & 7)) & 1 == 1


@numba.njit(cache=True, nogil=True)
def _any_negative(values, valid, voff):
    for i in range(values.shape[0]):
        if values[i] < 0 and _valid_at(valid, voff, i):
            return True
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def _canon(b, is_float):
    if is_float:
        if b == _NEG_ZERO:
            return np.int64(0)
        if (b & _EXP_BITS) == _EXP_BITS and (b & _MANT_BITS) != 0:
            return _NAN_BITS
    return b


@numba.njit(cache=True, nogil=True, inline="always")
def _hash1(v, forced, use_forced):
    # what hash_rows gives a one-column int64 key (or the forced hash)
    if use_forced:
        return forced
    return _mix(np.uint64(v))


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
        s = _hash1(v, forced, use_forced) & mask
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
        if not _valid_at(valid, voff, i):
            bucket[i] = skip
            continue
        v = _canon(values[i], is_float)
        low = min(low, v)
        high = max(high, v)
        b = 0
        if bits > 0:
            b = np.int64(_hash1(v, forced, use_forced) >> shift)
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


_pool = None
_pool_lock = threading.Lock()


def threads() -> int:
    """Threads the exact kernels may use: Numba's thread count (1 in a Ray worker)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def run_parallel(fn, items: list) -> list:
    """fn over items on this module's thread pool (the kernels release the GIL)."""
    global _pool
    if len(items) <= 1 or threads() == 1:
        return [fn(x) for x in items]
    with _pool_lock:            # run_checks may finish several checks at once
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor
            _pool = ThreadPoolExecutor(threads(), thread_name_prefix="batchaot-keys")
    return list(_pool.map(fn, items))


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
    parts = threads() if n >= _PARALLEL_ROWS else 1
    cuts = [n * k // parts for k in range(parts + 1)]
    bucket = empty(n, np.uint8 if buckets < 255 else np.int32)
    hists = np.zeros((parts, buckets), np.int64)
    spans = np.zeros((parts, 2), np.int64)
    use_forced = _forced_hash is not None
    forced = np.uint64(_forced_hash if use_forced else 0)
    run_parallel(lambda k: _exact_buckets(col.values, col.is_float, col.valid, col.valid_offset,
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
    run_parallel(scatter, list(range(parts)))
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


# counting (finish side) -----------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _canon_into(values, is_float, base, rows, out, off):
    """out[off:off+n] = canonical values (of values + base: a narrow piece). Returns
    (values strictly increasing, first, last, rows strictly increasing)."""
    n = values.shape[0]
    inc = True
    for i in range(n):
        v = _canon(np.int64(values[i]) + base, is_float)
        out[off + i] = v
    for i in range(1, n):
        inc &= out[off + i] > out[off + i - 1]
    rows_inc = True
    for i in range(1, rows.shape[0]):
        rows_inc &= rows[i] > rows[i - 1]
    if n == 0:
        return inc, np.int64(0), np.int64(0), rows_inc
    return inc, out[off], out[off + n - 1], rows_inc


_SMALL_SLOTS = 1 << 16        # a table this big stays in L2: low-cardinality keys need no more


@numba.njit(cache=True, nogil=True)
def _mark_small(values, forced, use_forced, mark, over_at, over_count, slot):
    """One table for all rows, as long as there are few distinct keys; False (and nothing
    to trust in mark/counts) once there are more than the table can hold."""
    n = values.shape[0]
    cap = min(table_size(n), _SMALL_SLOTS)
    mask = np.uint64(cap - 1)
    tkeys = np.empty(cap, np.int64)
    tcount = np.zeros(cap, np.int64)
    tfirst = np.empty(cap, np.int64)
    used = 0
    for i in range(n):
        v = values[i]
        s = _hash1(v, forced, use_forced) & mask
        while tcount[s] != 0 and tkeys[s] != v:
            s = (s + np.uint64(1)) & mask
        if tcount[s] == 0:
            used += 1
            if 2 * used > cap:
                return False, 0, 0, 0
            tkeys[s] = v
            tfirst[s] = i
        tcount[s] += 1
        slot[i] = np.int32(s)
    n_rows = 0
    n_keys = 0
    n_over = 0
    for i in range(n):
        s = slot[i]
        c = tcount[s]
        first = tfirst[s] == i
        # no branches on the data (duplicates and first rows come in no predictable
        # order); and no call taking arrays in the loop (Numba counts references per call)
        dup = c > 1
        v = min(c, 255) if first else 1
        mark[i] = v if dup else 0
        n_rows += 1 if dup else 0
        n_keys += 1 if (dup and first) else 0
        if first and c >= 255:              # rare: the count goes to the overflow list
            over_at[n_over] = i
            over_count[n_over] = c
            n_over += 1
    return True, n_rows, n_keys, n_over


@numba.njit(cache=True, nogil=True)
def _mark_partitioned(values, skip_bits, forced, use_forced, mark, over_at, over_count, sub, sub_v, sub_i):
    """Rows split into sub-partitions of a few thousand by the hash bits below the
    `skip_bits` top ones (the bucket's, constant here), so each hash table stays in cache."""
    n = values.shape[0]
    kbits = 0
    while (n >> kbits) > _SUB_ROWS and kbits < 16 and kbits + skip_bits < 48:
        kbits += 1
    k_count = 1 << kbits
    shift = np.uint64(64 - skip_bits - kbits)
    kmask = np.uint64(k_count - 1)
    bounds = np.zeros(k_count + 1, np.int64)
    for i in range(n):
        s = np.int64((_hash1(values[i], forced, use_forced) >> shift) & kmask)
        sub[i] = s
        bounds[s + 1] += 1
    biggest = 0
    for k in range(k_count):
        biggest = max(biggest, bounds[k + 1])
        bounds[k + 1] += bounds[k]
    fill = bounds[:-1].copy()
    for i in range(n):
        k = sub[i]
        sub_v[fill[k]] = values[i]
        fill[k] += 1
    fill = bounds[:-1].copy()
    for i in range(n):
        k = sub[i]
        sub_i[fill[k]] = i
        fill[k] += 1
    cap_max = table_size(biggest)
    tkeys = np.empty(cap_max, np.int64)
    tcount = np.zeros(cap_max, np.int64)
    tfirst = np.empty(cap_max, sub_i.dtype)
    slot = np.empty(max(biggest, 1), np.int32)
    n_rows = 0
    n_keys = 0
    n_over = 0
    for k in range(k_count):
        lo, hi = bounds[k], bounds[k + 1]
        count_part(sub_v, sub_i, lo, hi, forced, use_forced, tkeys, tcount, tfirst, slot)
        for j in range(lo, hi):
            s = slot[j - lo]
            i = sub_i[j]
            c = tcount[s]
            first = tfirst[s] == i
            dup = c > 1                                 # as in _mark_small
            v = min(c, 255) if first else 1
            mark[i] = v if dup else 0
            n_rows += 1 if dup else 0
            n_keys += 1 if (dup and first) else 0
            if first and c >= 255:
                over_at[n_over] = i
                over_count[n_over] = c
                n_over += 1
    return n_rows, n_keys, n_over


@numba.njit(cache=True, nogil=True)
def _exact_emit(mark, over_at, over_count, n_keys, offsets, bitmap, per_piece):
    """Duplicate rows as a bitmap (Arrow's bit order) and a count per piece
    (offsets[k]:offsets[k+1]); returns each duplicate key's first position and count."""
    order = np.argsort(over_at)
    firsts = np.empty(n_keys + 1, np.int64)
    out_counts = np.empty(n_keys + 1, np.int64)
    g = 0
    o = 0
    n = mark.shape[0]
    for w in range((n + 7) >> 3):
        byte = 0
        for i in range(w << 3, min(n, (w << 3) + 8)):
            m = mark[i]
            byte |= (1 if m != 0 else 0) << (i & 7)
            firsts[g] = i                       # kept only where m >= 2 (no branch on m)
            out_counts[g] = m
            if m == 255:
                out_counts[g] = over_count[order[o]]
                o += 1
            g += 1 if m >= 2 else 0
        bitmap[w] = byte
    for k in range(offsets.shape[0] - 1):
        c = 0
        for i in range(offsets[k], offsets[k + 1]):
            c += mark[i] != 0
        per_piece[k] = c
    return firsts[:n_keys], out_counts[:n_keys]


def exact_duplicates(values: np.ndarray, skip_bits: int, offsets: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact duplicates among canonical int64 key values, cut into pieces at `offsets`:
    (bitmap of the rows whose key occurs more than once, in Arrow's bit order; how many
    such rows per piece; first position of each such key, ascending; its count).

    mark[i]: 0 for a key seen once, 1 at a duplicate key's later rows, its count at its
    first row (255: the count is in the overflow list, with that row)."""
    use_forced = _forced_hash is not None
    forced = np.uint64(_forced_hash if use_forced else 0)
    n = len(values)
    mark = zeros(n, np.uint8)
    over_at = empty(n // 255 + 1, np.int64)           # keys counted 255 times or more
    over_count = empty(n // 255 + 1, np.int64)
    index = np.int32 if n < 2**31 else np.int64
    small, n_rows, n_keys, n_over = _mark_small(values, forced, use_forced, mark, over_at, over_count,
                                                empty(n, np.int32))
    if not small:       # sub-partition of each row, the values and rows in sub-partition order
        n_rows, n_keys, n_over = _mark_partitioned(values, skip_bits, forced, use_forced, mark, over_at,
                                                   over_count, empty(n, np.uint16), empty(n, np.int64),
                                                   empty(n, index))
    bitmap = empty((n + 7) // 8, np.uint8)
    per_piece = np.zeros(len(offsets) - 1, np.int64)
    if n_rows == 0:
        return bitmap, per_piece, np.zeros(0, np.int64), np.zeros(0, np.int64)
    firsts, out_counts = _exact_emit(mark, over_at[:n_over], over_count[:n_over], n_keys,
                                     np.asarray(offsets, np.int64), bitmap, per_piece)
    return bitmap, per_piece, firsts, out_counts


def canonical_values(pieces: Sequence[tuple[np.ndarray, bool, int]], rows: Sequence[np.ndarray]
                     ) -> tuple[np.ndarray, bool, bool]:
    """The canonical int64 values of NULL-free pieces (values, is_float, base: the value
    of a row is values[i] + base), concatenated; whether every piece is strictly
    increasing with value ranges that do not overlap (then every value is distinct: a
    proof that needs no counting); whether each `rows` is strictly increasing."""
    total = sum(len(v) for v, _, _ in pieces)
    out = empty(total, np.int64)
    spans, distinct, rows_inc, off = [], True, True, 0
    for (values, is_float, base), r in zip(pieces, rows):
        inc, first, last, r_inc = _canon_into(values, is_float, np.int64(base), r, out, off)
        rows_inc &= bool(r_inc)
        if len(values):
            spans.append((int(first), int(last)))
            distinct &= bool(inc)
        off += len(values)
    if distinct:
        spans.sort()
        distinct = all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    return out, distinct, rows_inc


@numba.njit(cache=True, nogil=True)
def _emit_piece(bitmap, boff, rows, row0, src, base, out_rows, out_keys):
    # the rows of a piece flagged in bitmap (from bit boff on): their row numbers and keys
    k = 0
    for i in range(rows.shape[0]):
        j = boff + i
        if (bitmap[j >> 3] >> (j & 7)) & 1:
            out_rows[k] = row0 + np.int64(rows[i])
            out_keys[k] = src[i] + base
            k += 1
    return k


def emit_piece(bitmap: np.ndarray, boff: int, count: int, rows: np.ndarray, row0: int,
               src: np.ndarray, base, out_dtype) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, key values as out_dtype) of the `count` rows of a piece flagged in
    `bitmap` from bit `boff` on; a key is src[i] + base."""
    out_rows = empty(count, np.int64)
    out_keys = empty(count, out_dtype)
    _emit_piece(bitmap, np.int64(boff), rows, np.int64(row0), src, base, out_rows, out_keys)
    return out_rows, out_keys


# --- dense integer sets ---------------------------------------------------------------

DENSE_MAX_SPAN = 1 << 27      # at most a 16 MB bitset


@numba.njit(cache=True, nogil=True)
def _set_bits(bits, values, lo):
    for v in values:
        d = v - lo
        bits[d >> 3] |= np.uint8(1 << (d & 7))


@numba.njit(cache=True, nogil=True)
def _test_bits(bits, values, lo, hi, out):
    for i in range(values.shape[0]):
        v = values[i]
        if v < lo or v > hi:
            out[i] = False
        else:
            d = v - lo
            out[i] = (bits[d >> 3] >> (d & 7)) & 1


class DenseSet:
    """Exact membership of int64 values spanning at most DENSE_MAX_SPAN: one bit per value
    between the smallest and the largest. Surrogate keys (1..n with a few gaps) are the
    common case; a probe is one bit test in a table that stays in cache, where a hash
    table of a million keys misses it on nearly every probe."""

    def __init__(self, values: np.ndarray, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.bits = np.zeros(((hi - lo) >> 3) + 1, dtype=np.uint8)
        _set_bits(self.bits, values, np.int64(lo))

    @classmethod
    def of(cls, arr: pa.Array) -> "DenseSet | None":
        """A DenseSet of a NULL-free int64 array, or None when its span is too wide."""
        if not pa.types.is_int64(arr.type) or len(arr) == 0 or arr.null_count:
            return None
        bounds = pc.min_max(arr)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if hi - lo > DENSE_MAX_SPAN:
            return None
        return cls(arr.to_numpy(), lo, hi)

    def contains(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=np.bool_)
        _test_bits(self.bits, values, np.int64(self.lo), np.int64(self.hi), out)
        return out
