"""Hash tables, hash partitioning and dense integer sets over key hashes and values."""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .hashing import comparable

# --- hash tables -------------------------------------------------------------------

@numba.njit(inline="always")
def table_size(n):
    """Slots of an open-addressing table for n keys: a power of two, at least 16 and 2n
    (at most half full). Kernels inline it; Python calls capacity."""
    cap = 16
    while cap < 2 * n:
        cap *= 2
    return cap


capacity = table_size.py_func


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
        self.keys, self.first, self.shared = _build_table(hashes, capacity(len(hashes)))

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
