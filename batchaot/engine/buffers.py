"""Arrays of different lengths handed to Numba kernels by address.

A kernel that reads k columns needs k arrays. ``numba.typed.List`` would carry them, but
Numba compiles a typed list's methods anew in every process (they are not cached on
disk): about half a second before the first batch of every worker and every CLI run.
Instead a kernel takes two int64 arrays, addresses and lengths, and views entry j as an
array with ``i64_at`` / ``u8_at`` (no copy). The caller keeps a :class:`Buffers` alive
for the duration of the call, which keeps the arrays alive.
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
from numba import types
from llvmlite import ir
from numba.extending import intrinsic


def _pointer_intrinsic(element):
    ptr = types.CPointer(element)

    @intrinsic
    def as_pointer(typingctx, addr):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))
        return ptr(types.int64), codegen

    return as_pointer


_i64_pointer = _pointer_intrinsic(types.int64)
_u8_pointer = _pointer_intrinsic(types.uint8)


@numba.njit(inline="always")
def i64_at(addrs, lens, j):
    """Entry j of an int64 Buffers as an array."""
    return numba.carray(_i64_pointer(addrs[j]), lens[j])


@numba.njit(inline="always")
def u8_at(addrs, lens, j):
    """Entry j of a uint8 Buffers as an array."""
    return numba.carray(_u8_pointer(addrs[j]), lens[j])


@intrinsic
def load_u64(typingctx, arr, idx):
    """The 8 bytes of a uint8 array at [idx, idx + 8) as a little-endian uint64: one
    unaligned load (string kernels read 8 bytes at a time, fused kernels 64 validity
    bits). The caller keeps idx + 8 within the array."""
    sig = types.uint64(arr, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)
    return sig, codegen


class Buffers:
    """Addresses and lengths of 1-D contiguous arrays of one dtype (int64 or uint8)."""

    def __init__(self, arrays: Sequence[np.ndarray], dtype):
        dtype = np.dtype(dtype)
        self.arrays = [np.ascontiguousarray(a) for a in arrays]
        for a in self.arrays:
            if a.dtype != dtype or a.ndim != 1:
                raise TypeError(f"Buffers of {dtype} take 1-D {dtype} arrays, not {a.ndim}-D {a.dtype}")
        # one dummy entry keeps the arrays non-empty (a kernel never reads it)
        self.addr = np.array([a.ctypes.data for a in self.arrays] or [0], dtype=np.int64)
        self.lens = np.array([len(a) for a in self.arrays] or [0], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def bitmap_rows(words, n):
    """Positions of the set bits among the first `n` bits of `words` (bit i & 63 of word
    i >> 6), ascending: a violation bitmap's row numbers. Zero words are skipped, so a
    bitmap with few violations costs a scan of its words."""
    nwords = min(words.shape[0], (n + 63) >> 6)
    count = 0
    for w in range(nwords):
        x = words[w]
        while x:
            x &= x - np.uint64(1)
            count += 1
    out = np.empty(count, dtype=np.int64)
    k = 0
    for w in range(nwords):
        x = words[w]
        if x == 0:
            continue
        base = w << 6
        for b in range(64):
            if (x >> np.uint64(b)) & np.uint64(1):
                out[k] = base + b
                k += 1
    while k > 0 and out[k - 1] >= n:      # bits past the last row (never set by kernels)
        k -= 1
    return out[:k]
