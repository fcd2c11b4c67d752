"""Which allocator Arrow's buffers come from, in the processes batchaot owns; and the
shared buffers behind constant columns (all zeros, row numbers 0..n-1), which cost
memory once however many tables show them.

pyarrow's default pool is mimalloc on Linux. On the 2-core VM the benchmarks run on,
mimalloc handed freed pages back to the kernel and faulted them in again: decoding the
200,000-row demo file took 0.23-0.32 s in 3 of 6 reads with it (0.03-0.04 s otherwise),
0.03-0.06 s in every read with jemalloc, and 10M-row Parquet `submit` runs spent
1.5-2.7 s in the kernel with mimalloc against 0.4-0.7 s with jemalloc in 8 of 10 pairs
(the other two were even: the VM's huge-page compaction varies from run to run). So a
run (`batchaot.validate`, `Job.run`, the CLI, a Ray worker) makes jemalloc pyarrow's
default pool in its process (the system allocator where pyarrow was built without it).
Under an address-space limit (RLIMIT_AS) the pool is left alone: by then pyarrow has
used its default pool, and a second allocator's mappings count against the limit too
(a unique over 36M strings that spilled within the limit with either pool alone ran
out of it after the switch). Buffers allocated before stay with their pool.
ARROW_DEFAULT_MEMORY_POOL, when set, is the user's choice and is kept.
"""
from __future__ import annotations

import os
import resource
import weakref

import numpy as np
import pyarrow as pa


def use_process_pool() -> str:
    """Make jemalloc (else the system allocator) Arrow's default pool in this process,
    unless ARROW_DEFAULT_MEMORY_POOL chose one or an address-space limit is set; returns
    the pool's backend name."""
    limited = resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and not limited:
        try:
            pool = pa.jemalloc_memory_pool()
        except NotImplementedError:        # a pyarrow built without jemalloc
            pool = pa.system_memory_pool()
        pa.set_memory_pool(pool)
    return pa.default_memory_pool().backend_name


# --- constant buffers: Arrow columns that cost no memory per row ---------------------

_shared_zeros = np.zeros(0, np.uint8)


def shared_zeros(n: int, dtype) -> np.ndarray:
    """n zeros, read-only, all views of one buffer (grown as needed): for Arrow columns of
    zeros, such as the dictionary indices of a constant column, that cost no memory each.
    The buffer comes from numpy, zeroed by the OS: pages never written are never backed."""
    global _shared_zeros
    nbytes = n * np.dtype(dtype).itemsize
    buf = _shared_zeros
    if len(buf) < nbytes:
        buf = np.zeros(max(nbytes, 2 * len(buf)), np.uint8)
        buf.flags.writeable = False
        if len(buf) > len(_shared_zeros):
            _shared_zeros = buf
    return buf[:nbytes].view(dtype)


_shared_range: tuple[int, weakref.ref] | None = None     # (first value, the array)


def shared_range(start: int, n: int) -> np.ndarray:
    """start, ..., start + n - 1 as int64, read-only: views of one buffer for as long as
    any view lives, so the row numbers of many checks whose every row violates cost
    memory once. A range outside the buffer gets a buffer of its own, of n values."""
    global _shared_range
    if _shared_range is not None:
        first, ref = _shared_range
        base = ref()
        if base is not None and first <= start and start + n <= first + len(base):
            return base[start - first:start - first + n]
    base = np.arange(start, start + n, dtype=np.int64)
    base.flags.writeable = False
    _shared_range = (start, weakref.ref(base))
    return base
