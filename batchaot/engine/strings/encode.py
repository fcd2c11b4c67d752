"""Dictionary encoding of a low-cardinality string column, in one Numba pass."""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from ..buffers import load_u64
from .regex import _Unsupported
from .swar import _K0, _K1, _K2, _MASKS, _is_null, _load_head, string_buffers

ENCODE_MAX_DISTINCT = 4096          # codes are uint16


def encode(values: pa.Array) -> tuple[np.ndarray, pa.Array] | None:
    """(uint16 codes, dictionary) of a string array with few distinct values, or None
    when it has more than ENCODE_MAX_DISTINCT. Codes of NULL rows are 0; the dictionary
    holds no NULL. Several times faster than pc.dictionary_encode on short strings.
    Two-byte codes: a quarter of the memory traffic of int64 words, for the encoder
    writing them and the kernel reading them."""
    try:
        buffers = string_buffers(values)
    except _Unsupported:
        return None
    offsets, data, bitmap, bitoff = buffers
    codes = np.zeros(len(values), dtype=np.uint16)
    first = np.zeros(ENCODE_MAX_DISTINCT, dtype=np.int64)
    ndistinct = _encode_kernel(offsets, data, bitmap, bitoff, codes, first)
    if ndistinct < 0:
        return None
    dictionary = values.take(pa.array(first[:ndistinct]))
    return codes, dictionary


@numba.njit(nogil=True, inline="always")
def _slot_of(w0, w1, n, mask):
    h = (w0 * _K0) ^ (w1 * _K1) ^ (np.uint64(n) * _K2)
    h ^= h >> np.uint64(29)
    return np.int64((h * _K1) >> np.uint64(40)) & mask


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
