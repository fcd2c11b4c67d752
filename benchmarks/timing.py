"""Shared by the benchmark scripts (run as `python benchmarks/x.py`, so importable)."""
from __future__ import annotations

import json
import os
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


def write_results(stem: str, doc: dict) -> str:
    """benchmarks/results/<stem>-<cores>cores.json: every cited run is committed with the
    core count it ran on."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        f"{stem}-{os.cpu_count()}cores.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {os.path.relpath(path)}")
    return path
