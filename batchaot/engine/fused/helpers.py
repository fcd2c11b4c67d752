"""Runtime helpers that generated kernels import (and nothing else in them is imported).

Registers are int64 words (float64 bits for *_F opcodes), so every float operation
is a word -> word helper. They are plain @njit functions, not inline="always":
numba inlines those at the IR level, once per call site over the whole kernel,
which made compile time quadratic in the rule count; LLVM inlines these instead.
The semantics are vm.py's own helpers, called here, never restated.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import vm
from ..pointers import i64_at, load_u64, u8_at  # noqa: F401  (i64_at, u8_at: generated kernels' runtime)


@njit(inline="always")
def _f(w):
    return np.int64(w).view(np.float64)


@njit(inline="always")
def _w(x):
    return np.float64(x).view(np.int64)


@njit(cache=True, nogil=True)
def add_f(b, c):
    return _w(_f(b) + _f(c))


@njit(cache=True, nogil=True)
def sub_f(b, c):
    return _w(_f(b) - _f(c))


@njit(cache=True, nogil=True)
def mul_f(b, c):
    return _w(_f(b) * _f(c))


@njit(cache=True, nogil=True)
def div_f(b, c):
    x, y = _f(b), _f(c)
    if y == 0.0:   # IEEE without numba's ZeroDivisionError: the VM's DIV_F expression
        return _w(np.nan if (x == 0.0 or x != x) else math.copysign(np.inf, x) * math.copysign(1.0, y))
    return _w(x / y)


@njit(cache=True, nogil=True)
def mod_f(b, c):
    y = _f(c)
    return _w(np.nan if y == 0.0 else np.fmod(_f(b), y))


@njit(cache=True, nogil=True)
def neg_f(b):
    return _w(-_f(b))


@njit(cache=True, nogil=True)
def abs_f(b):
    return _w(abs(_f(b)))


@njit(cache=True, nogil=True)
def round_f(b, digits):
    return _w(vm.round_digits(_f(b), digits))


@njit(cache=True, nogil=True)
def i2f(b):
    return _w(np.float64(b))


@njit(cache=True, nogil=True)
def f2s(b):
    return _w(np.float64(np.float32(_f(b))))


@njit(cache=True, nogil=True)
def f2i_ok(b):
    """Whether F2I gives a value: rint(x) is a number inside int64."""
    x = np.rint(_f(b))
    return (x >= -vm._TWO63) & (x < vm._TWO63)


@njit(cache=True, nogil=True)
def f2i(b):
    return np.int64(np.rint(_f(b)))


@njit(cache=True, nogil=True)
def eq_f(b, c):
    return vm.f_eq(_f(b), _f(c))


@njit(cache=True, nogil=True)
def lt_f(b, c):
    return vm.f_lt(_f(b), _f(c))


@njit(cache=True, nogil=True)
def le_f(b, c):
    return vm.f_le(_f(b), _f(c))


@njit(cache=True, nogil=True)
def idiv_i(x, y):
    return vm.idiv_trunc(x, y)


@njit(cache=True, nogil=True)
def mod_i(x, y):
    return vm.mod_i(x, y)


@njit(cache=True, nogil=True)
def add_ok(x, y):
    return vm.add_ok(x, y)


@njit(cache=True, nogil=True)
def sub_ok(x, y):
    return vm.sub_ok(x, y)


@njit(cache=True, nogil=True)
def mul_ok(x, y):
    return vm.mul_ok(x, y)


@njit(cache=True, nogil=True)
def idiv_ok(x, y):
    return vm.idiv_ok(x, y)


@njit(cache=True, nogil=True)
def narrow_ok(x, code):
    return vm.narrow_ok(x, code)


@njit(cache=True, nogil=True)
def round_ok(x, digits):
    return vm.round_ok(x, digits)


@njit(cache=True, nogil=True)
def round_i(x, digits):
    return vm.round_int(x, digits)


@njit(cache=True, nogil=True)
def unpack_bits(bitmap, off, start, n, out):
    """Validity of rows [start, start + n) as bytes 0/1 (Arrow bit offset `off`, -1: all valid)."""
    if off < 0:
        out[:n] = 1
        return
    bit = off + start
    j = 0
    while j < n and (bit + j) & 7:           # up to the next whole byte
        out[j] = (bitmap[(bit + j) >> 3] >> ((bit + j) & 7)) & 1
        j += 1
    while j + 8 <= n:                        # a byte at a time
        byte = bitmap[(bit + j) >> 3]
        for b in range(8):
            out[j + b] = (byte >> b) & 1
        j += 8
    while j < n:
        out[j] = (bitmap[(bit + j) >> 3] >> ((bit + j) & 7)) & 1
        j += 1


@njit(cache=True, nogil=True)
def valid_word(bitmap, off, base):
    """Validity of rows [base, base + 64) as one word, bit k for row base + k (Arrow bit
    offset `off`, -1: all valid). Bits past the bitmap's end are 0; no row reads them."""
    if off < 0:
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    bit = off + base
    byte = bit >> 3
    shift = np.uint64(bit & 7)
    n = bitmap.shape[0]
    if byte + 9 <= n:
        word = load_u64(bitmap, byte) >> shift
        if shift:
            word |= np.uint64(bitmap[byte + 8]) << (np.uint64(64) - shift)
        return word
    word = np.uint64(0)
    for k in range(min(9, n - byte)):
        b = np.uint64(bitmap[byte + k])
        word |= (b << np.uint64(8 * k)) >> shift if k < 8 else b << (np.uint64(64) - shift)
    return word


# what a generated kernel imports from this module (codegen._PREAMBLE)
RUNTIME = ("i64_at", "u8_at", "unpack_bits", "valid_word", "add_f", "sub_f", "mul_f", "div_f", "mod_f", "neg_f", "abs_f", "round_f", "i2f", "f2s",
           "f2i_ok", "f2i", "eq_f", "lt_f", "le_f", "idiv_i", "mod_i", "round_i",
           "add_ok", "sub_ok", "mul_ok", "idiv_ok", "narrow_ok", "round_ok")

# every function whose source the compiled kernels depend on: part of the cache key
HELPERS = (vm.round_digits, vm.idiv_trunc, vm.round_int, vm.f_eq, vm.f_lt, vm.f_le,
           vm.product_error, vm.round_half_away, vm.add_ok, vm.sub_ok, vm.mul_ok, vm.idiv_ok,
           vm.narrow_ok, vm.round_ok, vm.mod_i, _f, _w) + tuple(globals()[n] for n in RUNTIME)
