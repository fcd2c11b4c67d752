"""Arrow string arrays as the numpy buffers the string kernels read, and the hash the
kernels and their planners share. No Numba here: planning (fast.py, encode.py) imports
this without loading the kernels.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .regex import _Unsupported

_K0, _K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(offsets of rows 0..n, data, validity bitmap, bit offset or -1) of a string array."""
    if pa.types.is_large_string(values.type):
        offsets_dtype = np.int64
    elif pa.types.is_string(values.type):
        offsets_dtype = np.int32
    else:
        raise _Unsupported(str(values.type))
    bufs = values.buffers()
    n = len(values)
    if bufs[1] is not None:
        offsets = np.frombuffer(bufs[1], dtype=offsets_dtype, count=values.offset + n + 1)[values.offset:]
    else:
        offsets = _read_only(np.zeros(n + 1, offsets_dtype))
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else _EMPTY
    if values.null_count == 0 or bufs[0] is None:
        return offsets, data, _EMPTY, -1
    return offsets, data, np.frombuffer(bufs[0], dtype=np.uint8), values.offset


def _read_only(a: np.ndarray) -> np.ndarray:
    """Like the arrays over Arrow buffers, so kernels see one signature, not two."""
    a.flags.writeable = False
    return a


_EMPTY = _read_only(np.zeros(1, dtype=np.uint8))


def short_hash(w0, w1, n):
    """The hash of a string of up to 16 bytes given as two zero-padded little-endian words
    and its length: uint64 scalars in the kernels (swar._short_hash), arrays in the
    planners (uint64 arithmetic wraps alike in both)."""
    h = (w0 * _K0) ^ (w1 * _K1) ^ (n * _K2)
    return h ^ (h >> np.uint64(29))
