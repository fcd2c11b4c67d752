"""The word-at-a-time (SWAR) primitives the string kernels share (their input, Arrow
string buffers, is arrow.py).

numba reads these module-level constants as compile-time constants of the kernels.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types as nbt
from numba.extending import intrinsic

from ..pointers import load_u64
from .arrow import short_hash


@intrinsic
def _trailing_zeros(typingctx, x):
    sig = nbt.int64(nbt.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))
    return sig, codegen


_ONE = np.uint64(1)
_LOW_ONES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)


@numba.njit(nogil=True, inline="always")
def _is_null(bitmap, bitoff, i):
    """Row i is NULL by its Arrow validity bitmap (bit offset -1: no NULLs)."""
    if bitoff < 0:
        return False
    bit = bitoff + i
    return not (bitmap[bit >> 3] >> (bit & 7)) & 1


@numba.njit(nogil=True, inline="always")
def _zero_byte(x):
    """Nonzero iff some byte of x is zero."""
    return (x - _LOW_ONES) & ~x & _HIGH_BITS


@numba.njit(nogil=True, inline="always")
def _load_head(data, a, n):
    """The first min(n, 8) bytes at data[a:] as a little-endian uint64, zero-filled."""
    if n <= 0:
        return np.uint64(0)
    if a + 8 <= data.shape[0]:
        x = load_u64(data, a)
        if n < 8:
            x &= (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
        return x
    x = np.uint64(0)
    for k in range(min(n, 8)):
        x |= np.uint64(data[a + k]) << np.uint64(8 * k)
    return x


_short_hash = numba.njit(inline="always")(short_hash)


_MASKS = np.array([(1 << b) - 1 if b < 64 else (1 << 64) - 1 for b in range(65)], dtype=np.uint64)


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)


@numba.njit(nogil=True, inline="always")
def _equal_bytes(x, pattern):
    """The high bit of each byte of x that equals the pattern's byte (exact, no borrow)."""
    y = x ^ pattern
    return ~(((y & _LOW7) + _LOW7) | y | _LOW7)


_GATHER = np.uint64(0x0102040810204080)   # bit 0 of byte k -> bit 56 + k (no carries)


@numba.njit(nogil=True, inline="always")
def _byte_bits(hits):
    """The high bit of each byte of `hits` -> bit k for byte k."""
    return np.uint8(((hits >> np.uint64(7)) * _GATHER) >> np.uint64(56))
