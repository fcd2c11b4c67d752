"""Exact duplicates among canonical int64 key values: the finish side of exact keys
(a table of the values themselves when they are few, sub-partitions when not)."""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from . import hashing
from .arrays import empty, zeros
from .exact import canon, count_part, hash1
from .tables import table_size

_SUB_ROWS = 16384                              # rows per sub-partition when counting


@numba.njit(cache=True, nogil=True)
def _canon_into(values, is_float, base, rows, out, off):
    """out[off:off+n] = canonical values (of values + base: a narrow piece). Returns
    (values strictly increasing, first, last, rows strictly increasing)."""
    n = values.shape[0]
    inc = True
    for i in range(n):
        v = canon(np.int64(values[i]) + base, is_float)
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
        s = hash1(v, forced, use_forced) & mask
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
        s = np.int64((hash1(values[i], forced, use_forced) >> shift) & kmask)
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
    forced, use_forced = hashing.forced()
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
