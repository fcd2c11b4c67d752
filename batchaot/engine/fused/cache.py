"""Fused kernels by key: in memory, then from the disk cache (loader.py), else compiled.

The cache key hashes the shape (opcodes, registers, column / lookup-table wiring, which
constants are NULL; no constant values, so ``x < 3`` and ``x < 4`` share a kernel,
and strictness is data too), the column types and physical layouts, which columns
may hold NULLs in the batch (the no-NULLs variant has no validity code), and the
numba / numpy / Python / batchaot / generator versions plus the source of the helpers.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numba
import numpy as np

from ...compiler.program import Program
from . import loader
from .codegen import GENERATOR_VERSION, generate, generate_shape, layouts_for
from .helpers import HELPERS
from .loader import STATS
from .ruleset import RuleSet, divisors


@dataclass(frozen=True, eq=False)
class Kernel:
    key: str
    nullable: tuple[bool, ...]
    fn: Callable
    path: Path
    layouts: tuple[str, ...] = ()


_LOCK = threading.RLock()
_MEMORY: dict[str, Kernel] = {}
_BY_SHAPE: dict[str, list[Kernel]] = {}
_VERSIONS: list[str] = []


def _versions() -> str:
    """Everything besides the shape that changes the compiled code."""
    if not _VERSIONS:
        from ..._version import __version__
        helpers = "".join(inspect.getsource(h.py_func) for h in HELPERS)
        _VERSIONS.append(json.dumps([
            GENERATOR_VERSION, numba.__version__, np.__version__, __version__,
            list(sys.version_info[:2]), hashlib.sha256(helpers.encode()).hexdigest()]))
    return _VERSIONS[0]


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for part in (_versions(),) + parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


def _mask(nullable: Sequence[bool]) -> str:
    return "".join("1" if x else "0" for x in nullable)


def kernel_key(rset: RuleSet, nullable: Sequence[bool], layouts: Sequence[str] | None = None) -> str:
    """Per-row kernel key: versions, the set's shape (no constant values), NULL-able
    columns, and the columns' layouts."""
    return _key("row", rset.shape, _mask(nullable), ",".join(layouts_for(rset, layouts)))


def shape_key(shape: str, nullable: Sequence[bool]) -> str:
    """Shape kernel key: versions, one program's shape (program_shape), NULL-able columns."""
    return _key("shape", shape, _mask(nullable))


def program_shape(prog: Program) -> str:
    """A program's bytecode without constant values or column names: its kernel shape."""
    return json.dumps({"code": prog.code.tolist(), "kvalid": prog.kvalid.tolist(),
                       "nregs": prog.nregs, "columns": len(prog.columns), "luts": len(prog.luts),
                       "divisors": sorted(divisors(prog).items())},
                      separators=(",", ":"))


def forget() -> None:
    """Drop every kernel from memory (the disk cache stays): the next use loads from disk."""
    with _LOCK:
        for kernel in _MEMORY.values():
            loader.unload(kernel.key)
        _MEMORY.clear()
        _BY_SHAPE.clear()


def _covers(have: Sequence[bool], need: Sequence[bool]) -> bool:
    return all(h or not n for h, n in zip(have, need))


def cached_row_kernel(rset: RuleSet, nullable: Sequence[bool], layouts: tuple[str, ...]) -> Kernel | None:
    key = kernel_key(rset, nullable, layouts)
    if key in _MEMORY:
        return _MEMORY[key]
    # a kernel that checks validity for more columns handles this batch too
    for known in _BY_SHAPE.get(rset.shape, ()):
        if known.layouts == layouts and _covers(known.nullable, nullable):
            return known
    return None


def get_kernel(rset: RuleSet, nullable: Sequence[bool], layouts: Sequence[str] | None = None) -> Kernel:
    """The per-row kernel for `rset` when the columns flagged in `nullable` hold NULLs
    and its columns have these layouts (columns.LAYOUTS; default all int64)."""
    nullable = tuple(bool(x) for x in nullable)
    layouts = layouts_for(rset, layouts)
    with _LOCK:
        known = cached_row_kernel(rset, nullable, layouts)
        if known is not None:
            STATS["memory_hits"] += 1
            return known
        # batches differing in which columns hold NULLs share one kernel from now on
        for other in _BY_SHAPE.get(rset.shape, ()):
            if other.layouts == layouts:
                nullable = tuple(a or b for a, b in zip(nullable, other.nullable))
        kernel = _obtain(kernel_key(rset, nullable, layouts), nullable,
                         lambda: generate(rset, nullable, layouts), layouts)
        _BY_SHAPE.setdefault(rset.shape, []).append(kernel)
        return kernel


def get_shape_kernel(prog: Program, nullable: Sequence[bool]) -> Kernel:
    """The shape kernel for programs shaped like `prog` whose flagged columns hold NULLs."""
    nullable = tuple(bool(x) for x in nullable)
    key = shape_key(program_shape(prog), nullable)
    with _LOCK:
        if key in _MEMORY:
            STATS["memory_hits"] += 1
            return _MEMORY[key]
        return _obtain(key, nullable, lambda: generate_shape(prog, nullable))


def _obtain(key: str, nullable: tuple[bool, ...], source: Callable[[], str],
            layouts: tuple[str, ...] = ()) -> Kernel:
    fn, path = loader.load(key, source())
    kernel = Kernel(key, nullable, fn, path, layouts)
    _MEMORY[key] = kernel
    return kernel


def row_kernel_ready(rset: RuleSet, nullable: Sequence[bool], layouts: tuple[str, ...]) -> bool:
    """Whether the per-row kernel needs no compiling: in memory, or verified on disk."""
    return (cached_row_kernel(rset, nullable, layouts) is not None
            or loader.on_disk(kernel_key(rset, nullable, layouts)))


def shape_kernel_ready(key: str) -> bool:
    """Whether shape kernel `key` (shape_key) needs no compiling."""
    return key in _MEMORY or loader.on_disk(key)
