"""Key columns: a comparable form, a 64-bit row hash over Arrow buffers, hash tables.

`unique` and `reference` both compare key tuples. They never trust a hash for equality:
the hash only narrows the search (partitioning, candidate duplicates, set probes) and
every answer is confirmed on the real key values. Equality follows DuckDB: -0.0 = 0.0
and NaN = NaN for floats; integers compare by value whatever their width.

`comparable()` turns a key column into the form in which Arrow's own equality, group-by
and joins give exactly those semantics (floats become the int64 bits of a normalized
double), and hashing works on that same form, so equal keys always hash equally.
"""
from __future__ import annotations

import contextlib
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
            or pa.types.is_decimal(t) or pa.types.is_temporal(t) or pa.types.is_null(t)
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

def _capacity(n: int) -> int:
    cap = 16
    while cap < 2 * n:
        cap *= 2
    return cap


@numba.njit(cache=True, nogil=True)
def duplicate_hashes(h):
    """Mask of rows whose hash occurs at least twice (the only candidates for duplicates)."""
    n = h.shape[0]
    cap = 16
    while cap < 2 * n:
        cap *= 2
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
