"""Shared by the benchmark scripts (run as `python benchmarks/x.py`, so importable)."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The fastest of `repeat` runs of fn, and the last run's result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out
