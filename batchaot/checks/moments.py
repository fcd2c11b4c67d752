"""Exact sums and sums of squares, so sum/avg/stddev_samp agree for any split of the data.

Integers: each value v = a·2^32 + b (a signed, b unsigned 32-bit); the kernel adds a, b,
a², a·b and b² into 128-bit accumulators, and Python rebuilds Σv and Σv² as exact ints.

Floats: a finite double is M·2^E with an integer M < 2^53. The kernel adds M (and M², a
106-bit integer) into 128-bit accumulators binned by E (and 2E); Python shifts the bins into
one big integer. Σx and Σx² are therefore exact, and the result, rounded once at the end,
is the correctly rounded value — identical whatever the batch and merge order (a plain
float sum would differ in the last bits between splits). NaN and ±inf are counted apart
and follow SQL: any NaN, or +inf with -inf, gives NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 1 << 20            # rows per kernel call: keeps every 128-bit bin far from overflow
_BIAS = 1074               # float bins: exponent E is stored at E + _BIAS (subnormals: E = -1074)
_U32 = np.uint64(0xFFFFFFFF)
_S32, _S52, _S63 = np.uint64(32), np.uint64(52), np.uint64(63)
_MANT = np.uint64((1 << 52) - 1)
_HIDDEN = np.uint64(1 << 52)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class Moments:
    """n values, Σx·2^scale and Σx²·2^(2·scale) as exact ints, and IEEE special counts."""

    n: int = 0
    s: int = 0
    q: int = 0
    nan: int = 0
    pinf: int = 0
    ninf: int = 0

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.n + other.n, self.s + other.s, self.q + other.q,
                       self.nan + other.nan, self.pinf + other.pinf, self.ninf + other.ninf)


# --- kernels -------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _add_u(acc, i, x):
    lo = acc[i, 0] + x
    if lo < x:
        acc[i, 1] += _ONE
    acc[i, 0] = lo


@numba.njit(cache=True, nogil=True)
def _add_s(acc, i, x):
    # two's complement: add the sign-extended 128-bit form of a signed int64
    ux = np.uint64(x)
    lo = acc[i, 0] + ux
    if lo < ux:
        acc[i, 1] += _ONE
    if x < 0:
        acc[i, 1] += _ALL
    acc[i, 0] = lo


@numba.njit(cache=True, nogil=True)
def _int_kernel(v, valid, acc):
    # acc rows: 0 Σa (signed), 1 Σb, 2 Σa², 3 Σab (signed), 4 Σb²
    n = 0
    for i in range(v.shape[0]):
        if not valid[i]:
            continue
        n += 1
        a = v[i] >> 32
        b = np.uint64(v[i]) & _U32
        _add_s(acc, 0, a)
        _add_u(acc, 1, b)
        _add_u(acc, 2, np.uint64(a * a))
        _add_s(acc, 3, a * np.int64(b))
        _add_u(acc, 4, b * b)
    return n


@numba.njit(cache=True, nogil=True)
def _float_kernel(x, valid, sums, squares, special):
    # sums[sign, E + 1074] += M ; squares[2E + 2148] += M² ; special: nan, +inf, -inf
    n = 0
    for i in range(x.shape[0]):
        if not valid[i]:
            continue
        n += 1
        bits = x[i]
        sign = np.int64(bits >> _S63)
        ex = np.int64((bits >> _S52) & np.uint64(0x7FF))
        mant = bits & _MANT
        if ex == 0x7FF:
            if mant != 0:
                special[0] += 1
            else:
                special[1 + sign] += 1
            continue
        if ex == 0:
            m, e = mant, 0            # subnormal: M·2^-1074
        else:
            m, e = mant | _HIDDEN, ex - 1
        if m == 0:
            continue
        _add_u(sums[sign], e, m)
        hi_m = m >> _S32
        lo_m = m & _U32
        lo = lo_m * lo_m
        mid = np.uint64(2) * hi_m * lo_m          # < 2^54
        sq_lo = lo + (mid << _S32)
        carry = _ONE if sq_lo < lo else np.uint64(0)
        sq_hi = hi_m * hi_m + (mid >> _S32) + carry
        k = 2 * e
        _add_u(squares, k, sq_lo)
        squares[k, 1] += sq_hi
    return n


def _u128(acc: np.ndarray, i: int) -> int:
    return int(acc[i, 0]) | (int(acc[i, 1]) << 64)


def _s128(acc: np.ndarray, i: int) -> int:
    value = _u128(acc, i)
    return value - (1 << 128) if value >> 127 else value


# --- per column ---------------------------------------------------------------------

def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=np.bool_)
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def int_moments(values: np.ndarray, valid: np.ndarray) -> Moments:
    """Exact Σv, Σv² of int64 `values` where `valid`."""
    out = Moments()
    for start in range(0, len(values), CHUNK):
        acc = np.zeros((5, 2), np.uint64)
        n = _int_kernel(values[start:start + CHUNK], valid[start:start + CHUNK], acc)
        sa, sb, a2, ab, b2 = _s128(acc, 0), _u128(acc, 1), _u128(acc, 2), _s128(acc, 3), _u128(acc, 4)
        out = out + Moments(n, (sa << 32) + sb, (a2 << 64) + (ab << 33) + b2)
    return out


def float_moments(values: np.ndarray, valid: np.ndarray) -> Moments:
    """Exact Σx·2^1074 and Σx²·2^2148 of float64 `values` where `valid`."""
    out = Moments()
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    for start in range(0, len(bits), CHUNK):
        sums = np.zeros((2, 2048, 2), np.uint64)
        squares = np.zeros((4096, 2), np.uint64)
        special = np.zeros(3, np.int64)
        n = _float_kernel(bits[start:start + CHUNK], valid[start:start + CHUNK], sums, squares, special)
        s = sum((_u128(sums[0], e) - _u128(sums[1], e)) << int(e)
                for e in np.flatnonzero(sums.any(axis=(0, 2))))
        q = sum(_u128(squares, k) << int(k) for k in np.flatnonzero(squares.any(axis=1)))
        out = out + Moments(n, int(s), int(q), int(special[0]), int(special[1]), int(special[2]))
    return out


def column_moments(arr: pa.Array) -> tuple[Moments, int]:
    """(moments, scale exponent) of a numeric column: the true Σx is s / base**scale."""
    t = arr.type
    valid = _validity(arr)
    if pa.types.is_floating(t):
        values = arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        return float_moments(values, valid), _BIAS
    if pa.types.is_decimal(t) and t.precision <= 18:
        raw = np.frombuffer(arr.buffers()[1], np.int64, count=2 * (arr.offset + len(arr)))
        return int_moments(raw[2 * arr.offset::2].copy(), valid), t.scale
    if pa.types.is_integer(t) and not pa.types.is_uint64(t):
        values = arr.cast(pa.int64()).fill_null(0).to_numpy()
        return int_moments(values, valid), 0
    return _python_moments(arr), getattr(t, "scale", 0)


def _python_moments(arr: pa.Array) -> Moments:
    """Wide decimals and uint64: plain Python integers (rare, slower)."""
    scale = getattr(arr.type, "scale", 0)
    ints = [int(v.scaleb(scale)) if scale else int(v) for v in arr.drop_null().to_pylist()]
    return Moments(len(ints), sum(ints), sum(v * v for v in ints))


def scale_of(arr_type: pa.DataType) -> tuple[int, int]:
    """(base, exponent): a column's moments are in units of base**-exponent."""
    if pa.types.is_floating(arr_type):
        return 2, _BIAS
    if pa.types.is_decimal(arr_type):
        return 10, arr_type.scale
    return 10, 0


def exact_sum(m: Moments, base: int, exp: int) -> Fraction:
    return Fraction(m.s, base ** exp)


def exact_sum_squares(m: Moments, base: int, exp: int) -> Fraction:
    return Fraction(m.q, base ** (2 * exp))


def special_value(m: Moments) -> float | None:
    """NaN or ±inf when the IEEE specials decide the sum, else None."""
    if m.nan or (m.pinf and m.ninf):
        return float("nan")
    if m.pinf:
        return float("inf")
    if m.ninf:
        return float("-inf")
    return None
