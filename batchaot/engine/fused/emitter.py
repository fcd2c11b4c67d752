"""Per-row statements for one program: the part of code generation both kernel kinds share.

Each register is a pair of locals (an int64 word; a bool validity only where it can
be NULL), each instruction one or a few statements. Subclasses (codegen.py) say where
a program's columns, constants and lookup tables come from and how a verdict is
recorded.

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
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...compiler.opcodes import (CLASSES, COMPARISONS, FAMILY, JUMPS, NEVER_NULL, OVERFLOW_SOURCES,
                                 READS_A, SYMBOL, TERMINATORS, WRITES_A, Op, register_inputs)
from ...compiler.program import Program
from .ruleset import divisors
from .. import vm

TRUE = "True"


def conj(*terms: str) -> str:
    """Validity conjunction with the literal True folded away."""
    rest = [t for t in terms if t != TRUE]
    if not rest:
        return TRUE
    return rest[0] if len(rest) == 1 else "(" + " & ".join(rest) + ")"


class Line:
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


class ProgramEmitter:
    """Per-row statements for one program; subclasses say where its inputs come from."""

    rule_id = "0"                          # the rule's index in counts / out_rule

    def __init__(self, k: int, prog: Program, reads: set[str], lines: list[Line]):
        self.k, self.prog = k, prog
        self.reads, self.lines = reads, lines
        self.static: set[int] = set()      # registers known valid at this point
        self.depth = 0
        self.merged: set[int] = set()
        self.tainted = _tainted_registers(prog.code)   # may carry an overflow's NULL
        self.divisors = divisors(prog)                 # pc -> a constant divisor K > 1

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
            return TRUE
        name = f"p{self.k}v{reg}"
        self.reads.add(name)
        return name

    def emit(self, text: str, depth: int = 0, assigns: str | None = None) -> None:
        self.lines.append(Line(self.depth + depth, text, assigns))

    def set_r(self, reg: int, expr: str, depth: int = 0) -> None:
        self.emit(f"p{self.k}r{reg} = {expr}", depth)

    def set_v(self, reg: int, expr: str, depth: int = 0) -> None:
        """Assign validity; the assignment is dropped later if nothing reads it."""
        name = f"p{self.k}v{reg}"
        self.emit(f"{name} = {expr}", depth, assigns=name)
        if expr == TRUE:
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
        some_null = f"(not {conj(*[self.v(r) for r in inputs])})"
        each = [f"({self.v(r)} | {self.o(r)})" for r in inputs
                if self.v(r) != TRUE and r in self.tainted]
        unexplained = [r for r in inputs if self.v(r) != TRUE and r not in self.tainted]
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
        terms = [f"({conj(valid_in, f'(not {fits})')})"]
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
            self.set_v(a, TRUE if self.prog.kvalid[b] else "False")
        elif op == Op.MOV:
            self.set_r(a, self.r(b))
            self.set_v(a, self.v(b))
            self.set_o(a, self.o(b))
        elif op in (Op.ADD_I, Op.SUB_I, Op.MUL_I):
            # the check comes first: numba's signed arithmetic must never overflow
            fits, x, y = self.tmp(pc, "fit"), self.r(b), self.r(c)
            sym = SYMBOL[op]
            self.emit(f"{fits} = {FAMILY[op]}_ok({x}, {y})")
            valid_in = conj(self.v(b), self.v(c))
            self.source_taint(a, (b, c), valid_in, fits)
            self.set_r(a, f"{x} {sym} {y} if {fits} else np.int64(0)")
            self.set_v(a, conj(valid_in, fits))
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
            self.set_v(a, conj(valid_in, fits))
        elif op == Op.ROUND_I:
            fits = self.tmp(pc, "fit")
            self.emit(f"{fits} = round_ok({self.r(b)}, {c})")
            self.source_taint(a, (b,), self.v(b), fits)
            self.set_r(a, f"round_i({self.r(b)}, {c}) if {fits} else np.int64(0)")
            self.set_v(a, conj(self.v(b), fits))
        elif FAMILY[op] in ("add", "sub", "mul", "div", "mod") and CLASSES[op][0] == "f":
            self.set_r(a, f"{FAMILY[op]}_f({self.r(b)}, {self.r(c)})")
            self.set_v(a, conj(self.v(b), self.v(c)))
        elif op in (Op.NEG_F, Op.ABS_F, Op.I2F, Op.F2S):
            self.set_r(a, f"{FAMILY[op]}{'_f' if op in (Op.NEG_F, Op.ABS_F) else ''}({self.r(b)})")
            self.set_v(a, self.v(b))
        elif op == Op.ROUND_F:
            self.set_r(a, f"round_f({self.r(b)}, {c})")
            self.set_v(a, self.v(b))
        elif op == Op.F2I:
            ok, fits = self.tmp(pc, "ok"), self.tmp(pc, "fit")
            self.emit(f"{fits} = f2i_ok({self.r(b)})")
            self.emit(f"{ok} = {conj(self.v(b), fits)}")
            self.source_taint(a, (b,), self.v(b), fits)
            self.set_r(a, f"f2i({self.r(b)}) if {ok} else 0")
            self.set_v(a, ok)
        elif op in COMPARISONS:
            self.set_r(a, f"np.int64({self.comparison(op, b, c)})")
            self.set_v(a, conj(self.v(b), self.v(c)))
        elif op == Op.NOT:
            self.set_r(a, f"np.int64({self.r(b)} == 0)")
            self.set_v(a, self.v(b))
        elif op in (Op.AND, Op.OR):
            self.logic(pc, op, a, b, c)
        elif op == Op.ISNULL:
            self.set_r(a, "np.int64(0)" if self.v(b) == TRUE else f"np.int64(not {self.v(b)})")
            self.set_v(a, TRUE)
        elif op == Op.NOTNULL:
            self.set_r(a, "np.int64(1)" if self.v(b) == TRUE else f"np.int64({self.v(b)})")
            self.set_v(a, TRUE)
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
            self.set_o(a, "False" if va == TRUE or inherited == "False" else f"{inherited} & (not {va})")

    def comparison(self, op: Op, b: int, c: int) -> str:
        x, y = self.r(b), self.r(c)
        if CLASSES[op][1] != "f":                  # words compare as integers
            return f"{x} {SYMBOL[op]} {y}"
        # floats: NaN = NaN and NaN above every number (vm.f_eq / f_lt / f_le)
        return {"eq": f"eq_f({x}, {y})", "ne": f"not eq_f({x}, {y})", "lt": f"lt_f({x}, {y})",
                "le": f"le_f({x}, {y})", "gt": f"lt_f({y}, {x})", "ge": f"le_f({y}, {x})"}[FAMILY[op]]

    def division(self, pc: int, op: Op, a: int, b: int, c: int) -> None:
        ok = self.tmp(pc, "ok")
        valid_in = conj(self.v(b), self.v(c))
        if op == Op.IDIV_I:              # MIN // -1 overflows: a source of taint
            fits = self.tmp(pc, "fit")
            self.emit(f"{fits} = ({self.r(c)} != -1) | ({self.r(b)} != {vm._I64_MIN})")
            self.source_taint(a, (b, c), valid_in, fits)
            self.emit(f"{ok} = {conj(valid_in, fits, f'({self.r(c)} != 0)')}")
        else:
            self.follow_taint_raw(a, (b, c))
            self.emit(f"{ok} = {conj(valid_in, f'({self.r(c)} != 0)')}")
        self.emit(f"if {ok}:")
        x, y, k = self.r(b), self.r(c), self.divisors.get(pc)
        general = f"idiv_i({x}, {y})" if op == Op.IDIV_I else f"mod_i({x}, {y})"
        if k is None:
            self.set_r(a, general, 1)
        else:       # x // k floors; SQL truncates toward zero: one up for a negative inexact x
            quotient = f"({x} // {k} + np.int64(({x} < 0) & ({x} % {k} != 0)))"
            fast = quotient if op == Op.IDIV_I else f"({x} - {quotient} * {k})"
            self.set_r(a, f"{fast} if {y} == {k} else {general}", 1)
        self.emit("else:")
        self.set_r(a, "0", 1)
        self.set_v(a, ok)

    def logic(self, pc: int, op: Op, a: int, b: int, c: int) -> None:
        vb, vc = self.v(b), self.v(c)
        both = conj(vb, vc)
        if op == Op.AND:   # FALSE wins over NULL
            fb = conj(vb, f"({self.r(b)} == 0)")
            fc = conj(vc, f"({self.r(c)} == 0)")
            f = self.tmp(pc, "f")
            self.emit(f"{f} = {fb} | {fc}")
            self.set_r(a, f"np.int64(not {f})" if both == TRUE else f"np.int64({both} & (not {f}))")
            self.set_v(a, TRUE if both == TRUE else f"{f} | {both}")
        else:              # TRUE wins over NULL
            tb = conj(vb, f"({self.r(b)} != 0)")
            tc = conj(vc, f"({self.r(c)} != 0)")
            t = self.tmp(pc, "t")
            self.emit(f"{t} = {tb} | {tc}")
            self.set_r(a, f"np.int64({t})")
            self.set_v(a, TRUE if both == TRUE else f"{t} | {both}")

    def coalesce(self, a: int, b: int, c: int) -> None:
        vb = self.v(b)
        if vb == TRUE:
            self.set_r(a, self.r(b))
            self.set_v(a, TRUE)
            return
        static_c = self.v(c) == TRUE
        self.emit(f"if {vb}:")
        self.set_r(a, self.r(b), 1)
        self.emit("else:")
        self.set_r(a, self.r(c), 1)
        if static_c:
            self.set_v(a, TRUE)
        else:
            self.set_v(a, f"{vb} | {self.v(c)}")

    def select(self, a: int, b: int, c: int) -> None:
        fire = conj(self.v(b), f"({self.r(b)} != 0)")
        keep_static = a in self.static and self.v(c) == TRUE
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
        self.emit(f"{key} = {self.r(b) if vb == TRUE else f'{self.r(b)} if {vb} else {null_entry}'}")
        self.set_r(a, value)
        self.set_v(a, valid)

    def jump_test(self, op: Op, a: int) -> str:
        va, ra = self.v(a), self.r(a)
        if op == Op.JALLF:
            return conj(va, f"({ra} == 0)")
        if op == Op.JALLT:
            return conj(va, f"({ra} != 0)")
        return f"not {conj(va, f'({ra} != 0)')}"        # JNONET

    def verdict(self, a: int, last: bool) -> None:
        # One recording site per rule, counters in memory: few multiply-assigned
        # variables, which is what numba's compile time grows with.
        k, q = self.k, self.rule_id
        va, ra = self.v(a), self.r(a)
        if va == TRUE:
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

