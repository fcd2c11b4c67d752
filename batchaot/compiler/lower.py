"""Typed IR → register bytecode, naively: a fresh register per value.

Cleaning up (moves, constants, dead code, jumps) is the optimizer's job, so this
stays a direct, readable translation. Short-circuit AND/OR works per block of
rows: after each operand a conditional jump skips the rest of the chain when the
whole block is already decided (Lua's lcode.c keeps such jump lists; so do we,
patched in one place: :meth:`Emitter.patch`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from .ir import And, Case, Col, Lit, Lookup, Node, Op as IROp, Or, children, thaw
from .opcodes import KINDS, Op, typed
from .types import Kind, Type


def cost(node: Node) -> int:
    """Rough work per row: constants are free, string lookups dearer than arithmetic."""
    if isinstance(node, Lit):
        return 0
    own = 3 if isinstance(node, Lookup) else 1
    return own + sum(cost(c) for c in children(node))


@dataclass
class Lowered:
    code: np.ndarray                 # (n, 4) int32: op, a, b, c
    kval: np.ndarray                 # int64 words
    kvalid: np.ndarray               # uint8
    nregs: int
    luts: list[tuple[int, list, str]]  # (column index, SExpr, result type name)


def const_word(value, typ: Type) -> tuple[int, int]:
    """A constant as (64-bit word, valid flag); floats travel as their IEEE bits."""
    if value is None:
        return 0, 0
    if typ.physical == "f":
        return struct.unpack("<q", struct.pack("<d", float(value)))[0], 1
    value = int(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(value)
    return value, 1


@dataclass
class Emitter:
    code: list[list[int]] = field(default_factory=list)
    consts: dict[tuple[int, int], int] = field(default_factory=dict)
    luts: list[tuple[int, list, str]] = field(default_factory=list)
    nregs: int = 0
    memo: list[dict] = field(default_factory=lambda: [{}])

    # -- primitives -----------------------------------------------------------
    def reg(self) -> int:
        self.nregs += 1
        return self.nregs - 1

    def emit(self, op: Op, a: int = 0, b: int = 0, c: int = 0) -> int:
        self.code.append([int(op), a, b, c])
        return len(self.code) - 1

    def const(self, value, typ: Type) -> int:
        return self.consts.setdefault(const_word(value, typ), len(self.consts))

    def jump(self, op: Op, reg: int) -> int:
        """Emit a forward jump whose target is patched later."""
        return self.emit(op, reg, -1)

    def patch(self, jumps: list[int], target: int | None = None) -> None:
        """Point every jump in `jumps` at `target` (default: the next instruction)."""
        here = len(self.code) if target is None else target
        for pc in jumps:
            self.code[pc][2] = here     # jump targets live in operand B

    # Values computed before a conditional jump are reusable after it; values computed
    # in a region that a jump may skip are forgotten when the region closes.
    def open_region(self) -> None:
        self.memo.append({})

    def close_region(self) -> None:
        self.memo.pop()

    def remembered(self, node: Node) -> int | None:
        for scope in reversed(self.memo):
            if node in scope:
                return scope[node]
        return None

    # -- expressions ------------------------------------------------------------
    def value(self, node: Node) -> int:
        hit = self.remembered(node)
        if hit is not None:
            return hit
        r = self._lower(node)
        self.memo[-1][node] = r
        return r

    def _lower(self, node: Node) -> int:
        if isinstance(node, Col):
            r = self.reg()
            self.emit(Op.LOAD, r, node.index)
            return r
        if isinstance(node, Lit):
            r = self.reg()
            self.emit(Op.LOADK, r, self.const(node.value, node.type))
            return r
        if isinstance(node, (And, Or)):
            return self.short_circuit(node)
        if isinstance(node, Case):
            return self.case(node)
        if isinstance(node, Lookup):
            codes = self.value(node.column)
            r = self.reg()
            self.luts.append((node.column.index, thaw(node.expr), str(node.type)))
            self.emit(Op.LUT, r, codes, len(self.luts) - 1)
            return r
        return self.op(node)

    def op(self, node: IROp) -> int:
        args = [self.value(a) for a in node.args]
        r = self.reg()
        opcode = typed(node.op, node.args[0].type.physical)    # the table knows every family
        if KINDS[opcode][2] == "N":       # an immediate: round's digits, narrow's integer type
            self.emit(opcode, r, args[0], node.imm)
        else:
            self.emit(opcode, r, *args)
        return r

    def short_circuit(self, node: And | Or) -> int:
        """r := a0; [skip the rest if the block is decided]; r := r AND a1; ..."""
        is_and = isinstance(node, And)
        combine, skip = (Op.AND, Op.JALLF) if is_and else (Op.OR, Op.JALLT)
        # Cheapest operand first: it decides whole blocks soonest, and a constant operand
        # up front lets the optimizer settle the chain at compile time.
        args = sorted(node.args, key=cost)
        r = self.reg()
        exits: list[int] = []
        self.emit(Op.MOV, r, self.value(args[0]))
        self.open_region()
        for arg in args[1:]:
            exits.append(self.jump(skip, r))
            self.emit(combine, r, r, self.value(arg))
        self.close_region()
        self.patch(exits)
        return r

    def case(self, node: Case) -> int:
        """r := ELSE; then, last WHEN first, r := THEN where WHEN is TRUE (first match wins)."""
        r = self.reg()
        self.emit(Op.MOV, r, self.value(node.default))
        for cond, then in reversed(node.whens):
            c = self.value(cond)
            self.open_region()
            skip = self.jump(Op.JNONET, c)
            self.emit(Op.SELECT, r, c, self.value(then))
            self.close_region()
            self.patch([skip])
        return r


def lower(root: Node) -> Lowered:
    em = Emitter()
    em.emit(Op.RET, em.value(root))
    kval = np.zeros(len(em.consts), dtype=np.int64)
    kvalid = np.zeros(len(em.consts), dtype=np.uint8)
    for (word, valid), i in em.consts.items():
        kval[i], kvalid[i] = word, valid
    return Lowered(np.asarray(em.code, dtype=np.int32).reshape(-1, 4), kval, kvalid,
                   max(em.nregs, 1), em.luts)
