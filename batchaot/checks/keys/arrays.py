"""Large scratch arrays for the key kernels, from Arrow's memory allocator."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...io.memory import shared_range, shared_zeros  # noqa: F401 (the key kernels' names for them)

_ARROW_ALLOC_BYTES = 1 << 16        # smaller arrays come from numpy


def empty(n: int, dtype) -> np.ndarray:
    """An uninitialized array; a big one lives in Arrow's memory pool, whose allocator
    hands freed memory out again, where numpy's big arrays are fresh pages from the OS
    every time (a page fault per 4 KiB: as slow as the kernels themselves at these sizes)."""
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < _ARROW_ALLOC_BYTES:
        return np.empty(n, dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype)


def zeros(n: int, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(0)
    return out


def full(n: int, value, dtype) -> np.ndarray:
    out = empty(n, dtype)
    out.fill(value)
    return out
