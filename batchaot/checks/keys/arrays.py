"""Large scratch arrays for the key kernels, from Arrow's memory allocator."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

_ARROW_ALLOC_BYTES = 1 << 16        # smaller arrays come from numpy


def empty(n: int, dtype) -> np.ndarray:
    """An uninitialized array; a big one lives in Arrow's memory pool, whose allocator
    hands freed memory out again, where numpy's big arrays are fresh pages from the OS
    every time (a page fault per 4 KiB: as slow as the kernels themselves at these sizes)."""
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < _ARROW_ALLOC_BYTES:
        return np.empty(n, dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype)


_shared_zeros = np.zeros(0, np.uint8)


def shared_zeros(n: int, dtype) -> np.ndarray:
    """n zeros, read-only, all views of one buffer (grown as needed): for Arrow columns of
    zeros, such as the dictionary indices of a constant column, that cost no memory each."""
    global _shared_zeros
    nbytes = n * np.dtype(dtype).itemsize
    buf = _shared_zeros
    if len(buf) < nbytes:
        buf = zeros(max(nbytes, 2 * len(buf)), np.uint8)
        buf.flags.writeable = False
        if len(buf) > len(_shared_zeros):
            _shared_zeros = buf
    return buf[:nbytes].view(dtype)


def zeros(n: int, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(0)
    return out


def full(n: int, value, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(value)
    return out
