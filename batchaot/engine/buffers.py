"""Arrays of different lengths handed to Numba kernels by address (no Numba here: the
kernels' side, ``i64_at`` / ``u8_at``, is engine/pointers.py).

A kernel that reads k columns needs k arrays. ``numba.typed.List`` would carry them, but
Numba compiles a typed list's methods anew in every process (they are not cached on
disk): about half a second before the first batch of every worker and every CLI run.
Instead a kernel takes two int64 arrays, addresses and lengths, and views entry j as an
array with ``i64_at`` / ``u8_at`` (pointers.py; no copy). The caller keeps a :class:`Buffers` alive
for the duration of the call, which keeps the arrays alive.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# VM registers hold a block of BLOCK rows each (engine/vm.py); the Executor sizes the
# register arrays it takes from its pool with it, so it lives here, free of Numba.
BLOCK = 2048


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
