"""Which allocator Arrow's buffers come from, in the processes batchaot owns.

pyarrow's default pool is mimalloc on Linux. On the 2-core VM the benchmarks run on,
mimalloc returned freed pages to the kernel and faulted them back in for every batch:
a 10M-row Parquet `submit` spent 1.4-2.7 s in the kernel with it and 0.4 s with jemalloc
(3.2-4.1 s wall vs 2.8-3.1 s), and the first 200,000-row read of a fresh process took
0.42 s vs 0.05 s. So a run (`batchaot.validate`, `Job.run`, the CLI, a Ray worker)
makes jemalloc pyarrow's default pool in its process (the system allocator where
pyarrow was built without jemalloc). Buffers allocated before stay with their pool.
ARROW_DEFAULT_MEMORY_POOL, when set, is the user's choice and is kept.
"""
from __future__ import annotations

import os

import pyarrow as pa


def use_process_pool() -> str:
    """Make jemalloc (else the system allocator) Arrow's default pool in this process,
    unless ARROW_DEFAULT_MEMORY_POOL chose one; returns the pool's backend name."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            pool = pa.jemalloc_memory_pool()
        except NotImplementedError:        # a pyarrow built without jemalloc
            pool = pa.system_memory_pool()
        pa.set_memory_pool(pool)
    return pa.default_memory_pool().backend_name
