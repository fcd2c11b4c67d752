"""Plans: how a rule set runs on the fused tier, and its kernels bound to one batch.

The tunables here (ROW_KERNEL_INSTRUCTIONS, MAX_FUSED_INSTRUCTIONS, the compile-time
estimates) are read from this module on every Plan, so tests and benchmarks patch
them here (``fused.plan``).

Measured (2-core x86-64, 10M rows; benchmarks/bench_engines.py writes the full set):

- compile, cold: ~0.4 s + ~5 ms per instruction for a per-row kernel (demo rules,
  37-51 instructions: 0.6-0.7 s; 64 rules / 384 instructions: 2.2 s, and faster than
  linear growth beyond), ~0.5-0.7 s per shape kernel. From the disk cache: 6-15 ms
  (a fresh process first pays numba's own start-up, ~0.4 s, as the VM does).
- run: per-row kernels 0.3-1.5 ns per row x rule, shape kernels 0.4-0.8, the VM
  2.5-3.9 (numeric rules; string rules cost what evaluating the strings costs).
- Hence ROW_KERNEL_INSTRUCTIONS = 200 (always one per-row kernel below it: ~1 s to
  compile, fastest to run) and MAX_FUSED_INSTRUCTIONS = 400 (never above it: compile
  time turns superlinear); in between, whichever compiles faster by the estimate
  COMPILE_BASE_S + COMPILE_PER_INSTRUCTION_S x instructions vs SHAPE_COMPILE_S x shapes.
  When the fused tier pays at all is run.py's decision (engine="auto").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

from ...compiler.program import Program
from ..buffers import Buffers
from ..columns import Loaded
from .cache import (Kernel, get_kernel, get_shape_kernel, program_shape, row_kernel_ready, shape_key,
                    shape_kernel_ready)
from .codegen import SHAPE_BLOCK, layouts_for, lut_type
from .ruleset import RuleSet

MAX_FUSED_INSTRUCTIONS = 400   # larger sets run on shape kernels (module docstring)
ROW_KERNEL_INSTRUCTIONS = 200  # smaller sets always get one per-row kernel
OUT_PAIRS = 1 << 16            # violation pairs buffered per kernel call (per thread)
COMPILE_BASE_S = 0.4           # measured cold compile: base + per instruction (docstring)
COMPILE_PER_INSTRUCTION_S = 0.005
SHAPE_COMPILE_S = 0.5          # measured cold compile of one shape kernel


class Scratch:
    """Per-thread buffers of (rule, row) violation pairs, reused across calls."""

    def __init__(self, nrules: int, pairs: int = OUT_PAIRS):
        size = max(pairs, SHAPE_BLOCK) + max(nrules, SHAPE_BLOCK)
        self.rules = np.empty(size, dtype=np.int32)
        self.rows = np.empty(size, dtype=np.int64)


Outcome = tuple[np.ndarray, list[list[np.ndarray]]]     # counts (rules, 3), row-id chunks per rule


class Plan:
    """The fused tier's way through one rule set (in the order of `programs`).

    Up to MAX_FUSED_INSTRUCTIONS instructions: one per-row kernel for the whole set.
    Beyond: shape kernels, one per distinct program shape (and NULL-able columns).
    """

    def __init__(self, programs: Sequence[Program], strategy: str | None = None):
        if strategy not in (None, "row", "shape"):
            raise ValueError(f"strategy must be 'row', 'shape' or None, not {strategy!r}")
        self.rset = RuleSet.build(programs)
        self.shapes = [program_shape(p) for p in programs]
        if strategy is None:
            # One per-row kernel unless it would compile slower than a kernel per shape
            # (rules generated from a template share a shape) or past the point where
            # its compile time stops growing linearly.
            n = self.rset.instructions
            row_s = COMPILE_BASE_S + COMPILE_PER_INSTRUCTION_S * n
            shape_s = SHAPE_COMPILE_S * len(set(self.shapes))
            small = n <= ROW_KERNEL_INSTRUCTIONS          # compiles in ~1 s, runs fastest
            strategy = "row" if small or (n <= MAX_FUSED_INSTRUCTIONS and row_s <= shape_s) else "shape"
        self.per_row = strategy == "row"
        # per-row kernel by (NULL-able columns, layouts): batches of a stream look it up
        # once, not by hashing the set's key for every batch
        self._row_kernels: dict[tuple, Kernel] = {}

    @property
    def nrules(self) -> int:
        return len(self.rset.programs)

    def _shape_groups(self, nullable: Sequence[bool]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for k, prog in enumerate(self.rset.programs):
            local = [nullable[g] for g in self.rset.col_maps[k]]
            groups.setdefault(shape_key(self.shapes[k], local), []).append(k)
        return groups

    def compile_seconds(self, nullable: Sequence[bool], layouts: Sequence[str] | None = None) -> float:
        """Estimated compile time still to pay before this plan runs (0 when cached)."""
        if self.per_row:
            if _row_key(nullable, layouts) in self._row_kernels or \
                    row_kernel_ready(self.rset, nullable, layouts_for(self.rset, layouts)):
                return 0.0
            return COMPILE_BASE_S + COMPILE_PER_INSTRUCTION_S * self.rset.instructions
        return SHAPE_COMPILE_S * sum(not shape_kernel_ready(key)
                                     for key in self._shape_groups(nullable))

    def bind(self, cols: Sequence[Loaded], luts: Sequence[tuple[np.ndarray, np.ndarray]]) -> "Bound":
        """Kernels and arguments for one batch (`cols`/`luts`: the set's, in order)."""
        nullable = [c.bitoff >= 0 for c in cols]
        if self.per_row:
            key = _row_key(nullable, [c.layout for c in cols])
            kernel = self._row_kernels.get(key)
            if kernel is None:
                kernel = self._row_kernels[key] = get_kernel(self.rset, *key)
            return _RowBound(kernel, kernel_args(self.rset, kernel, cols, luts), self.nrules)
        return _ShapeBound(self, cols, luts, nullable)


def _row_key(nullable: Sequence[bool], layouts: Sequence[str] | None) -> tuple:
    """Plan._row_kernels' key: the NULL-able columns and the columns' layouts."""
    return tuple(map(bool, nullable)), tuple(layouts or ())


class Bound:
    """A plan's kernels bound to one batch. run() evaluates rows [lo, hi) (lo a multiple
    of 64): counts per rule, and violations either as bits of `bits` (one row of words per
    rule, `writes_bits`) or as row-id chunks per rule."""

    writes_bits = False

    def run(self, lo: int, hi: int, row_base: int, scratch: Scratch, bits: np.ndarray | None) -> Outcome:
        raise NotImplementedError


def kernel_args(rset: RuleSet, kernel: Kernel, cols: Sequence[Loaded],
                luts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple:
    """The per-row kernel's batch arguments between (lo, hi, row_base) and the outputs."""
    nulls = [g for g, x in enumerate(kernel.nullable) if x]
    for g, col in enumerate(cols):
        if col.bitoff >= 0 and not kernel.nullable[g]:
            raise AssertionError(f"kernel {kernel.key} cannot see NULLs in column {rset.columns[g]}")
        if kernel.layouts and col.layout != kernel.layouts[g]:
            raise AssertionError(f"kernel {kernel.key} reads column {rset.columns[g]} as "
                                 f"{kernel.layouts[g]}, not {col.layout}")
    lut_args = [a for (_, _, result), (values, valid) in zip(rset.luts, luts)
                for a in (np.ascontiguousarray(values, dtype=np.uint8 if lut_type(result) == "RB" else np.int64),
                          valid)]
    return (*[c.values for c in cols if not c.identity], *[cols[g].bitmap for g in nulls],
            *[int(cols[g].bitoff) for g in nulls], rset.kval, *lut_args, rset.strict)


class _RowBound(Bound):
    writes_bits = True

    def __init__(self, kernel: Kernel, args: tuple, nrules: int):
        self.kernel, self.args, self.nrules = kernel, args, nrules

    def run(self, lo: int, hi: int, row_base: int, scratch: Scratch, bits: np.ndarray | None) -> Outcome:
        if lo & 63:
            raise ValueError(f"a kernel range starts on a 64-row boundary, not at {lo}")
        counts = np.zeros((self.nrules, 3), dtype=np.int64)   # violations, NULL, overflow NULL
        self.kernel.fn(lo, hi, *self.args, counts, bits)
        return counts, [[] for _ in range(self.nrules)]


def _flat_luts(luts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All lookup tables of the set in one value and one validity array, and where each starts."""
    sizes = np.array([len(v) for v, _ in luts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    values = np.concatenate([v.astype(np.int64, copy=False) for v, _ in luts] + [np.zeros(1, np.int64)])
    valid = np.concatenate([m for _, m in luts] + [np.zeros(1, np.uint8)])
    return values, valid, starts


class _ShapeBound(Bound):
    """A large set on one batch: per shape group, its kernel and per-rule wiring."""

    def __init__(self, plan: Plan, cols: Sequence[Loaded], luts: Sequence[tuple[np.ndarray, np.ndarray]],
                 nullable: Sequence[bool]):
        rset = plan.rset
        self.nrules = plan.nrules
        # kept on self: the kernels read these arrays by address
        self._words = words = Buffers([c.words for c in cols], np.int64)
        self._bitmaps = bitmaps = Buffers([c.bitmap for c in cols], np.uint8)
        offs = np.array([c.bitoff for c in cols] or [-1], dtype=np.int64)
        lutv, lutm, lstart = _flat_luts(luts)
        lsize = np.diff(lstart)
        self.groups = []
        for key, members in plan._shape_groups(nullable).items():
            first = rset.programs[members[0]]
            local = [nullable[g] for g in rset.col_maps[members[0]]]
            kernel = get_shape_kernel(first, local)
            colmap = np.array([rset.col_maps[k] for k in members], dtype=np.int64).reshape(len(members), -1)
            lmap = np.array([rset.lut_maps[k] for k in members], dtype=np.int64).reshape(len(members), -1)
            # the set columns whose validity this group reads: unpacked once per block
            vcols = np.unique(colmap[:, [b for b, x in enumerate(local) if x]]).astype(np.int64)
            vslot = np.full(len(cols) or 1, -1, dtype=np.int64)
            vslot[vcols] = np.arange(len(vcols))
            args = (words.addr, words.lens, bitmaps.addr, bitmaps.lens, offs, vcols, vslot, colmap, rset.kval,
                    np.array([rset.kbase[k] for k in members], dtype=np.int64),
                    lutv, lutm, np.ascontiguousarray(lstart[lmap]), np.ascontiguousarray(lsize[lmap]),
                    rset.strict[members])
            self.groups.append((kernel, args, members))

    def run(self, lo: int, hi: int, row_base: int, scratch: Scratch, bits: np.ndarray | None) -> Outcome:
        counts = np.zeros((self.nrules, 3), dtype=np.int64)   # violations, NULL, overflow NULL
        chunks: list[list[np.ndarray]] = [[] for _ in range(self.nrules)]
        for kernel, args, members in self.groups:
            part = np.zeros((len(members), 3), dtype=np.int64)
            start, q = lo, 0
            while start < hi:
                start, q, pos = kernel.fn(start, hi, q, row_base, *args, part,
                                          scratch.rules, scratch.rows, 0)
                _collect(scratch, pos, members, chunks)
            counts[members] += part
        return counts, chunks


def _collect(scratch: Scratch, pos: int, targets: Sequence[int], chunks: list[list[np.ndarray]]) -> None:
    """Move `pos` buffered pairs into per-rule chunks; kernel rule q is rule targets[q]."""
    if pos == 0:
        return
    if len(targets) == 1:
        chunks[targets[0]].append(scratch.rows[:pos].copy())
        return
    starts, grouped = group_pairs(scratch.rules, scratch.rows, pos, len(targets))
    for q in np.flatnonzero(starts[1:] != starts[:-1]):
        chunks[targets[q]].append(grouped[starts[q]:starts[q + 1]])


@njit(cache=True, nogil=True)
def group_pairs(rules, rows, n, nrules):
    """Counting sort of n (rule, row) pairs by rule; rows stay in order within a rule.

    Returns (starts, grouped): rule r's rows are grouped[starts[r]:starts[r + 1]].
    """
    starts = np.zeros(nrules + 1, dtype=np.int64)
    for k in range(n):
        starts[rules[k] + 1] += 1
    for r in range(nrules):
        starts[r + 1] += starts[r]
    fill = starts[:-1].copy()
    grouped = np.empty(n, dtype=np.int64)
    for k in range(n):
        r = rules[k]
        grouped[fill[r]] = rows[k]
        fill[r] += 1
    return starts, grouped
