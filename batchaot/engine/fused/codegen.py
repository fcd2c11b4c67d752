"""The fused JIT tier: generated Numba kernels that check a whole rule set at once.

Two kinds of kernel, both generated as Python source from the optimized bytecode:

* Per-row kernel (:func:`generate`), for a set of up to a few hundred instructions:
  one loop over the rows evaluates every rule of the set. Each register is a pair of
  locals (an int64 word; a bool validity only where it can be NULL), each instruction
  one or a few statements, and every column the set reads is loaded once per row and
  shared by all rules (one trip through memory). Columns are read in their own width
  (int32, date32, uint16 dictionary codes: columns.LAYOUTS) and widened in registers;
  a string column that is its own dictionary is no argument at all, its lookup
  tables are indexed by row number; validity comes one 64-row word per column at a
  time.
* Shape kernels (:func:`generate_shape`), for large sets: rules whose bytecode has the
  same shape (same opcodes and registers; columns, constants and lookup tables apart)
  share one kernel that takes each rule's wiring as data and runs block by block:
  for each block of SHAPE_BLOCK rows, every rule of the group in turn, its verdicts
  written as flags without a branch and turned into row numbers afterwards, its
  validity read from bytes unpacked once per block. A thousand rules generated from
  a template compile as one kernel.

Both count violations, NULL verdicts and overflow NULLs per rule, as ``vm.run`` does per
program. Per-row kernels (and the VM) set a bit per violating row in the rule's bitmap
(a word per 64 rows, accumulated in a register); shape kernels collect violating row
numbers as (rule, row) pairs and stop early (to be called again) when the pair buffer
is full.

Jumps. The VM jumps when a whole block satisfies a test; per row the same jump is
taken when that row satisfies it (a row whose left conjunct is FALSE already has a
FALSE conjunction; JNONET skips a SELECT that would not fire for the row), so the
verdicts are identical. Jumps are strictly forward but need not nest after jump
threading, so they are not turned into nested ``if``s: each rule keeps a per-row
program counter ``g`` (the target of the last jump taken; a RET before the end sets
it past the end), a jump sets it, and the straight-line code between jump targets
runs under ``if g <= start:`` when some earlier jump can skip over it. Any forward
pattern is then right by construction; LLVM threads the tests into direct branches.
A forward pass over the same blocks tracks which registers are certainly valid, so
validity code disappears for columns without NULLs and for constants.

Scalar semantics are vm.py's: its @njit helpers are called, never restated. Float
registers travel as their IEEE bits in int64 locals, as in the VM; the word-level
helpers here are plain @njit functions (numba's inline="always" inlines at the IR
level once per call site, which made compile time quadratic in the rule count).

Constants are not in the source: kernels read the set's constant table, so ``x < 3``
and ``x < 4`` share a kernel; strictness is data too. The cache key hashes the
shape (opcodes, registers, column / lookup-table wiring, which constants are NULL;
no constant values), the column types and physical layouts, which columns may hold
NULLs in the batch (the no-NULLs variant has no validity code), and the numba / numpy / Python /
batchaot / generator versions plus the source of the helpers.

Disk cache. ``cache=True`` cannot cache exec'd code, so each kernel's source goes to
``<cache root>/kernels/bk_<key>.py`` (``$BATCHAOT_CACHE_DIR``, else ``~/.cache/batchaot``;
the folder is this user's alone, 0700), written to a temporary file and hard-linked into
place so concurrent processes never see a partial file. The source that runs is the
text generated in this process (compiled with ``compile()``, never read back, no .pyc);
the file anchors numba's cache, whose index and data files (pickles) are loaded only
when their SHA-256 hashes equal the manifest ``bk_<key>.manifest.json`` written after
they were compiled, and are deleted and rebuilt otherwise. No user text (rule names,
columns, literals) enters the source: rules are indices, constants come in a table.
Kernels are compiled for one explicit signature (read-only inputs), so the cache serves
the next process and every Ray worker on the machine. :data:`STATS` counts memory hits,
disk (numba cache) hits, compiles, sources written and cache entries rejected.

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

import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import threading
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numba
import numpy as np
from numba import njit

from ...compiler.cache import cache_root, private_dir, trusted_dir
from ...compiler.opcodes import (CLASSES, COMPARISONS, FAMILY, JUMPS, NEVER_NULL, OVERFLOW_SOURCES,
                                READS_A, SYMBOL, TERMINATORS, WRITES_A, Op, register_inputs)
from ...compiler.program import Program
from .. import vm
from ..buffers import Buffers, i64_at, load_u64, u8_at  # noqa: F401  (i64_at, u8_at: generated kernels' runtime)
from ..columns import IDENTITY, Loaded

GENERATOR_VERSION = "9"        # bump when the generated source changes meaning
MAX_FUSED_INSTRUCTIONS = 400   # larger sets run on shape kernels (module docstring)
ROW_KERNEL_INSTRUCTIONS = 200  # smaller sets always get one per-row kernel
SHAPE_BLOCK = 4096             # rows per block in shape kernels
OUT_PAIRS = 1 << 16            # violation pairs buffered per kernel call (per thread)
COMPILE_BASE_S = 0.4           # measured cold compile: base + per instruction (docstring)
COMPILE_PER_INSTRUCTION_S = 0.005
SHAPE_COMPILE_S = 0.5          # measured cold compile of one shape kernel

STATS: Counter = Counter()     # memory_hits, disk_hits, compiles, sources_written


# -- runtime helpers the generated kernels import ------------------------------------
#
# Registers are int64 words (float64 bits for *_F opcodes), so every float operation
# is a word -> word helper. They are plain @njit functions, not inline="always":
# numba inlines those at the IR level, once per call site over the whole kernel,
# which made compile time quadratic in the rule count; LLVM inlines these instead.
# The semantics are vm.py's own helpers, called here, never restated.

@njit(inline="always")
def _f(w):
    return np.int64(w).view(np.float64)


@njit(inline="always")
def _w(x):
    return np.float64(x).view(np.int64)


@njit(cache=True, nogil=True)
def add_f(b, c):
    return _w(_f(b) + _f(c))


@njit(cache=True, nogil=True)
def sub_f(b, c):
    return _w(_f(b) - _f(c))


@njit(cache=True, nogil=True)
def mul_f(b, c):
    return _w(_f(b) * _f(c))


@njit(cache=True, nogil=True)
def div_f(b, c):
    x, y = _f(b), _f(c)
    if y == 0.0:   # IEEE without numba's ZeroDivisionError: the VM's DIV_F expression
        return _w(np.nan if (x == 0.0 or x != x) else math.copysign(np.inf, x) * math.copysign(1.0, y))
    return _w(x / y)


@njit(cache=True, nogil=True)
def mod_f(b, c):
    y = _f(c)
    return _w(np.nan if y == 0.0 else np.fmod(_f(b), y))


@njit(cache=True, nogil=True)
def neg_f(b):
    return _w(-_f(b))


@njit(cache=True, nogil=True)
def abs_f(b):
    return _w(abs(_f(b)))


@njit(cache=True, nogil=True)
def round_f(b, digits):
    return _w(vm.round_digits(_f(b), digits))


@njit(cache=True, nogil=True)
def i2f(b):
    return _w(np.float64(b))


@njit(cache=True, nogil=True)
def f2i_ok(b):
    """Whether F2I gives a value: rint(x) is a number inside int64."""
    x = np.rint(_f(b))
    return (x >= -vm._TWO63) & (x < vm._TWO63)


@njit(cache=True, nogil=True)
def f2i(b):
    return np.int64(np.rint(_f(b)))


@njit(cache=True, nogil=True)
def eq_f(b, c):
    return vm.f_eq(_f(b), _f(c))


@njit(cache=True, nogil=True)
def lt_f(b, c):
    return vm.f_lt(_f(b), _f(c))


@njit(cache=True, nogil=True)
def le_f(b, c):
    return vm.f_le(_f(b), _f(c))


@njit(cache=True, nogil=True)
def idiv_i(x, y):
    return vm.idiv_trunc(x, y)


@njit(cache=True, nogil=True)
def mod_i(x, y):
    return vm.mod_i(x, y)


@njit(cache=True, nogil=True)
def add_ok(x, y):
    return vm.add_ok(x, y)


@njit(cache=True, nogil=True)
def sub_ok(x, y):
    return vm.sub_ok(x, y)


@njit(cache=True, nogil=True)
def mul_ok(x, y):
    return vm.mul_ok(x, y)


@njit(cache=True, nogil=True)
def idiv_ok(x, y):
    return vm.idiv_ok(x, y)


@njit(cache=True, nogil=True)
def narrow_ok(x, code):
    return vm.narrow_ok(x, code)


@njit(cache=True, nogil=True)
def round_ok(x, digits):
    return vm.round_ok(x, digits)


@njit(cache=True, nogil=True)
def round_i(x, digits):
    return vm.round_int(x, digits)


@njit(cache=True, nogil=True)
def unpack_bits(bitmap, off, start, n, out):
    """Validity of rows [start, start + n) as bytes 0/1 (Arrow bit offset `off`, -1: all valid)."""
    if off < 0:
        out[:n] = 1
        return
    bit = off + start
    j = 0
    while j < n and (bit + j) & 7:           # up to the next whole byte
        out[j] = (bitmap[(bit + j) >> 3] >> ((bit + j) & 7)) & 1
        j += 1
    while j + 8 <= n:                        # a byte at a time
        byte = bitmap[(bit + j) >> 3]
        for b in range(8):
            out[j + b] = (byte >> b) & 1
        j += 8
    while j < n:
        out[j] = (bitmap[(bit + j) >> 3] >> ((bit + j) & 7)) & 1
        j += 1


@njit(cache=True, nogil=True)
def valid_word(bitmap, off, base):
    """Validity of rows [base, base + 64) as one word, bit k for row base + k (Arrow bit
    offset `off`, -1: all valid). Bits past the bitmap's end are 0; no row reads them."""
    if off < 0:
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    bit = off + base
    byte = bit >> 3
    shift = np.uint64(bit & 7)
    n = bitmap.shape[0]
    if byte + 9 <= n:
        word = load_u64(bitmap, byte) >> shift
        if shift:
            word |= np.uint64(bitmap[byte + 8]) << (np.uint64(64) - shift)
        return word
    word = np.uint64(0)
    for k in range(min(9, n - byte)):
        b = np.uint64(bitmap[byte + k])
        word |= (b << np.uint64(8 * k)) >> shift if k < 8 else b << (np.uint64(64) - shift)
    return word


RUNTIME = ("i64_at", "u8_at", "unpack_bits", "valid_word", "add_f", "sub_f", "mul_f", "div_f", "mod_f", "neg_f", "abs_f", "round_f", "i2f",
           "f2i_ok", "f2i", "eq_f", "lt_f", "le_f", "idiv_i", "mod_i", "round_i",
           "add_ok", "sub_ok", "mul_ok", "idiv_ok", "narrow_ok", "round_ok")


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


_HELPERS = (vm.round_digits, vm.idiv_trunc, vm.round_int, vm.f_eq, vm.f_lt, vm.f_le,
            vm.product_error, vm.round_half_away, vm.add_ok, vm.sub_ok, vm.mul_ok, vm.idiv_ok,
            vm.narrow_ok, vm.round_ok, vm.mod_i, vm._magnitude, _f, _w) + tuple(globals()[n] for n in RUNTIME)


# -- a rule set laid out as one kernel's arguments ----------------------------------

@dataclass(frozen=True, eq=False)
class RuleSet:
    """The programs of one kernel, with their columns, lookup tables and constants merged.

    A column (name, type) read by several rules is one kernel argument, loaded once
    per row; likewise a lookup table that several rules index.
    """

    programs: tuple[Program, ...]
    columns: tuple[tuple[str, str], ...]
    col_maps: tuple[tuple[int, ...], ...]          # program's column index -> set's
    luts: tuple[tuple[int, list, str], ...]        # (set column, sexpr, result type)
    lut_maps: tuple[tuple[int, ...], ...]          # program's LUT index -> set's
    kbase: tuple[int, ...]                         # program's constants start here
    kval: np.ndarray
    kvalid: np.ndarray
    strict: np.ndarray                             # uint8 per program
    shape: str                                     # JSON: everything but constant values

    @classmethod
    def build(cls, programs: Sequence[Program]) -> "RuleSet":
        columns: dict[tuple[str, str], int] = {}
        luts: dict[tuple[int, str], int] = {}
        lut_list: list[tuple[int, list, str]] = []
        col_maps, lut_maps, kbase = [], [], []
        base = 0
        for prog in programs:
            col_maps.append(tuple(columns.setdefault(tuple(c), len(columns)) for c in prog.columns))
            lmap = []
            for ci, sexpr, result in prog.luts:
                gcol = col_maps[-1][ci]
                key = (gcol, json.dumps([sexpr, result]))
                if key not in luts:
                    luts[key] = len(lut_list)
                    lut_list.append((gcol, sexpr, result))
                lmap.append(luts[key])
            lut_maps.append(tuple(lmap))
            kbase.append(base)
            base += len(prog.kval)
        kval = np.concatenate([p.kval for p in programs] + [np.zeros(1, np.int64)])
        kvalid = np.concatenate([p.kvalid for p in programs] + [np.zeros(1, np.uint8)])
        shape = json.dumps({
            "columns": [t for _, t in columns],
            "luts": len(lut_list),
            "programs": [{"code": p.code.tolist(), "kvalid": p.kvalid.tolist(), "nregs": p.nregs,
                          "cols": cm, "luts": lm}
                         for p, cm, lm in zip(programs, col_maps, lut_maps)],
        }, separators=(",", ":"))
        return cls(tuple(programs), tuple(columns), tuple(col_maps), tuple(lut_list),
                   tuple(lut_maps), tuple(kbase), kval, kvalid,
                   np.array([p.strict for p in programs], dtype=np.uint8), shape)

    @property
    def instructions(self) -> int:
        return sum(len(p.code) for p in self.programs)


# -- code generation -----------------------------------------------------------------

_TRUE = "True"


def _conj(*terms: str) -> str:
    """Validity conjunction with the literal True folded away."""
    rest = [t for t in terms if t != _TRUE]
    if not rest:
        return _TRUE
    return rest[0] if len(rest) == 1 else "(" + " & ".join(rest) + ")"


class _Line:
    __slots__ = ("depth", "text", "assigns")

    def __init__(self, depth: int, text: str, assigns: str | None = None):
        self.depth, self.text, self.assigns = depth, text, assigns


def _skippers(code: np.ndarray) -> list[tuple[int, int]]:
    """(from, to) of every control transfer that skips instructions (RET before the end too)."""
    out = []
    n = len(code)
    for pc, (op, a, b, _) in enumerate(code):
        if op in JUMPS:
            out.append((pc, int(b)))
        elif op == Op.RET and pc < n - 1:
            out.append((pc, n))
    return out


def _block_starts(code: np.ndarray, skips: list[tuple[int, int]]) -> set[int]:
    starts = {0}
    for frm, to in skips:
        starts.add(frm + 1)
        starts.add(to)
    return {s for s in starts if s < len(code)}


def _merged_registers(code: np.ndarray, skips: list[tuple[int, int]], starts: set[int]) -> set[int]:
    """Registers that need one variable across paths, initialized before the row loop.

    A register written once, before every read on every path, is a plain local that
    numba's SSA pass never has to reconcile; keeping the rest few keeps compile time
    close to linear in the rule count. A write dominates a later read when it is in a
    block no jump can skip, or in the read's own block.
    """
    guarded = {s for s in starts if any(frm < s < to for frm, to in skips)}
    block_of, current = [], 0
    for pc in range(len(code)):
        current = pc if pc in starts else current
        block_of.append(current)
    defs: dict[int, list[int]] = {}
    uses: dict[int, list[int]] = {}
    for pc, (op, a, b, c) in enumerate(code):
        for reg in register_inputs(op, b, c) + ((a,) if op in READS_A else ()):
            uses.setdefault(int(reg), []).append(pc)
        if op in WRITES_A:
            defs.setdefault(int(a), []).append(pc)
    merged = {reg for reg, d in defs.items() if len(d) > 1} | (set(uses) - set(defs))
    for reg, d in defs.items():
        if len(d) == 1:
            w = d[0]
            if any(not (w < u and (block_of[w] not in guarded or block_of[w] == block_of[u]))
                   for u in uses.get(reg, ())):
                merged.add(reg)
    return merged


def _tainted_registers(code: np.ndarray) -> set[int]:
    """Registers that may hold an overflow's NULL somewhere in the program (vm.run's
    taint, computed statically): empty for a program without integer arithmetic, whose
    kernel then carries no taint code at all."""
    tainted: set[int] = set()
    changed = True
    while changed:
        changed = False
        for op, a, b, c in code:
            op = Op(int(op))
            if op not in WRITES_A or op in NEVER_NULL or int(a) in tainted:
                continue
            if op in OVERFLOW_SOURCES or any(int(r) in tainted for r in register_inputs(op, b, c)):
                tainted.add(int(a))
                changed = True
    return tainted


class _ProgramEmitter:
    """Per-row statements for one program; subclasses say where its inputs come from."""

    rule_id = "0"                          # the rule's index in counts / out_rule

    def __init__(self, k: int, prog: Program, reads: set[str], lines: list[_Line]):
        self.k, self.prog = k, prog
        self.reads, self.lines = reads, lines
        self.static: set[int] = set()      # registers known valid at this point
        self.depth = 0
        self.merged: set[int] = set()
        self.tainted = _tainted_registers(prog.code)   # may carry an overflow's NULL

    # inputs (overridden)
    def column(self, b: int) -> tuple[str, str]:
        """(word, validity) of the program's column b; validity is True if it has no NULLs."""
        raise NotImplementedError

    def const(self, b: int) -> str:
        raise NotImplementedError

    def lut(self, c: int, key: str) -> tuple[str, str, str]:
        """(value, validity) of entry `key` of LUT c, and the index of its NULL entry."""
        raise NotImplementedError

    # names
    def r(self, reg: int) -> str:
        name = f"p{self.k}r{reg}"
        self.reads.add(name)
        return name

    def v(self, reg: int) -> str:
        """The validity of a register: the literal True when it cannot be NULL here."""
        if reg in self.static:
            return _TRUE
        name = f"p{self.k}v{reg}"
        self.reads.add(name)
        return name

    def emit(self, text: str, depth: int = 0, assigns: str | None = None) -> None:
        self.lines.append(_Line(self.depth + depth, text, assigns))

    def set_r(self, reg: int, expr: str, depth: int = 0) -> None:
        self.emit(f"p{self.k}r{reg} = {expr}", depth)

    def set_v(self, reg: int, expr: str, depth: int = 0) -> None:
        """Assign validity; the assignment is dropped later if nothing reads it."""
        name = f"p{self.k}v{reg}"
        self.emit(f"{name} = {expr}", depth, assigns=name)
        if expr == _TRUE:
            self.static.add(reg)
        else:
            self.static.discard(reg)

    def tmp(self, pc: int, tag: str) -> str:
        return f"p{self.k}t{pc}{tag}"

    # overflow taint (vm.run): a bool per tainted register, True where its NULL is an overflow's
    def o(self, reg: int) -> str:
        if reg not in self.tainted:
            return "False"
        name = f"p{self.k}o{reg}"
        self.reads.add(name)
        return name

    def set_o(self, reg: int, expr: str, depth: int = 0) -> None:
        if reg in self.tainted:
            name = f"p{self.k}o{reg}"
            self.emit(f"{name} = {expr}", depth, assigns=name)

    def all_tainted(self, inputs: Sequence[int]) -> str:
        """vm._all_tainted: some input is NULL and every NULL input is an overflow's."""
        if not any(r in self.tainted for r in inputs):
            return "False"
        some_null = f"(not {_conj(*[self.v(r) for r in inputs])})"
        each = [f"({self.v(r)} | {self.o(r)})" for r in inputs
                if self.v(r) != _TRUE and r in self.tainted]
        unexplained = [r for r in inputs if self.v(r) != _TRUE and r not in self.tainted]
        if unexplained:     # an input NULL that no overflow made: only when it is valid
            each += [self.v(r) for r in unexplained]
        return " & ".join([some_null] + each)

    def follow_taint_raw(self, a: int, inputs: Sequence[int]) -> None:
        """Before the result's validity is set (MOD_I: NULL also where y = 0, not tainted)."""
        if a in self.tainted:
            self.set_o(a, self.all_tainted(inputs))

    def source_taint(self, a: int, inputs: Sequence[int], valid_in: str, fits: str) -> None:
        """An overflow source: valid inputs that did not fit, or tainted NULL inputs."""
        if a not in self.tainted:
            return
        terms = [f"({_conj(valid_in, f'(not {fits})')})"]
        inherited = self.all_tainted(inputs)
        if inherited != "False":
            terms.append(f"({inherited})")
        self.set_o(a, " | ".join(terms))

    # the whole program
    def generate(self) -> None:
        code = self.prog.code
        n = len(code)
        skips = _skippers(code)
        starts = _block_starts(code, skips)
        incoming: dict[int, list[frozenset]] = {}
        self.merged = _merged_registers(code, skips, starts)
        has_guard = any(frm < s < to for s in starts for frm, to in skips)
        if has_guard:
            self.emit(f"g{self.k} = 0")
        falls = True                        # the previous instruction can fall through
        for pc in range(n):
            if pc in starts:
                preds = list(incoming.pop(pc, []))
                if falls:
                    preds.append(frozenset(self.static))
                self.static = set(frozenset.intersection(*preds)) if preds else set()
                self.depth = 0
                if any(frm < pc < to for frm, to in skips):
                    self.emit(f"if g{self.k} <= {pc}:")
                    self.depth = 1
                    self.emit("pass")
            op, a, b, c = (int(x) for x in code[pc])
            falls = op not in TERMINATORS
            if op in JUMPS:
                incoming.setdefault(b, []).append(frozenset(self.static))
            self.instruction(pc, Op(op), a, b, c, last=pc == n - 1)
        self.depth = 0

    # one instruction
    def instruction(self, pc: int, op: Op, a: int, b: int, c: int, last: bool) -> None:
        name = op.name
        if op == Op.NOP:
            return
        # overflow taint of an op that is no source: from its inputs *before* it runs
        # (a result register may be one of its inputs)
        inherited = None
        if (a in self.tainted and op in WRITES_A and op not in OVERFLOW_SOURCES
                and op not in (Op.MOV, Op.SELECT, Op.MOD_I)):     # these set their own taint
            inherited = self.all_tainted(list(register_inputs(op, b, c)))
            if inherited != "False":
                self.emit(f"{self.tmp(pc, 'o')} = {inherited}")
                inherited = self.tmp(pc, "o")
        if op == Op.LOAD:
            word, valid = self.column(b)
            self.reads.add(word)
            self.set_r(a, word)
            self.set_v(a, valid)
        elif op == Op.LOADK:
            name = self.const(b)
            self.reads.add(name)
            self.set_r(a, name)
            self.set_v(a, _TRUE if self.prog.kvalid[b] else "False")
        elif op == Op.MOV:
            self.set_r(a, self.r(b))
            self.set_v(a, self.v(b))
            self.set_o(a, self.o(b))
        elif op in (Op.ADD_I, Op.SUB_I, Op.MUL_I):
            # the check comes first: numba's signed arithmetic must never overflow
            fits, x, y = self.tmp(pc, "fit"), self.r(b), self.r(c)
            sym = SYMBOL[op]
            self.emit(f"{fits} = {FAMILY[op]}_ok({x}, {y})")
            valid_in = _conj(self.v(b), self.v(c))
            self.source_taint(a, (b, c), valid_in, fits)
            self.set_r(a, f"{x} {sym} {y} if {fits} else np.int64(0)")
            self.set_v(a, _conj(valid_in, fits))
        elif op in (Op.IDIV_I, Op.MOD_I):
            self.division(pc, op, a, b, c)
        elif op in (Op.NEG_I, Op.ABS_I, Op.NARROW_I):
            fits, x = self.tmp(pc, "fit"), self.r(b)
            self.emit(f"{fits} = narrow_ok({x}, {c})" if op == Op.NARROW_I
                      else f"{fits} = {x} != {vm._I64_MIN}")
            valid_in = self.v(b)
            self.source_taint(a, (b,), valid_in, fits)
            value = {Op.NEG_I: f"-{x}", Op.ABS_I: f"(-{x} if {x} < 0 else {x})", Op.NARROW_I: x}[op]
            self.set_r(a, f"{value} if {fits} else np.int64(0)")
            self.set_v(a, _conj(valid_in, fits))
        elif op == Op.ROUND_I:
            fits = self.tmp(pc, "fit")
            self.emit(f"{fits} = round_ok({self.r(b)}, {c})")
            self.source_taint(a, (b,), self.v(b), fits)
            self.set_r(a, f"round_i({self.r(b)}, {c}) if {fits} else np.int64(0)")
            self.set_v(a, _conj(self.v(b), fits))
        elif FAMILY[op] in ("add", "sub", "mul", "div", "mod") and CLASSES[op][0] == "f":
            self.set_r(a, f"{FAMILY[op]}_f({self.r(b)}, {self.r(c)})")
            self.set_v(a, _conj(self.v(b), self.v(c)))
        elif op in (Op.NEG_F, Op.ABS_F, Op.I2F):
            self.set_r(a, f"{FAMILY[op]}{'_f' if op != Op.I2F else ''}({self.r(b)})")
            self.set_v(a, self.v(b))
        elif op == Op.ROUND_F:
            self.set_r(a, f"round_f({self.r(b)}, {c})")
            self.set_v(a, self.v(b))
        elif op == Op.F2I:
            ok, fits = self.tmp(pc, "ok"), self.tmp(pc, "fit")
            self.emit(f"{fits} = f2i_ok({self.r(b)})")
            self.emit(f"{ok} = {_conj(self.v(b), fits)}")
            self.source_taint(a, (b,), self.v(b), fits)
            self.set_r(a, f"f2i({self.r(b)}) if {ok} else 0")
            self.set_v(a, ok)
        elif op in COMPARISONS:
            self.set_r(a, f"np.int64({self.comparison(op, b, c)})")
            self.set_v(a, _conj(self.v(b), self.v(c)))
        elif op == Op.NOT:
            self.set_r(a, f"np.int64({self.r(b)} == 0)")
            self.set_v(a, self.v(b))
        elif op in (Op.AND, Op.OR):
            self.logic(pc, op, a, b, c)
        elif op == Op.ISNULL:
            self.set_r(a, "np.int64(0)" if self.v(b) == _TRUE else f"np.int64(not {self.v(b)})")
            self.set_v(a, _TRUE)
        elif op == Op.NOTNULL:
            self.set_r(a, "np.int64(1)" if self.v(b) == _TRUE else f"np.int64({self.v(b)})")
            self.set_v(a, _TRUE)
        elif op == Op.COALESCE:
            self.coalesce(a, b, c)
        elif op == Op.SELECT:
            self.select(a, b, c)
        elif op == Op.LUT:
            self.lookup(pc, a, b, c)
        elif op == Op.JMP:
            self.emit(f"g{self.k} = {b}")
        elif op in (Op.JALLF, Op.JALLT, Op.JNONET):
            self.emit(f"if {self.jump_test(op, a)}:")
            self.emit(f"g{self.k} = {b}", 1)
        elif op == Op.RET:
            self.verdict(a, last)
        else:   # pragma: no cover - a test checks every opcode has a branch
            raise NotImplementedError(f"fused: no translation for {name}")
        if inherited is not None:
            va = self.v(a)
            self.set_o(a, "False" if va == _TRUE or inherited == "False" else f"{inherited} & (not {va})")

    def comparison(self, op: Op, b: int, c: int) -> str:
        x, y = self.r(b), self.r(c)
        if CLASSES[op][1] != "f":                  # words compare as integers
            return f"{x} {SYMBOL[op]} {y}"
        # floats: NaN = NaN and NaN above every number (vm.f_eq / f_lt / f_le)
        return {"eq": f"eq_f({x}, {y})", "ne": f"not eq_f({x}, {y})", "lt": f"lt_f({x}, {y})",
                "le": f"le_f({x}, {y})", "gt": f"lt_f({y}, {x})", "ge": f"le_f({y}, {x})"}[FAMILY[op]]

    def division(self, pc: int, op: Op, a: int, b: int, c: int) -> None:
        ok = self.tmp(pc, "ok")
        valid_in = _conj(self.v(b), self.v(c))
        if op == Op.IDIV_I:              # MIN // -1 overflows: a source of taint
            fits = self.tmp(pc, "fit")
            self.emit(f"{fits} = ({self.r(c)} != -1) | ({self.r(b)} != {vm._I64_MIN})")
            self.source_taint(a, (b, c), valid_in, fits)
            self.emit(f"{ok} = {_conj(valid_in, fits, f'({self.r(c)} != 0)')}")
        else:
            self.follow_taint_raw(a, (b, c))
            self.emit(f"{ok} = {_conj(valid_in, f'({self.r(c)} != 0)')}")
        self.emit(f"if {ok}:")
        if op == Op.IDIV_I:
            self.set_r(a, f"idiv_i({self.r(b)}, {self.r(c)})", 1)
        else:
            self.set_r(a, f"mod_i({self.r(b)}, {self.r(c)})", 1)
        self.emit("else:")
        self.set_r(a, "0", 1)
        self.set_v(a, ok)

    def logic(self, pc: int, op: Op, a: int, b: int, c: int) -> None:
        vb, vc = self.v(b), self.v(c)
        both = _conj(vb, vc)
        if op == Op.AND:   # FALSE wins over NULL
            fb = _conj(vb, f"({self.r(b)} == 0)")
            fc = _conj(vc, f"({self.r(c)} == 0)")
            f = self.tmp(pc, "f")
            self.emit(f"{f} = {fb} | {fc}")
            self.set_r(a, f"np.int64(not {f})" if both == _TRUE else f"np.int64({both} & (not {f}))")
            self.set_v(a, _TRUE if both == _TRUE else f"{f} | {both}")
        else:              # TRUE wins over NULL
            tb = _conj(vb, f"({self.r(b)} != 0)")
            tc = _conj(vc, f"({self.r(c)} != 0)")
            t = self.tmp(pc, "t")
            self.emit(f"{t} = {tb} | {tc}")
            self.set_r(a, f"np.int64({t})")
            self.set_v(a, _TRUE if both == _TRUE else f"{t} | {both}")

    def coalesce(self, a: int, b: int, c: int) -> None:
        vb = self.v(b)
        if vb == _TRUE:
            self.set_r(a, self.r(b))
            self.set_v(a, _TRUE)
            return
        static_c = self.v(c) == _TRUE
        self.emit(f"if {vb}:")
        self.set_r(a, self.r(b), 1)
        self.emit("else:")
        self.set_r(a, self.r(c), 1)
        if static_c:
            self.set_v(a, _TRUE)
        else:
            self.set_v(a, f"{vb} | {self.v(c)}")

    def select(self, a: int, b: int, c: int) -> None:
        fire = _conj(self.v(b), f"({self.r(b)} != 0)")
        keep_static = a in self.static and self.v(c) == _TRUE
        self.emit(f"if {fire}:")
        self.set_r(a, self.r(c), 1)
        # R[a] keeps its old value and validity on rows where the SELECT does not fire
        self.emit(f"p{self.k}v{a} = {self.v(c)}", 1, assigns=f"p{self.k}v{a}")
        self.set_o(a, self.o(c), 1)
        if keep_static:
            self.static.add(a)
        else:
            self.static.discard(a)

    def lookup(self, pc: int, a: int, b: int, c: int) -> None:
        vb = self.v(b)
        key = self.tmp(pc, "k")
        value, valid, null_entry = self.lut(c, key)
        self.emit(f"{key} = {self.r(b) if vb == _TRUE else f'{self.r(b)} if {vb} else {null_entry}'}")
        self.set_r(a, value)
        self.set_v(a, valid)

    def jump_test(self, op: Op, a: int) -> str:
        va, ra = self.v(a), self.r(a)
        if op == Op.JALLF:
            return _conj(va, f"({ra} == 0)")
        if op == Op.JALLT:
            return _conj(va, f"({ra} != 0)")
        return f"not {_conj(va, f'({ra} != 0)')}"        # JNONET

    def verdict(self, a: int, last: bool) -> None:
        # One recording site per rule, counters in memory: few multiply-assigned
        # variables, which is what numba's compile time grows with.
        k, q = self.k, self.rule_id
        va, ra = self.v(a), self.r(a)
        if va == _TRUE:
            self.emit(f"if {ra} == 0:")
        else:
            self.emit(f"if not {va}:")
            self.emit(f"counts[{q}, 1] += 1", 1)
            if a in self.tainted:
                self.emit(f"counts[{q}, 2] += {self.o(a)}", 1)
            self.emit(f"if ({va} & ({ra} == 0)) | ((not {va}) & s{k}):")
        # the violation goes into the rule's bitmap word, stored once per 64 rows
        for stmt in (f"bw{k} |= bit", f"counts[{q}, 0] += 1"):
            self.emit(stmt, 1)
        if not last:
            self.emit(f"g{k} = {len(self.prog.code)}")


class _SetEmitter(_ProgramEmitter):
    """The k-th program of a per-row kernel: inputs are the set's, shared by all rules."""

    def __init__(self, k: int, rset: RuleSet, nullable: Sequence[bool], reads: set[str],
                 lines: list[_Line]):
        super().__init__(k, rset.programs[k], reads, lines)
        self.rset, self.nullable = rset, nullable
        self.rule_id = str(k)

    def column(self, b: int) -> tuple[str, str]:
        g = self.rset.col_maps[self.k][b]
        return f"x{g}", f"y{g}" if self.nullable[g] else _TRUE

    def const(self, b: int) -> str:
        return f"k{self.rset.kbase[self.k] + b}"

    def lut(self, c: int, key: str) -> tuple[str, str, str]:
        t = self.rset.lut_maps[self.k][c]
        return f"t{t}v[{key}]", f"t{t}m[{key}] != 0", f"t{t}n"


class _ShapeEmitter(_ProgramEmitter):
    """The one program shape of a shape kernel, run for rule q of its group."""

    rule_id = "q"

    def __init__(self, prog: Program, nullable: Sequence[bool], reads: set[str], lines: list[_Line]):
        super().__init__(0, prog, reads, lines)
        self.nullable = nullable

    def column(self, b: int) -> tuple[str, str]:
        return f"x{b}", f"y{b}" if self.nullable[b] else _TRUE

    def const(self, b: int) -> str:
        return f"k{b}"

    def lut(self, c: int, key: str) -> tuple[str, str, str]:
        return f"lutv[t{c}s + {key}]", f"lutm[t{c}s + {key}] != 0", f"t{c}n"

    def verdict(self, a: int, last: bool) -> None:
        # No branch per row: the verdict becomes a flag, and the block's flags are
        # turned into row numbers afterwards, only when some are set (shape kernels'
        # inner loops can then run without mispredicted branches, or vectorize).
        va, ra = self.v(a), self.r(a)
        if va == _TRUE:
            self.emit(f"bad = {ra} == 0")
            self.emit("nul = False")
            self.emit("ofl = False")
        else:
            self.emit(f"bad = ({va} & ({ra} == 0)) | ((not {va}) & s0)")
            self.emit(f"nul = not {va}")
            self.emit(f"ofl = (not {va}) & {self.o(a)}" if a in self.tainted else "ofl = False")
        if not last:
            self.emit(f"g0 = {len(self.prog.code)}")


_PREAMBLE = """\
# Generated by batchaot.engine.fused (generator {version}): {what}.
# Do not edit: the file name is the hash of what generated it.
import numpy as np
from numba import njit, types as nt
from batchaot.engine.fused import {runtime}

I64 = nt.int64
RI = nt.Array(nt.int64, 1, 'C', readonly=True)
RB = nt.Array(nt.uint8, 1, 'C', readonly=True)
R8 = nt.Array(nt.int8, 1, 'C', readonly=True)
R16 = nt.Array(nt.int16, 1, 'C', readonly=True)
R32 = nt.Array(nt.int32, 1, 'C', readonly=True)
RU16 = nt.Array(nt.uint16, 1, 'C', readonly=True)
RU32 = nt.Array(nt.uint32, 1, 'C', readonly=True)
RI2 = nt.Array(nt.int64, 2, 'C', readonly=True)
C2 = nt.Array(nt.int64, 2, 'C')
O32 = nt.Array(nt.int32, 1, 'C')
O64 = nt.Array(nt.int64, 1, 'C')
W2 = nt.Array(nt.uint64, 2, 'C')
SIGNATURE = {ret}({sig})


def kernel({params}):
"""


def _preamble(what: str, nret: int, params: list[str], sig: list[str]) -> list[str]:
    ret = "I64" if nret == 1 else f"nt.UniTuple(nt.int64, {nret})"
    return _PREAMBLE.format(version=GENERATOR_VERSION, what=what, runtime=", ".join(RUNTIME),
                            ret=ret, sig=", ".join(sig), params=", ".join(params)).splitlines()


# column layout (columns.LAYOUTS) -> the argument's type in SIGNATURE, and whether a
# value is widened to an int64 register as it is read
_LAYOUT_TYPES = {"i64": ("RI", False), "i32": ("R32", True), "i16": ("R16", True), "i8": ("R8", True),
                 "u32": ("RU32", True), "u16": ("RU16", True), "u8": ("RB", True)}


def _layouts(rset: RuleSet, layouts: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(layouts) if layouts is not None else ("i64",) * len(rset.columns)


def _lut_type(result: str) -> str:
    """A lookup table's values: bytes for a boolean expression (columns.lut_dtype)."""
    return "RB" if result == "boolean" else "RI"


def _body(lines: list[_Line], reads: set[str], indent: int) -> list[str]:
    pad = "    " * indent
    return [pad + "    " * line.depth + line.text for line in lines
            if line.assigns is None or line.assigns in reads]


def _merged_inits(k: int, merged: set[int], reads: set[str], tainted: set[int] = frozenset()) -> list[str]:
    out = []
    for reg in sorted(merged):
        if f"p{k}r{reg}" in reads:
            out.append(f"p{k}r{reg} = np.int64(0)")
        if f"p{k}v{reg}" in reads:
            out.append(f"p{k}v{reg} = False")
    # taint flags: defined on every path (a register's taint may be set on one branch only)
    out += [f"p{k}o{reg} = False" for reg in sorted(tainted) if f"p{k}o{reg}" in reads]
    return out


def generate(rset: RuleSet, nullable: Sequence[bool], layouts: Sequence[str] | None = None) -> str:
    """Source of the per-row kernel for `rset` (columns flagged in `nullable` may be NULL).

    `layouts` (columns.LAYOUTS codes, default all int64) are the columns' physical
    types: narrower integers are read as they are and widened in registers, and an
    IDENTITY string column is no argument at all (its code is the row number).

    kernel(lo, hi, <columns>, kval, <luts>, strict, counts, bits) -> rows done: rule k's
    violations of rows [lo, hi) become bits of bits[k] (bit i & 63 of word i >> 6; every
    word of the range is written, so `bits` may come uninitialized), accumulated in a
    local word per rule and stored once per 64 rows. `lo` is a multiple of 64, so ranges
    of one batch run on several threads never share a word.
    """
    layouts = _layouts(rset, layouts)
    reads: set[str] = set()
    body: list[_Line] = []
    inits: list[str] = []
    for k, prog in enumerate(rset.programs):
        body.append(_Line(0, f"# rule {k}"))     # an index: no user text enters kernel source
        emitter = _SetEmitter(k, rset, nullable, reads, body)
        emitter.generate()
        inits += _merged_inits(k, emitter.merged, reads, emitter.tainted)

    ncols, nluts, nprog = len(rset.columns), len(rset.luts), len(rset.programs)
    nulls = [g for g in range(ncols) if nullable[g]]
    stored = [g for g in range(ncols) if layouts[g] != IDENTITY]
    params = (["lo", "hi"] + [f"w{g}" for g in stored]
              + [f"m{g}" for g in nulls] + [f"o{g}" for g in nulls] + ["kval"]
              + [f"t{t}{x}" for t in range(nluts) for x in ("v", "m")]
              + ["strict", "counts", "bits"])
    sig = (["I64", "I64"] + [_LAYOUT_TYPES[layouts[g]][0] for g in stored]
           + ["RB"] * len(nulls) + ["I64"] * len(nulls) + ["RI"]
           + [x for _, _, result in rset.luts for x in (_lut_type(result), "RB")]
           + ["RB", "C2", "W2"])
    out = _preamble(f"{nprog} rules, one pass per row", 1, params, sig)
    pre = [f"k{g} = kval[{g}]" for g in sorted(int(x[1:]) for x in reads if x[0] == "k" and x[1:].isdigit())]
    pre += [f"t{t}n = t{t}v.shape[0] - 1" for t in range(nluts)]
    pre += [f"s{k} = strict[{k}] != 0" for k in range(nprog)]
    pre += [f"vw{g} = np.uint64(0)" for g in nulls]
    pre += [f"bw{k} = np.uint64(0)" for k in range(nprog)]
    pre += inits + ["i = lo"]
    out += ["    " + x for x in pre]
    out += ["    while i < hi:", "        bit = np.uint64(1) << np.uint64(i & 63)"]
    # validity: one word per column and 64 rows, a shift per row (measured: ~12% faster
    # than reading each row's bit from the bitmap, and faster than unpacking it a
    # block at a time, as shape kernels do)
    if nulls:
        out.append("        if (i & 63) == 0 or i == lo:")
        out += [f"            vw{g} = valid_word(m{g}, o{g}, i - (i & 63))" for g in nulls]
    # every column once per row, shared by all rules
    for g in range(ncols):
        if layouts[g] == IDENTITY:
            out.append(f"        x{g} = i")
        elif _LAYOUT_TYPES[layouts[g]][1]:
            out.append(f"        x{g} = np.int64(w{g}[i])")
        else:
            out.append(f"        x{g} = w{g}[i]")
        if nullable[g]:
            out.append(f"        y{g} = ((vw{g} >> np.uint64(i & 63)) & np.uint64(1)) != 0")
    out += _body(body, reads, 2)
    out += ["        if (i & 63) == 63:"]
    out += [f"            bits[{k}, i >> 6] = bw{k}\n            bw{k} = np.uint64(0)" for k in range(nprog)]
    out += ["        i += 1"]
    out += ["    if hi > lo and (hi & 63) != 0:      # the range's last, partial word"]
    out += [f"        bits[{k}, (hi - 1) >> 6] = bw{k}" for k in range(nprog)]
    out += ["    return hi"]
    return "\n".join(out) + "\n"


def generate_shape(prog: Program, nullable: Sequence[bool]) -> str:
    """Source of the shape kernel that runs every rule with `prog`'s bytecode shape.

    The rules of a group differ only in their columns, constants and lookup tables,
    which come in as data: colmap[q] (set columns of rule q), kbase[q], lutstart[q] /
    lutlen[q] (into the flat lookup tables). Rows go in blocks of SHAPE_BLOCK, and for
    each block every rule of the group runs over it, so one compiled loop serves
    hundreds of rules while the block's columns stay in cache.

    kernel(lo, hi, q0, row_base, col_addr, col_len, bm_addr, bm_len, offs, colmap, kval,
    kbase, lutv, lutm, lutstart, lutlen, strict, counts, out_rule, out_row, pos)
    -> (next row, next rule, pos); columns and bitmaps come by address (engine/buffers.py).
    """
    reads: set[str] = set()
    body: list[_Line] = []
    emitter = _ShapeEmitter(prog, nullable, reads, body)
    emitter.generate()
    ncols, nluts = len(prog.columns), len(prog.luts)
    params = ["lo", "hi", "q0", "row_base", "col_addr", "col_len", "bm_addr", "bm_len", "offs", "vcols",
              "vslot", "colmap",
              "kval", "kbase", "lutv", "lutm", "lutstart", "lutlen", "strict", "counts", "out_rule",
              "out_row", "pos"]
    sig = ["I64", "I64", "I64", "I64", "RI", "RI", "RI", "RI", "RI", "RI", "RI", "RI2", "RI", "RI", "RI", "RB",
           "RI2", "RI2", "RB", "C2", "O32", "O64", "I64"]
    out = _preamble("the rules of one bytecode shape, block by block", 3, params, sig)
    per_rule = []
    for b in range(ncols):
        per_rule += [f"c{b} = colmap[q, {b}]", f"w{b} = i64_at(col_addr, col_len, c{b})"]
        if nullable[b]:
            per_rule.append(f"u{b} = valid[vslot[c{b}]]")
    per_rule += [f"k{j} = kval[kbase[q] + {j}]"
                 for j in sorted(int(x[1:]) for x in reads if x[0] == "k" and x[1:].isdigit())]
    for c in range(nluts):
        per_rule += [f"t{c}s = lutstart[q, {c}]", f"t{c}n = lutlen[q, {c}] - 1"]
    per_rule += ["s0 = strict[q] != 0"] + _merged_inits(0, emitter.merged, reads, emitter.tainted)
    out += ["    nrules = colmap.shape[0]",
            f"    flags = np.empty({SHAPE_BLOCK}, dtype=np.uint8)",
            f"    valid = np.empty((max(vcols.shape[0], 1), {SHAPE_BLOCK}), dtype=np.uint8)",
            f"    limit = out_row.shape[0] - {SHAPE_BLOCK}",
            "    start = lo",
            "    q = q0",
            "    while start < hi:",
            f"        end = min(start + {SHAPE_BLOCK}, hi)",
            "        # validity as one byte per row, unpacked once per block for all rules",
            "        for u in range(vcols.shape[0]):",
            "            unpack_bits(u8_at(bm_addr, bm_len, vcols[u]), offs[vcols[u]], start, end - start, valid[u])",
            "        while q < nrules:",
            "            if pos > limit:",
            "                return start, q, pos"]
    out += ["            " + x for x in per_rule]
    # slices with a 0-based index: LLVM then knows the trip count and can vectorize
    out += [f"            v{b} = w{b}[start:end]" for b in range(ncols)]
    out += ["            nbad = 0", "            nnul = 0", "            nofl = 0", "            for j in range(end - start):"]
    if len(prog.code) and prog.code[-1][0] != Op.RET or sum(int(op == Op.RET) for op in prog.code[:, 0]) > 1:
        out += ["                bad = False", "                nul = False", "                ofl = False"]
    for b in range(ncols):
        out.append(f"                x{b} = v{b}[j]")
        if nullable[b]:
            out.append(f"                y{b} = u{b}[j] != 0")
    out += _body(body, reads, 4)
    out += ["                flags[j] = bad",
            "                nbad += bad",
            "                nnul += nul",
            "                nofl += ofl",
            "            counts[q, 1] += nnul",
            "            counts[q, 2] += nofl",
            "            if nbad:",
            "                counts[q, 0] += nbad",
            "                for j in range(end - start):",
            "                    if flags[j]:",
            "                        out_rule[pos] = q",
            "                        out_row[pos] = row_base + start + j",
            "                        pos += 1",
            "            q += 1", "        q = 0", "        start = end", "    return start, 0, pos"]
    return "\n".join(out) + "\n"


# -- the kernel cache: memory, then disk, then compile --------------------------------

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


def cache_dir() -> Path:
    """Where kernel sources, numba's cache files for them and their manifests live
    (``<cache root>/kernels``, a folder only this user can write); read on every use."""
    return Path(cache_root()) / "kernels"


def _versions() -> str:
    """Everything besides the shape that changes the compiled code."""
    if not _VERSIONS:
        from ..._version import __version__
        helpers = "".join(inspect.getsource(h.py_func) for h in _HELPERS)
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
    return _key("row", rset.shape, _mask(nullable), ",".join(_layouts(rset, layouts)))


def shape_key(shape: str, nullable: Sequence[bool]) -> str:
    """Shape kernel key: versions, one program's shape (program_shape), NULL-able columns."""
    return _key("shape", shape, _mask(nullable))


def program_shape(prog: Program) -> str:
    """A program's bytecode without constant values or column names: its kernel shape."""
    return json.dumps({"code": prog.code.tolist(), "kvalid": prog.kvalid.tolist(),
                       "nregs": prog.nregs, "columns": len(prog.columns), "luts": len(prog.luts)},
                      separators=(",", ":"))


def _source_path(key: str) -> Path:
    return cache_dir() / f"bk_{key}.py"


def _manifest_path(key: str) -> Path:
    return cache_dir() / f"bk_{key}.manifest.json"


def _on_disk(key: str) -> bool:
    """Whether a verified compiled kernel for `key` is (probably) on disk: its manifest is."""
    return _manifest_path(key).exists()


def forget() -> None:
    """Drop every kernel from memory (the disk cache stays): the next use loads from disk."""
    with _LOCK:
        for kernel in _MEMORY.values():
            sys.modules.pop(f"batchaot_kernel_{kernel.key}", None)
        _MEMORY.clear()
        _BY_SHAPE.clear()


def _covers(have: Sequence[bool], need: Sequence[bool]) -> bool:
    return all(h or not n for h, n in zip(have, need))


def _cached_row_kernel(rset: RuleSet, nullable: Sequence[bool], layouts: tuple[str, ...]) -> Kernel | None:
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
    layouts = _layouts(rset, layouts)
    with _LOCK:
        known = _cached_row_kernel(rset, nullable, layouts)
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
    """Load the kernel's machine code from the disk cache if it verifies, else compile it.

    What runs is always the source generated here, in this process: the file on disk
    only anchors numba's cache (its index is stamped with the file's content), and no
    .pyc is read. numba's own cache files (pickles) are loaded only when their hashes
    match the manifest this process's user wrote after compiling them; anything else
    in their place is deleted and the kernel recompiled.
    """
    text = source()
    path = _source_path(key)
    try:
        private_dir(str(path.parent))
        try:
            current = path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            _write_atomic(path, text, replace=path.exists())
            STATS["sources_written"] += 1
    except OSError as exc:
        raise OSError(f"batchaot cannot use its kernel cache {path.parent}: {exc}; "
                      "set BATCHAOT_CACHE_DIR to a folder of your own") from exc
    module = types.ModuleType(f"batchaot_kernel_{key}")
    module.__file__ = str(path)
    exec(compile(text, str(path), "exec"), module.__dict__)   # noqa: S102 - our own generated text
    sys.modules[module.__name__] = module     # numba's cached environment re-imports it by name
    fn = njit(cache=True, nogil=True)(module.kernel)
    manifest = _manifest_path(key)
    if not _verify_numba_files(fn, manifest):
        STATS["cache_rejected"] += 1
    fn.compile(module.SIGNATURE)
    fn.disable_compile()    # as @njit(signature) does: one signature, never a silent second
    hits, misses = sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values())
    STATS["disk_hits"] += hits
    STATS["compiles"] += misses
    if misses:
        _write_manifest(fn, manifest)
    kernel = Kernel(key, nullable, fn, path, layouts)
    _MEMORY[key] = kernel
    return kernel


def _numba_files(fn) -> list[Path]:
    """numba's cache files (index and data) of dispatcher `fn`, wherever numba keeps them
    (beside the source, or under NUMBA_CACHE_DIR)."""
    cache_file = fn._cache._cache_file
    folder = Path(cache_file._cache_path)
    base = cache_file._index_name[:-len(".nbi")]
    return sorted(p for p in folder.glob(f"{base}.*") if p.suffix in (".nbi", ".nbc"))


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify_numba_files(fn, manifest: Path) -> bool:
    """True if numba's cache files for `fn` are exactly those the manifest records (or
    there are none); otherwise delete them, so that numba compiles afresh."""
    files = _numba_files(fn)
    if not files:
        return True
    try:
        recorded = json.loads(manifest.read_text()) if trusted_dir(str(manifest.parent)) else None
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict) and recorded == {p.name: _digest_file(p) for p in files}:
        return True
    for p in files:
        try:
            p.unlink()
        except OSError as exc:
            raise OSError(f"batchaot cannot remove the unverified kernel cache file {p}: {exc}") from exc
    return False


def _write_manifest(fn, manifest: Path) -> None:
    """Record the hashes of the cache files numba just wrote (atomically: a reader never
    sees half a manifest). A cache that cannot be written only costs time."""
    try:
        record = {p.name: _digest_file(p) for p in _numba_files(fn)}
        fd, tmp = tempfile.mkstemp(dir=manifest.parent, prefix=".bk_", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, manifest)
    except OSError:
        pass


def _write_atomic(path: Path, text: str, replace: bool) -> None:
    """Publish `text` at `path` whole; a concurrent writer of the same key wins harmlessly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bk_", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if replace:                      # a damaged or foreign file: overwrite it
            os.replace(tmp, path)
            return
        try:
            # link() fails if the name exists, so the first writer's file (and the
            # content numba's cache index was stamped with) is never touched again
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:                  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- plans: how a rule set runs on this tier ---------------------------------------------

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
            layouts = _layouts(self.rset, layouts)
            if (_cached_row_kernel(self.rset, nullable, layouts)
                    or _on_disk(kernel_key(self.rset, nullable, layouts))):
                return 0.0
            return COMPILE_BASE_S + COMPILE_PER_INSTRUCTION_S * self.rset.instructions
        return SHAPE_COMPILE_S * sum(key not in _MEMORY and not _on_disk(key)
                                     for key in self._shape_groups(nullable))

    def bind(self, cols: Sequence[Loaded], luts: Sequence[tuple[np.ndarray, np.ndarray]]) -> "Bound":
        """Kernels and arguments for one batch (`cols`/`luts`: the set's, in order)."""
        nullable = [c.bitoff >= 0 for c in cols]
        if self.per_row:
            kernel = get_kernel(self.rset, nullable, [c.layout for c in cols])
            return _RowBound(kernel, kernel_args(self.rset, kernel, cols, luts), self.nrules)
        return _ShapeBound(self, cols, luts, nullable)


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
                for a in (np.ascontiguousarray(values, dtype=np.uint8 if _lut_type(result) == "RB" else np.int64),
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
