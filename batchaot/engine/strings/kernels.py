"""Numba kernels over Arrow string buffers: each writes entries [lo, hi) of a lookup
table, one per row (a dense byte DFA, a sparse one, literal sets, length); and the
dictionary encoder (encode.py). Callers reach them through engine/aot.py."""
from __future__ import annotations

import numba
import numpy as np

from ..pointers import load_u64
from .automata import _DEAD, _MATCH, _NEXT, _STAY
from .arrow import _K0, _K1
from .swar import (_LOW_ONES, _MASKS, _ONE, _byte_bits, _equal_bytes, _is_null, _load_head, _short_hash,
                   _trailing_zeros, _zero_byte)


@numba.njit(nogil=True, cache=True)
def _dfa_kernel(offsets, data, bitmap, bitoff, lo, hi, act, trans, final, skip, swar, start,
                prefix, nprefix, prefix_word, prefix_mask, after_prefix, negate, miss_is_null,
                words, valid):
    """Run the DFA (see Dfa) over rows [lo, hi)."""
    ndata = data.shape[0]
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        j = np.int64(offsets[i])
        end = np.int64(offsets[i + 1])
        s = start
        if nprefix:
            ok = end - j >= nprefix
            if ok and nprefix <= 8 and j + 8 <= ndata:
                ok = ((load_u64(data, j) ^ prefix_word) & prefix_mask) == 0
            elif ok:
                for k in range(nprefix):
                    if data[j + k] != prefix[k]:
                        ok = False
                        break
            s = after_prefix if ok else -1
            j += nprefix
        # s >= 0: a live state; -1: no match; -2: a match, whatever follows
        while s >= 0 and j < end:
            base = s << 8
            if skip[s]:
                found = False
                if swar[s, 4]:
                    p0, p1, p2, high = swar[s, 0], swar[s, 1], swar[s, 2], swar[s, 3]
                    # words may reach past the row (not past the buffer): bytes beyond
                    # `end` are masked off, so short rows take one step and no byte loop
                    while j + 8 <= ndata:
                        x = load_u64(data, j)
                        hits = _zero_byte(x ^ p0) | _zero_byte(x ^ p1) | _zero_byte(x ^ p2) | (x & high)
                        left = end - j
                        if left < 8:
                            hits &= (_ONE << np.uint64(8 * left)) - _ONE
                        if hits != 0:   # the lowest flagged byte is the first candidate
                            shift = _trailing_zeros(hits) & 56
                            j += shift >> 3
                            b = np.int64((x >> np.uint64(shift)) & np.uint64(255))
                            if act[base + b] != _STAY:
                                found = True
                                break
                            j += 1      # a byte >= 0x80 that does not move it
                            if j >= end:
                                break
                        elif left <= 8:
                            j = end
                            break
                        else:
                            j += 8
                if not found:
                    while j < end and act[base + data[j]] == _STAY:
                        j += 1
                    if j >= end:
                        break
            b = np.int64(data[j])
            j += 1
            a = act[base + b]
            if a == _NEXT:
                s += 1
            elif a == _STAY:
                pass
            elif a == _DEAD:
                s = -1
            elif a == _MATCH:
                s = -2
            else:
                s = trans[base + b]
        hit = s == -2 or (s >= 0 and final[s] != 0)
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null else 1


@numba.njit(nogil=True, cache=True)
def _length_kernel(offsets, data, bitmap, bitoff, lo, hi, words, valid):
    """Code points per row: bytes that are not UTF-8 continuation bytes (10xxxxxx)."""
    if hi <= lo:
        return
    chunk = data[np.int64(offsets[lo]):np.int64(offsets[hi])]
    seen = np.uint8(0)
    for j in range(chunk.shape[0]):
        seen |= chunk[j]
    ascii_only = seen < 128
    for i in range(lo, hi):
        a = np.int64(offsets[i])
        b = np.int64(offsets[i + 1])
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        if ascii_only:
            words[i] = b - a
        else:
            row = data[a:b]
            n = 0
            for j in range(row.shape[0]):
                n += (row[j] & 0xC0) != 0x80
            words[i] = n
        valid[i] = 1


@numba.njit(nogil=True, cache=True)
def _set_kernel(offsets, data, bitmap, bitoff, lo, hi, wdata, woffsets, by_len, table, mult, shift,
                negate, miss_is_null, words, valid):
    """Whether each row equals one of the literal strings: up to 16 bytes by one probe
    of the literals' hash table (_Words), longer ones against the literals of their
    length, byte by byte."""
    maxlen = by_len.shape[0] - 2
    ndata = data.shape[0]
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        a = np.int64(offsets[i])
        n = np.int64(offsets[i + 1]) - a
        hit = False
        if n <= 16 and mult != 0:
            if a + 16 <= ndata:
                w0 = load_u64(data, a) & _MASKS[min(8 * n, 64)]
                w1 = load_u64(data, a + 8) & _MASKS[max(8 * n - 64, 0)]
            else:
                w0 = _load_head(data, a, n)
                w1 = _load_head(data, a + 8, n - 8)
            slot = np.int64((_short_hash(w0, w1, np.uint64(n)) * mult) >> shift)
            hit = (table[slot, 0] == w0) & (table[slot, 1] == w1) & (table[slot, 2] == np.uint64(n))
        elif n <= maxlen:
            for k in range(by_len[n], by_len[n + 1]):
                w = woffsets[k]
                same = True
                for m in range(n):
                    if data[a + m] != wdata[w + m]:
                        same = False
                        break
                if same:
                    hit = True
                    break
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null and not negate else 1


@numba.njit(nogil=True, cache=True)
def _special_bits(data, d0, d1, p0, p1, p2, nspecial):
    """A bitmap of data[d0:d1]: bit k set iff data[d0 + k] is special. Eight bytes per
    step; one loop per number of special bytes, so that each is branch-free and
    vectorizes (a test inside the loop, or comparing against all three patterns
    always, made this pass 2-3x slower). 16 zero bytes of padding let readers load
    any 8 bytes."""
    n = d1 - d0
    whole = min(n >> 3, (data.shape[0] - d0) >> 3)
    bits = np.empty((n >> 3) + 16, dtype=np.uint8)
    bits[whole:] = 0
    if nspecial == 1:
        for m in range(whole):
            bits[m] = _byte_bits(_equal_bytes(load_u64(data, d0 + 8 * m), p0))
    elif nspecial == 2:
        for m in range(whole):
            w = load_u64(data, d0 + 8 * m)
            bits[m] = _byte_bits(_equal_bytes(w, p0) | _equal_bytes(w, p1))
    else:
        for m in range(whole):
            w = load_u64(data, d0 + 8 * m)
            bits[m] = _byte_bits(_equal_bytes(w, p0) | _equal_bytes(w, p1) | _equal_bytes(w, p2))
    for k in range(8 * whole, n):                        # the last few bytes, one at a time
        b = np.uint64(data[d0 + k]) * _LOW_ONES
        if b == p0 or b == p1 or b == p2:
            bits[k >> 3] |= np.uint8(1 << (k & 7))
    return bits


@numba.njit(nogil=True, cache=True)
def _sparse_kernel(offsets, data, bitmap, bitoff, lo, hi, patterns, kind, step, term, verdict,
                   negate, miss_is_null, words, valid):
    """Run a Sparse DFA over rows [lo, hi).

    One branch-free pass marks the special bytes of the rows' data in a bitmap (1 bit
    per byte); each row then reads its bits 56 at a time and moves once per special
    byte found (with the gap before it, if any), so a row of up to 56 bytes is one load.
    """
    if hi <= lo:
        return
    p0, p1, p2 = patterns[0], patterns[1], patterns[2]
    nspecial = 1 if p1 == p0 else (2 if p2 == p1 else 3)
    only = kind[np.int64(p0 & np.uint64(255))]   # one special byte: its kind, without reading it
    d0 = np.int64(offsets[lo])
    bits = _special_bits(data, d0, np.int64(offsets[hi]), p0, p1, p2, nspecial)
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        a = np.int64(offsets[i]) - d0
        end = np.int64(offsets[i + 1]) - d0
        s = np.int64(0)
        last = a - 1                      # where the last special byte was
        j = a
        while j < end and term[s] == 0:
            take = min(end - j, 56)
            win = (load_u64(bits, j >> 3) >> np.uint64(j & 7)) & ((_ONE << np.uint64(take)) - _ONE)
            while win != 0:          # terminal states absorb: checked once per window
                pos = j + _trailing_zeros(win)
                k = only if nspecial == 1 else kind[np.int64(data[d0 + pos])]
                s = step[s * 8 + np.int64(pos - last > 1) * 4 + k]
                last = pos
                win &= win - _ONE
            j += take
        hit = verdict[s * 2 + np.int64(end - last > 1)] != 0
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null else 1


# -- dictionary encoding (encode.py) ---------------------------------------------

@numba.njit(nogil=True, inline="always")
def _slot_of(w0, w1, n, mask):
    return np.int64((_short_hash(w0, w1, np.uint64(n)) * _K1) >> np.uint64(40)) & mask


@numba.njit(nogil=True, cache=True)
def _grow(table, mask):
    """The open-addressing table rehashed into twice the slots."""
    bigger = np.zeros((2 * table.shape[0], 4), dtype=np.uint64)
    new_mask = 2 * table.shape[0] - 1
    for t in range(table.shape[0]):
        if table[t, 3] != 0:
            s = _slot_of(table[t, 0], table[t, 1], np.int64(table[t, 2]), new_mask)
            while bigger[s, 3] != 0:
                s = (s + 1) & new_mask
            bigger[s] = table[t]
    return bigger, new_mask


@numba.njit(nogil=True, cache=True)
def _encode_kernel(offsets, data, bitmap, bitoff, codes, first):
    """Hash each row's bytes into an open-addressing table of distinct values; -1 once
    there are more than first.shape[0] of them. Strings of up to 16 bytes are two
    zero-padded words, hashed and compared without a loop.

    The table starts at 64 slots and doubles at half full: a row (w0, w1, length,
    code + 1; 0 empty) per slot, so a probe touches one cache line, and a column of
    a few statuses probes a table that stays in L1."""
    cap = first.shape[0]
    table = np.zeros((64, 4), dtype=np.uint64)
    mask = 63
    ndistinct = 0
    ndata = data.shape[0]
    for i in range(codes.shape[0]):
        if _is_null(bitmap, bitoff, i):
            continue
        a = np.int64(offsets[i])
        n = np.int64(offsets[i + 1]) - a
        short = n <= 16
        if short and a + 16 <= ndata:
            w0 = load_u64(data, a)
            w1 = load_u64(data, a + 8)
            keep = 8 * n
            w0 &= _MASKS[min(keep, 64)]
            w1 &= _MASKS[max(keep - 64, 0)]
        elif short:
            w0 = _load_head(data, a, n)
            w1 = _load_head(data, a + 8, n - 8)
        else:
            w0 = np.uint64(0)
            w1 = np.uint64(0)
            k = 0
            while k < n:
                w1 = (w1 ^ _load_head(data, a + k, n - k)) * _K0
                k += 8
        s = _slot_of(w0, w1, n, mask)
        while True:
            c = table[s, 3]
            if c == 0:                          # a new value
                if ndistinct == cap:
                    return -1
                table[s, 0] = w0
                table[s, 1] = w1
                table[s, 2] = np.uint64(n)
                table[s, 3] = np.uint64(ndistinct + 1)
                first[ndistinct] = i
                codes[i] = ndistinct
                ndistinct += 1
                if 2 * ndistinct > mask:
                    table, mask = _grow(table, mask)
                break
            if table[s, 0] == w0 and table[s, 1] == w1 and table[s, 2] == np.uint64(n):
                code = np.int64(c) - 1
                same = True
                if not short:                   # words were a digest: compare the bytes
                    b = np.int64(offsets[first[code]])
                    k = 0
                    while same and k < n:
                        same = _load_head(data, a + k, n - k) == _load_head(data, b + k, n - k)
                        k += 8
                if same:
                    codes[i] = code
                    break
            s = (s + 1) & mask
    return ndistinct
