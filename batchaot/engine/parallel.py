"""Work split across threads: row ranges, and one shared thread pool for kernels that
release the GIL (the checks' key kernels). The Executor keeps a pool of its own, sized
by its `threads`; both cut rows with the helpers here."""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

_shared: ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def cuts(n: int, parts: int) -> list[int]:
    """Edges of `parts` near-equal ranges of 0..n: range k is [cuts[k], cuts[k + 1])."""
    return [n * k // parts for k in range(parts + 1)]


def ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """At most `parts` near-equal, non-empty ranges of 0..n (one, (0, 0), when n is 0)."""
    edges = cuts(n, max(1, min(parts, n)))
    return list(zip(edges[:-1], edges[1:]))


def word_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """Ranges of 0..n whose every edge but the last is a multiple of 64, so that two
    ranges never write the same word of a violation bitmap."""
    edges = [min(n, (n * k // parts) & ~63) for k in range(parts)] + [n]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo] or [(0, n)]


def threads() -> int:
    """Threads the shared pool may use: Numba's thread count (1 in a Ray worker), read as
    Numba reads it (NUMBA_NUM_THREADS, else the CPUs this process may run on) so that a
    small run need not import Numba to know it."""
    numba = sys.modules.get("numba")
    if numba is not None:
        return max(1, int(numba.config.NUMBA_NUM_THREADS))
    configured = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                    # not every platform has it
        return max(1, os.cpu_count() or 1)


def run_parallel(fn, items: list) -> list:
    """fn over items on the shared thread pool (the kernels release the GIL)."""
    global _shared
    if len(items) <= 1 or threads() == 1:
        return [fn(x) for x in items]
    with _shared_lock:          # run_checks may finish several checks at once
        if _shared is None:
            _shared = ThreadPoolExecutor(threads(), thread_name_prefix="batchaot-keys")
    return list(_shared.map(fn, items))
