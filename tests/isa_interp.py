"""A tiny row-wise interpreter of native/opcodes.def, for tests only.

Written from the opcode comments, independently of the optimizers and of the engine,
so that it can check that an optimized program computes what the original computes.
It reads only names, numbers and operand kinds from the opcode table: each opcode's
meaning is spelled out here (tests/test_opcode_table.py checks the table's flags and
symbols against it). The whole data set is one block: jumps test every row. A
register is a pair of arrays (int64 words, bool validity); registers start NULL.
"""
from __future__ import annotations

import math
import struct
from decimal import ROUND_HALF_UP, Decimal, localcontext
from dataclasses import dataclass

import numpy as np

from batchaot import native
from batchaot.compiler.opcodes import KINDS, Op

OP = {op.name: int(op) for op in Op}
NAME = {code: name for name, code in OP.items()}
# The opcodes run() carries out itself (control flow, inputs, SELECT's old rows);
# every other opcode is _scalar(): one row of R[A] from one row of R[B] and R[C].
NOT_SCALAR = frozenset({"NOP", "RET", "JMP", "JALLF", "JALLT", "JNONET", "LOAD", "LOADK", "SELECT", "LUT"})
SCALAR = frozenset(OP) - NOT_SCALAR
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _to_float32(x: float) -> float:
    """x rounded to the nearest float32; struct refuses a value that rounds past its range."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def f2b(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.int64)[0])


def b2f(w: int) -> float:
    return float(np.array([w], dtype=np.int64).view(np.float64)[0])


def wrap(x: int) -> int:
    return (x + (1 << 63)) % (1 << 64) - (1 << 63)


def exact(x: int) -> "Cell":
    """An integer result: NULL where it does not fit int64 (overflow never wraps)."""
    return (True, x) if INT64_MIN <= x <= INT64_MAX else NULL


# NARROW_I's immediate: enum ba_int's values (from C) -> the numpy type to fit.
_lib = native.lib
NARROW_TYPES = {_lib.BA_INT_I64: np.iinfo(np.int64), _lib.BA_INT_I8: np.iinfo(np.int8),
                _lib.BA_INT_I16: np.iinfo(np.int16), _lib.BA_INT_I32: np.iinfo(np.int32),
                _lib.BA_INT_U8: np.iinfo(np.uint8), _lib.BA_INT_U16: np.iinfo(np.uint16),
                _lib.BA_INT_U32: np.iinfo(np.uint32), _lib.BA_INT_U64: np.iinfo(np.uint64)}


@dataclass
class Column:
    words: np.ndarray   # int64 (float64 bits for float columns)
    valid: np.ndarray   # bool


Cell = tuple[bool, int]      # (valid, word) for one row
NULL: Cell = (False, 0)


def _round_decimal(x: float, digits: int) -> float:
    """ROUND_F's meaning, computed exactly: x's binary value to `digits` decimals, half away."""
    if abs(digits) > 22:   # 10^d is no longer exact: the definition is the algorithm itself
        from batchaot.compiler.twin import _round_float
        return _round_float(x, digits)
    m = 10.0 ** abs(digits)
    if not math.isfinite(x) or (digits >= 0 and not math.isfinite(x * m)):
        return x
    if digits >= 0 and abs(x * m) >= 2.0 ** 52:
        return (x * m) / m   # no fraction left to round (DuckDB agrees)
    with localcontext(prec=1200):
        q = Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if digits >= 0:  # the result is (integer) / 10^d, correctly rounded
        return math.copysign(float(q.scaleb(digits)) / 10.0 ** digits, x)
    return math.copysign(float(q), x)


def _trunc_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def _cmp_f(x: float, y: float) -> int:
    nx, ny = math.isnan(x), math.isnan(y)
    if nx or ny:
        return int(nx) - int(ny)
    return (x > y) - (x < y)


def _fl(x: float) -> Cell:
    return True, f2b(x)


def _scalar(name: str, b: Cell, c: Cell, imm: int) -> Cell:
    """One row of one opcode (registers B, C, immediate C)."""
    tb, tc = b[0] and b[1] != 0, c[0] and c[1] != 0
    fb, fc = b[0] and b[1] == 0, c[0] and c[1] == 0
    if name == "MOV":
        return b
    if name == "NOT":
        return (True, int(b[1] == 0)) if b[0] else NULL
    if name == "AND":
        return (True, 0) if fb or fc else (True, 1) if b[0] and c[0] else NULL
    if name == "OR":
        return (True, 1) if tb or tc else (True, 0) if b[0] and c[0] else NULL
    if name == "ISNULL":
        return True, int(not b[0])
    if name == "NOTNULL":
        return True, int(b[0])
    if name == "COALESCE":
        return b if b[0] else c
    if not b[0] or (KINDS[OP[name]][2] == "R" and not c[0]):
        return NULL
    x, y = b[1], c[1]
    fx, fy = b2f(x), b2f(y)
    with np.errstate(all="ignore"):
        match name:
            case "ADD_I": return exact(x + y)
            case "SUB_I": return exact(x - y)
            case "MUL_I": return exact(x * y)
            case "IDIV_I": return NULL if y == 0 else exact(_trunc_div(x, y))
            case "MOD_I": return NULL if y == 0 else exact(x - _trunc_div(x, y) * y)
            case "NEG_I": return exact(-x)
            case "ABS_I": return exact(abs(x))
            case "NARROW_I":    # a type enum ba_int does not name: nothing fits
                t = NARROW_TYPES.get(imm)
                return (True, x) if t is not None and t.min <= x <= t.max else NULL
            case "ROUND_I":
                if imm >= 0:
                    return True, x
                m = 10 ** -imm
                q = _trunc_div(x, m)
                if 2 * abs(x - q * m) >= m:
                    q += 1 if x >= 0 else -1
                return exact(q * m)     # the general rule: overflow is NULL
            case "ADD_F": return _fl(fx + fy)
            case "SUB_F": return _fl(fx - fy)
            case "MUL_F": return _fl(fx * fy)
            case "DIV_F": return _fl(float(np.float64(fx) / np.float64(fy)))
            case "MOD_F": return _fl(float(np.fmod(np.float64(fx), np.float64(fy))))
            case "NEG_F": return _fl(-fx)
            case "ABS_F": return _fl(abs(fx))
            case "ROUND_F":
                return _fl(_round_decimal(fx, imm))
            case "I2F": return _fl(float(x))
            case "F2S":                          # struct packs to float32, ties to even
                return _fl(_to_float32(fx))
            case "F2I":
                if not math.isfinite(fx):
                    return NULL
                r = round(fx)                    # Python rounds ties to even
                return (True, r) if INT64_MIN <= r <= INT64_MAX else NULL
            case "EQ_I": return True, int(x == y)
            case "NE_I": return True, int(x != y)
            case "LT_I": return True, int(x < y)
            case "LE_I": return True, int(x <= y)
            case "GT_I": return True, int(x > y)
            case "GE_I": return True, int(x >= y)
            case "EQ_F": return True, int(_cmp_f(fx, fy) == 0)
            case "NE_F": return True, int(_cmp_f(fx, fy) != 0)
            case "LT_F": return True, int(_cmp_f(fx, fy) < 0)
            case "LE_F": return True, int(_cmp_f(fx, fy) <= 0)
            case "GT_F": return True, int(_cmp_f(fx, fy) > 0)
            case "GE_F": return True, int(_cmp_f(fx, fy) >= 0)
    raise NotImplementedError(f"isa_interp: no semantics for {name}")


def run(code, kval, kvalid, nregs: int, columns: list[Column],
        luts: list[list[Cell]]) -> list[Cell]:
    """Runs a valid program on every row; returns the RET register per row."""
    nrows = len(columns[0].words) if columns else 1
    regs: list[list[Cell]] = [[NULL] * nrows for _ in range(nregs)]
    code = [tuple(int(v) for v in row) for row in np.asarray(code)]
    pc = 0
    while True:
        op, a, b, c = code[pc]
        name = NAME[op]
        pc += 1
        if name == "NOP":
            continue
        if name == "RET":
            return regs[a]
        if name == "JMP":
            pc = b
            continue
        if name in ("JALLF", "JALLT", "JNONET"):
            col = regs[a]
            if name == "JALLF":
                taken = all(v and w == 0 for v, w in col)
            elif name == "JALLT":
                taken = all(v and w != 0 for v, w in col)
            else:
                taken = not any(v and w != 0 for v, w in col)
            pc = b if taken else pc
            continue
        if name == "LOAD":
            col = columns[b]
            regs[a] = [(bool(v), int(w) if v else 0) for v, w in zip(col.valid, col.words)]
        elif name == "LOADK":
            cell = (bool(kvalid[b]), int(kval[b]) if kvalid[b] else 0)
            regs[a] = [cell] * nrows
        elif name == "SELECT":
            regs[a] = [new if cond[0] and cond[1] != 0 else old
                       for old, cond, new in zip(regs[a], regs[b], regs[c])]
        elif name == "LUT":
            table = luts[c]
            regs[a] = [table[w] if v and 0 <= w < len(table) - 1 else table[-1] for v, w in regs[b]]
        else:
            second = regs[c] if KINDS[op][2] == "R" else [NULL] * nrows
            regs[a] = [_scalar(name, x, y, c) for x, y in zip(regs[b], second)]
