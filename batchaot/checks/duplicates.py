"""Exact duplicates of a one-column fixed-width key, over every batch at once.

In this process a unique check keeps each batch's key column as it is (zero-copy) and
settles them all together in :func:`find`, which can then pick the cheapest exact
method for the data at hand, where a distributed map must partition every row into
buckets before anything is known about the data:

1. *proof*: every column piece strictly increasing, over value ranges that do not
   overlap (surrogate keys, sorted ids): all distinct, in one pass that stops at the
   first row out of order;
2. *few keys* (at most SMALL_KEYS): one hash table of each key's count and first row,
   small enough to stay in L2. When no key occurs once, every non-NULL row is a
   duplicate and the rows need no second pass;
3. *dense integers* (a value span within DENSE_SPAN_PER_ROW times the rows): a byte
   per value of the span counts it (saturating; saturated keys are counted again
   exactly), addressed by the value itself: no hash, no probing;
4. otherwise the rows are radix-partitioned by their hash into parts of about
   PART_ROWS rows, and each part is counted in its own cache-sized table.

Every method compares the canonical int64 values themselves (keys.exact_column), never
a hash, so the answer is exact whatever the hash does (keys.force_hash holds here too).

Rows are numbered by *position*: piece p's row i is position offsets[p] + i, where each
offset is a multiple of 8, so the duplicate rows of each piece are whole bytes of one
bitmap (Arrow's bit order), built in each pass without read-modify-write.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numba
import numpy as np

from . import keys
from .base import SAMPLE, most_repeated
from .keys import canon, hash1, valid_at

SMALL_KEYS = 1 << 15        # keys of one table (at most half its 64K slots of 24 bytes: 1.5 MB, L2)
DENSE_SPAN_PER_ROW = 4      # a span up to 4 bytes per row is counted directly
DENSE_MIN_SPAN = 1 << 16    # ... and any span up to this
PART_ROWS = 1 << 15         # rows per radix part: a part's table stays in L2
_SAT = 255                  # dense counts saturate here (such keys are counted again)


@dataclass
class Found:
    """Duplicates among the pieces' rows (positions: module docstring)."""

    offsets: np.ndarray                   # piece p starts at position offsets[p]; a multiple of 8
    flags: np.ndarray | None = None       # bitmap of duplicate positions; None: no row, or `every`
    every: bool = False                   # every non-NULL row is a duplicate
    rows: int = 0                         # duplicate rows
    keys: int = 0                         # keys that occur more than once
    sample: list[tuple[int, int]] = field(default_factory=list)   # (count, first position), most repeated first
    method: str = "proof"                 # which of the module docstring's methods settled it

    def bits(self, p: int, col: keys.ExactColumn) -> tuple[np.ndarray, int]:
        """(bitmap, bit offset) of piece p's duplicate rows, in its own numbering (bit
        offset + i is row i); an empty bitmap means every row (unique.gather_rows)."""
        if self.every:
            return col.valid, col.valid_offset
        start = int(self.offsets[p]) >> 3
        return self.flags[start:start + (len(col.values) + 7) // 8], 0

    def locate(self, position: int) -> tuple[int, int]:
        """(piece, row within it) of a position."""
        p = int(np.searchsorted(self.offsets, position, side="right")) - 1
        return p, position - int(self.offsets[p])


def find(cols: Sequence[keys.ExactColumn]) -> Found:
    """Duplicate rows and keys among `cols`, the pieces of one key column in (source,
    row) order; so the first position of a key is its first row."""
    sizes = np.array([len(c.values) for c in cols], np.int64)
    offsets = np.zeros(len(cols) + 1, np.int64)
    np.cumsum((sizes + 7) // 8 * 8, out=offsets[1:])
    found = Found(offsets)
    valid = sum(len(c.values) - c.nulls for c in cols)
    if valid < 2 or _increasing_apart(cols):
        return found
    found.method = "few keys"
    if _few_keys(cols, found):
        return found
    span = _int_span(cols)
    if span is not None and span[1] - span[0] < max(DENSE_MIN_SPAN, DENSE_SPAN_PER_ROW * valid):
        found.method = "dense"
        _dense(cols, span[0], span[1] - span[0] + 1, found)
    else:
        found.method = "partitioned"
        _partitioned(cols, valid, found)
    return found


# --- 1. proof: increasing over disjoint ranges -------------------------------------------

@numba.njit(cache=True, nogil=True, inline="always")
def _sortable(v, is_float):
    # a canonical value as an int64 in the order of its float (the bits of a negative float
    # grow as it falls: all but the sign flipped); one to one, so distinct stays distinct
    if is_float and v < 0:
        return v ^ np.int64(0x7FFFFFFFFFFFFFFF)
    return v


@numba.njit(cache=True, nogil=True)
def _increasing(values, is_float, valid, voff):
    # (strictly increasing over the non-NULL rows, first value, last value, any row), in
    # the order of _sortable; stops at the first row not above the one before
    first = np.int64(0)
    last = np.int64(0)
    seen = False
    for i in range(values.shape[0]):
        if not valid_at(valid, voff, i):
            continue
        v = _sortable(canon(values[i], is_float), is_float)
        if seen and v <= last:
            return False, first, last, True
        if not seen:
            first = v
            seen = True
        last = v
    return True, first, last, seen


def _increasing_apart(cols: Sequence[keys.ExactColumn]) -> bool:
    spans = []
    for c in cols:
        inc, first, last, seen = _increasing(c.values, c.is_float, c.valid, c.valid_offset)
        if not inc:
            return False
        if seen:
            spans.append((int(first), int(last)))
    spans.sort()
    return all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


# --- 2. few keys: one table ---------------------------------------------------------------

_SMALL_SHIFT = np.uint64(64 - 16)          # slots: the top 16 bits of a product (2 * SMALL_KEYS)
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio


@numba.njit(cache=True, nogil=True, inline="always")
def _small_slot(v, forced, use_forced):
    # Fibonacci hashing: one multiply, where _mix takes two and the shifts between
    if use_forced:
        return forced >> _SMALL_SHIFT
    return (np.uint64(v) * _FIBONACCI) >> _SMALL_SHIFT


@numba.njit(cache=True, nogil=True)
def _small_count(values, is_float, valid, voff, pos0, forced, use_forced, tkeys, tcount, tfirst, used, limit):
    # count each key of the piece in the table; the new number of keys, or -1 past `limit`
    mask = np.uint64(tkeys.shape[0] - 1)
    for i in range(values.shape[0]):
        if not valid_at(valid, voff, i):
            continue
        v = canon(values[i], is_float)
        s = _small_slot(v, forced, use_forced)
        while tcount[s] != 0 and tkeys[s] != v:
            s = (s + np.uint64(1)) & mask
        if tcount[s] == 0:
            if used == limit:
                return -1
            used += 1
            tkeys[s] = v
            tfirst[s] = pos0 + i
        tcount[s] += 1
    return used


@numba.njit(cache=True, nogil=True)
def _small_flag(values, is_float, valid, voff, forced, use_forced, tkeys, tcount, out):
    # the piece's duplicate rows as whole bytes of `out`; returns how many
    mask = np.uint64(tkeys.shape[0] - 1)
    n = values.shape[0]
    flagged = 0
    for w in range((n + 7) >> 3):
        byte = 0
        for i in range(w << 3, min(n, (w << 3) + 8)):
            if valid_at(valid, voff, i):
                v = canon(values[i], is_float)
                s = _small_slot(v, forced, use_forced)
                while tkeys[s] != v:
                    s = (s + np.uint64(1)) & mask
                dup = tcount[s] > 1
                byte |= (1 if dup else 0) << (i & 7)
                flagged += 1 if dup else 0
        out[w] = np.uint8(byte)
    return flagged


def _few_keys(cols: Sequence[keys.ExactColumn], found: Found) -> bool:
    """Method 2; False (found untouched) when there are more than SMALL_KEYS keys."""
    slots = 1 << (64 - int(_SMALL_SHIFT))
    tkeys, tcount, tfirst = np.empty(slots, np.int64), np.zeros(slots, np.int64), np.empty(slots, np.int64)
    forced, use_forced = keys.forced()
    used = 0
    for c, pos0 in zip(cols, found.offsets):
        used = _small_count(c.values, c.is_float, c.valid, c.valid_offset, pos0, forced, use_forced,
                            tkeys, tcount, tfirst, used, SMALL_KEYS)
        if used < 0:
            return False
    dup = tcount > 1
    counts, firsts = tcount[dup], tfirst[dup]
    found.keys, found.sample = len(counts), _top(counts, firsts)
    if not (tcount == 1).any():                 # no key occurs once: every row is a duplicate
        found.every = found.keys > 0
        found.rows = int(counts.sum())
        return True
    flags = keys.empty(int(found.offsets[-1]) >> 3, np.uint8)
    for c, pos0 in zip(cols, found.offsets):
        start = int(pos0) >> 3
        found.rows += _small_flag(c.values, c.is_float, c.valid, c.valid_offset, forced, use_forced,
                                  tkeys, tcount, flags[start:start + (len(c.values) + 7) // 8])
    found.flags = flags if found.rows else None
    return True


# --- 3. dense integers: a byte per value --------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _min_max(values, valid, voff):
    if valid.shape[0] == 0:
        return values.min(), values.max()
    lo = np.int64(0x7FFFFFFFFFFFFFFF)
    hi = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    top = np.int64(0x7FFFFFFFFFFFFFFF)
    bottom = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    for i in range(values.shape[0]):
        ok = valid_at(valid, voff, i)           # no branch: NULLs come in no order
        lo = min(lo, values[i] if ok else top)
        hi = max(hi, values[i] if ok else bottom)
    return lo, hi


def _int_span(cols: Sequence[keys.ExactColumn]) -> tuple[int, int] | None:
    """(smallest, largest) value of integer-like pieces (None for floats)."""
    if any(c.is_float for c in cols):
        return None
    bounds = [_min_max(c.values, c.valid, c.valid_offset) for c in cols if len(c.values) > c.nulls]
    return min(int(lo) for lo, _ in bounds), max(int(hi) for _, hi in bounds)


@numba.njit(cache=True, nogil=True)
def _dense_count(values, valid, voff, lo, counts):
    for i in range(values.shape[0]):
        if valid_at(valid, voff, i):
            d = values[i] - lo
            c = counts[d]
            counts[d] = c + (1 if c < _SAT else 0)


@numba.njit(cache=True, nogil=True)
def _dense_summary(counts, hist):
    # hist[c]: values counted c times (255: 255 or more); hist[0] is not counted
    ones = 0
    for i in range(counts.shape[0]):
        ones += 1 if counts[i] == 1 else 0
    hist[1] = ones
    for i in range(counts.shape[0]):
        if counts[i] > 1:                    # rare in a wide span: a branch that predicts
            hist[counts[i]] += 1


@numba.njit(cache=True, nogil=True)
def _dense_flag(values, valid, voff, lo, counts, out):
    # the piece's duplicate rows as whole bytes of `out`; returns how many
    n = values.shape[0]
    flagged = 0
    for w in range((n + 7) >> 3):
        byte = 0
        for i in range(w << 3, min(n, (w << 3) + 8)):
            dup = valid_at(valid, voff, i) and counts[values[i] - lo] > 1
            byte |= (1 if dup else 0) << (i & 7)
            flagged += 1 if dup else 0
        out[w] = np.uint8(byte)
    return flagged


@numba.njit(cache=True, nogil=True)
def _dense_firsts(values, valid, voff, lo, counts, threshold, above, tied, pos0, out_count, out_first, k):
    # the first rows of the keys counted more than `threshold` times (below _SAT; `above`
    # of them) and of the first `tied` keys counted exactly `threshold` times; a key
    # found is zeroed in `counts`; stops once every one is found
    for i in range(values.shape[0]):
        if above == 0 and tied == 0:
            break
        if valid_at(valid, voff, i):
            d = values[i] - lo
            c = counts[d]
            take = (threshold < c < _SAT) or (c == threshold and tied > 0)
            if take:
                above -= 1 if c > threshold else 0
                tied -= 1 if c == threshold else 0
                counts[d] = 0
                out_count[k] = c
                out_first[k] = pos0 + i
                k += 1
    return k, above, tied


def _dense(cols: Sequence[keys.ExactColumn], lo: int, span: int, found: Found) -> None:
    counts = keys.zeros(span, np.uint8)
    lo64 = np.int64(lo)
    for c in cols:
        _dense_count(c.values, c.valid, c.valid_offset, lo64, counts)
    hist = np.zeros(_SAT + 1, np.int64)
    _dense_summary(counts, hist)
    found.keys = int(hist[2:].sum())
    if not found.keys:
        return
    if hist[1] == 0:                        # no key occurs once: every row is a duplicate
        found.every = True
        found.rows = sum(len(c.values) - c.nulls for c in cols)
    else:
        flags = keys.empty(int(found.offsets[-1]) >> 3, np.uint8)
        for c, pos0 in zip(cols, found.offsets):
            start = int(pos0) >> 3
            found.rows += _dense_flag(c.values, c.valid, c.valid_offset, lo64, counts,
                                      flags[start:start + (len(c.values) + 7) // 8])
        found.flags = flags
    found.sample = _dense_sample(cols, found, counts, lo, hist)


def _dense_sample(cols: Sequence[keys.ExactColumn], found: Found, counts: np.ndarray, lo: int,
                  hist: np.ndarray) -> list[tuple[int, int]]:
    """The SAMPLE most repeated keys: those counted _SAT times or more (counted again
    exactly), then the most repeated of the others, found by one scan of the rows that
    stops once it has them all."""
    sample = []
    if hist[_SAT]:
        at = np.flatnonzero(counts == _SAT)
        sample = _top(*_recount(cols, found, at + np.int64(lo)))
    need = SAMPLE - len(sample)
    threshold, above, tied = _SAT, 0, 0
    for c in range(_SAT - 1, 1, -1):        # the counts of the `need` most repeated
        if need <= 0 or not hist[c]:
            continue
        threshold, above, tied = c, above + tied, min(int(hist[c]), need)
        need -= tied
    if above + tied == 0:
        return sample
    out_count, out_first = np.empty(above + tied, np.int64), np.empty(above + tied, np.int64)
    k, lo64 = 0, np.int64(lo)
    for c, pos0 in zip(cols, found.offsets):
        k, above, tied = _dense_firsts(c.values, c.valid, c.valid_offset, lo64, counts, threshold,
                                       above, tied, pos0, out_count, out_first, k)
    return sample + _top(out_count[:k], out_first[:k])


@numba.njit(cache=True, nogil=True)
def _count_known(values, is_float, valid, voff, pos0, forced, use_forced, tkeys, tused, tcount, tfirst):
    # count the rows whose key is in the table (the others are skipped), and the first
    mask = np.uint64(tkeys.shape[0] - 1)
    for i in range(values.shape[0]):
        if valid_at(valid, voff, i):
            v = canon(values[i], is_float)
            s = hash1(v, forced, use_forced) & mask
            while tused[s] and tkeys[s] != v:
                s = (s + np.uint64(1)) & mask
            if tused[s]:
                if tcount[s] == 0:
                    tfirst[s] = pos0 + i
                tcount[s] += 1


@numba.njit(cache=True, nogil=True)
def _table_of(values, forced, use_forced, tkeys, tused, slot):
    # distinct `values` into an empty table; slot[i]: where values[i] went
    mask = np.uint64(tkeys.shape[0] - 1)
    for i in range(values.shape[0]):
        v = values[i]
        s = hash1(v, forced, use_forced) & mask
        while tused[s] and tkeys[s] != v:
            s = (s + np.uint64(1)) & mask
        tused[s] = True
        tkeys[s] = v
        slot[i] = s


def _recount(cols: Sequence[keys.ExactColumn], found: Found, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exact count, first position) of each of the distinct integer `values`."""
    slots = keys.capacity(len(values))
    tkeys, tused = np.empty(slots, np.int64), np.zeros(slots, np.bool_)
    tcount, tfirst = np.zeros(slots, np.int64), np.zeros(slots, np.int64)
    slot = np.empty(len(values), np.int64)
    forced, use_forced = keys.forced()
    _table_of(values, forced, use_forced, tkeys, tused, slot)
    for c, pos0 in zip(cols, found.offsets):
        _count_known(c.values, c.is_float, c.valid, c.valid_offset, pos0, forced, use_forced,
                     tkeys, tused, tcount, tfirst)
    return tcount[slot], tfirst[slot]


# --- 4. radix-partitioned hashing -----------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _part_hist(values, is_float, valid, voff, shift, forced, use_forced, hist):
    for i in range(values.shape[0]):
        if valid_at(valid, voff, i):
            hist[hash1(canon(values[i], is_float), forced, use_forced) >> shift] += 1


@numba.njit(cache=True, nogil=True)
def _part_scatter(values, is_float, valid, voff, shift, forced, use_forced, pos0, fill, out_v, out_p):
    # each non-NULL row's value and position into its part, in position order
    for i in range(values.shape[0]):
        if valid_at(valid, voff, i):
            v = canon(values[i], is_float)
            b = hash1(v, forced, use_forced) >> shift
            j = fill[b]
            out_v[j] = v
            out_p[j] = pos0 + i
            fill[b] = j + 1


@numba.njit(cache=True, nogil=True)
def _part_count(out_v, out_p, bounds, forced, use_forced, flags, dcount, dfirst):
    # count each part in its own table (slots from the hash bits below the part's);
    # flag the duplicate positions, list each duplicate key's count and first position
    biggest = 1
    for b in range(bounds.shape[0] - 1):
        biggest = max(biggest, bounds[b + 1] - bounds[b])
    cap = keys.table_size(biggest)
    tkeys = np.empty(cap, np.int64)
    tcount = np.zeros(cap, np.int64)
    tfirst = np.empty(cap, np.int64)
    slot = np.empty(biggest, np.int64)
    k = 0
    flagged = 0
    for b in range(bounds.shape[0] - 1):
        lo, hi = bounds[b], bounds[b + 1]
        keys.count_part(out_v, out_p, lo, hi, forced, use_forced, tkeys, tcount, tfirst, slot)
        for j in range(lo, hi):
            s = slot[j - lo]
            c = tcount[s]
            if c > 1:
                p = out_p[j]
                flags[p >> 3] |= np.uint8(1 << (p & 7))
                flagged += 1
                if tfirst[s] == p:
                    dcount[k] = c
                    dfirst[k] = p
                    k += 1
    return k, flagged


def _partitioned(cols: Sequence[keys.ExactColumn], valid: int, found: Found) -> None:
    bits = 1                           # at least two parts: a shift of 64 bits is undefined
    while (valid >> bits) > PART_ROWS and bits < 16:
        bits += 1
    shift = np.uint64(64 - bits)
    forced, use_forced = keys.forced()
    hist = np.zeros(1 << bits, np.int64)
    for c in cols:
        _part_hist(c.values, c.is_float, c.valid, c.valid_offset, shift, forced, use_forced, hist)
    bounds = np.zeros(len(hist) + 1, np.int64)
    np.cumsum(hist, out=bounds[1:])
    positions = int(found.offsets[-1])
    out_v = keys.empty(valid, np.int64)
    out_p = keys.empty(valid, np.uint32 if positions < 2**32 else np.int64)
    fill = bounds[:-1].copy()
    for c, pos0 in zip(cols, found.offsets):
        _part_scatter(c.values, c.is_float, c.valid, c.valid_offset, shift, forced, use_forced,
                      pos0, fill, out_v, out_p)
    flags = keys.zeros(positions >> 3, np.uint8)
    room = valid // 2 + 1
    dcount, dfirst = keys.empty(room, np.int64), keys.empty(room, np.int64)
    k, found.rows = _part_count(out_v, out_p, bounds, forced, use_forced, flags, dcount, dfirst)
    found.flags = flags if found.rows else None
    found.keys, found.sample = k, _top(dcount[:k], dfirst[:k])


def _top(counts: np.ndarray, firsts: np.ndarray) -> list[tuple[int, int]]:
    """(count, first position) of the SAMPLE most repeated keys, ties by first position."""
    pick = most_repeated(counts, lambda tied, k: tied[np.argpartition(firsts[tied], k - 1)[:k]])
    pick = pick[np.lexsort((firsts[pick], -counts[pick]))]
    return [(int(counts[i]), int(firsts[i])) for i in pick]
