"""The optimizer's pure-Python twin: the oracle for native/optimizer.c.

Same validation, same passes in the same order, same fold semantics, written plainly
so that a reader can check it against native/opcodes.def. For every program the
result (code, constants, removed counts, rounds, verdict) is byte-identical to
:class:`batchaot.native.Optimizer`; tests/test_optimizer_fuzz.py holds us to that.
Opcodes are referred to by name, and what they are (jumps, foldable, strict about
NULL) is asked of the opcode table (compiler/opcodes.py), never of the execution layer;
only the semantics of single opcodes are written out here.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .. import native
from ..native import ErrorCode, InvalidProgram, OptimizeResult
from .opcodes import (BINARY, COND_JUMPS, FOLDABLE, JUMPS, KINDS, READS_A, STRICT, TABLE,
                      TERMINATORS, WRITES_A, Op)

__all__ = ["optimize", "validate", "PASSES"]

# --------------------------------------------------------------- opcode classes
# (from the table: see compiler/opcodes.py)
#   JUMPS        B is a jump target; COND_JUMPS may fall through, JMP does not
#   TERMINATORS  never fall through (JMP, RET): the end of a block
#   READS_A      register A is an input (SELECT's unchanged rows, conditional jumps, RET)
#   WRITES_A     register A is the destination (SELECT's too)
#   FOLDABLE     functions of their register inputs alone (not LOAD, LUT, SELECT)
#   STRICT       a NULL input makes a NULL result

# ------------------------------------------------------------------- validation

_OPERAND_ERRORS = {"R": ErrorCode.BAD_REGISTER, "K": ErrorCode.BAD_CONSTANT,
                   "C": ErrorCode.BAD_COLUMN, "L": ErrorCode.BAD_LUT, "J": ErrorCode.BAD_JUMP}


def _operand_ok(arrays: native.ProgramArrays, pc: int, kind: str, x: int) -> bool:
    bound = {"R": arrays.nregs, "K": len(arrays.kval), "C": arrays.ncols, "L": arrays.nluts}
    if kind in bound:
        return 0 <= x < bound[kind]
    if kind == "J":
        return pc < x < len(arrays.code)
    return kind == "N" or x == 0


def _check(arrays: native.ProgramArrays) -> None:
    """Raises InvalidProgram with the error C would report, at the same pc."""
    code = arrays.code.tolist()
    if not code:
        raise InvalidProgram(ErrorCode.BAD_ARGUMENT)
    for pc, (op, *operands) in enumerate(code):
        if not 0 <= op < len(TABLE):
            raise InvalidProgram(ErrorCode.BAD_OPCODE, pc)
        for kind, x in zip(KINDS[op], operands):
            if not _operand_ok(arrays, pc, kind, x):
                raise InvalidProgram(_OPERAND_ERRORS.get(kind, ErrorCode.NONZERO_UNUSED), pc)
    if code[-1][0] != Op.RET:
        raise InvalidProgram(ErrorCode.MISSING_RET, len(code) - 1)


def validate(code, kval, kvalid, nregs: int, ncols: int, nluts: int) -> None:
    """Raises InvalidProgram exactly where :meth:`native.Optimizer.validate` does."""
    _check(native.program_arrays(code, kval, kvalid, nregs, ncols, nluts))


# ---------------------------------------------------------------- scalar values

# A register row: (valid, 64-bit word as a signed int). A NULL's word is 0.
Value = tuple[bool, int]
NULL: Value = (False, 0)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
# Every NaN result is this one (NaN payloads are not observable in SQL).
_CANONICAL_NAN = 0x7FF8000000000000


def _wrap(x: int) -> Value:
    x &= (1 << 64) - 1
    return True, x - (1 << 64) if x >> 63 else x


def _checked(x: int) -> Value:
    """Integer arithmetic's exact result, NULL where it leaves int64 (DuckDB's TRY)."""
    return (True, x) if _INT64_MIN <= x <= _INT64_MAX else NULL


# NARROW_I's immediate (enum ba_int, numbers from C): the range a value must fit.
_lib = native.lib
_INT_RANGES: dict[int, tuple[int, int]] = {
    _lib.BA_INT_I64: (_INT64_MIN, _INT64_MAX),
    _lib.BA_INT_I8: (-(1 << 7), (1 << 7) - 1),
    _lib.BA_INT_I16: (-(1 << 15), (1 << 15) - 1),
    _lib.BA_INT_I32: (-(1 << 31), (1 << 31) - 1),
    _lib.BA_INT_U8: (0, (1 << 8) - 1),
    _lib.BA_INT_U16: (0, (1 << 16) - 1),
    _lib.BA_INT_U32: (0, (1 << 32) - 1),
    _lib.BA_INT_U64: (0, _INT64_MAX),      # an int64 register never exceeds 2^63 - 1
}
_INT_I64 = _lib.BA_INT_I64


def _narrow_int(x: int, int_type: int) -> Value | None:
    """NARROW_I; None for a type enum ba_int does not name (not folded)."""
    if int_type not in _INT_RANGES:
        return None
    lo, hi = _INT_RANGES[int_type]
    return (True, x) if lo <= x <= hi else NULL


def _bool(b: bool) -> Value:
    return True, int(b)


def _as_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _float(d: float) -> Value:
    if math.isnan(d):
        return True, _CANONICAL_NAN
    return True, struct.unpack("<q", struct.pack("<d", d))[0]


def _is_true(v: Value) -> bool:
    return v[0] and v[1] != 0


def _is_false(v: Value) -> bool:
    return v[0] and v[1] == 0


def _compare(x: float | int, y: float | int) -> int:
    return (x > y) - (x < y)


def _compare_float(x: float, y: float) -> int:
    """DuckDB's order: NaN equals NaN and sorts above every number; -0 equals 0."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) - math.isnan(y)
    return _compare(x, y)


def _tdiv(x: int, y: int) -> int:
    """C's integer division: truncates toward zero."""
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def _round_int(x: int, digits: int) -> Value | None:
    """ROUND_I; None where the result leaves int64 (not folded: ROUND_I's row does not
    say, the VM decides), as native/optimizer.c."""
    if digits >= 0:
        return True, x
    if digits < -18:
        return None
    m = 10 ** -digits
    q = _tdiv(x, m)
    if 2 * abs(x - q * m) >= m:
        q += -1 if x < 0 else 1
    return (True, q * m) if _INT64_MIN <= q * m <= _INT64_MAX else None


def _product_error(a: float, b: float, p: float) -> float:
    """e with a * b == p + e exactly (Dekker's TwoProduct), as native/optimizer.c."""
    split = 134217729.0
    t = split * a
    ah = t - (t - a)
    al = a - ah
    t = split * b
    bh = t - (t - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _pow10(n: int) -> float:
    """C's pow(10.0, n): +inf rather than an exception when it overflows."""
    try:
        return math.pow(10.0, n)
    except OverflowError:
        return math.inf


def _round_float(x: float, digits: int) -> float:
    """ROUND_F as DuckDB: the exact value of x rounded half away from zero to `digits` decimals."""
    if digits >= 0:
        m = _pow10(digits)
        y = x * m
        if not math.isfinite(y):
            return x
        a = abs(y)
        t = math.floor(a)
        frac = a - t
        if frac > 0.5 or (frac == 0.5 and _product_error(x, m, y) * (1.0 if y > 0 else -1.0) >= 0.0):
            t += 1.0
        return math.copysign(float(t), y) / m
    m = _pow10(-digits)
    if not math.isfinite(x):
        return x
    a = abs(x)
    rem = math.fmod(a, m)
    t = a - rem
    if 2.0 * rem >= m:
        t += m
    return math.copysign(t, x)


def _float_to_int(x: float) -> Value:
    """F2I: nearest integer, ties to even; NULL for NaN and outside int64."""
    if math.isnan(x) or math.isinf(x):
        return NULL
    r = round(x)
    return (True, r) if _INT64_MIN <= r <= _INT64_MAX else NULL


def _ieee(f: Callable, x: float, y: float) -> float:
    """Division and fmod with IEEE results (Python would raise on a zero divisor)."""
    with np.errstate(all="ignore"):
        return float(f(np.float64(x), np.float64(y)))


_INT_OPS: dict[int, Callable[[int, int], Value]] = {
    Op.ADD_I: lambda x, y: _checked(x + y),
    Op.SUB_I: lambda x, y: _checked(x - y),
    Op.MUL_I: lambda x, y: _checked(x * y),
    Op.IDIV_I: lambda x, y: NULL if y == 0 else _checked(_tdiv(x, y)),   # MIN // -1 overflows
    Op.MOD_I: lambda x, y: NULL if y == 0 else _wrap(x - _tdiv(x, y) * y),
    Op.NEG_I: lambda x, y: _checked(-x),
    Op.ABS_I: lambda x, y: _checked(abs(x)),
    Op.I2F: lambda x, y: _float(float(x)),
    Op.NOT: lambda x, y: _bool(x == 0),
    Op.EQ_I: lambda x, y: _bool(x == y),
    Op.NE_I: lambda x, y: _bool(x != y),
    Op.LT_I: lambda x, y: _bool(x < y),
    Op.LE_I: lambda x, y: _bool(x <= y),
    Op.GT_I: lambda x, y: _bool(x > y),
    Op.GE_I: lambda x, y: _bool(x >= y),
}

def _single(x: float) -> float:
    """x rounded to the nearest float32 (+-inf past its range, without numpy's warning)."""
    with np.errstate(over="ignore"):
        return float(np.float32(x))


_FLOAT_OPS: dict[int, Callable[[float, float], Value]] = {
    Op.ADD_F: lambda x, y: _float(x + y),
    Op.SUB_F: lambda x, y: _float(x - y),
    Op.MUL_F: lambda x, y: _float(x * y),
    Op.DIV_F: lambda x, y: _float(_ieee(np.divide, x, y)),
    Op.MOD_F: lambda x, y: _float(_ieee(np.fmod, x, y)),
    Op.NEG_F: lambda x, y: _float(-x),
    Op.ABS_F: lambda x, y: _float(math.fabs(x)),
    Op.F2S: lambda x, y: _float(_single(x)),
    Op.F2I: lambda x, y: _float_to_int(x),
    Op.EQ_F: lambda x, y: _bool(_compare_float(x, y) == 0),
    Op.NE_F: lambda x, y: _bool(_compare_float(x, y) != 0),
    Op.LT_F: lambda x, y: _bool(_compare_float(x, y) < 0),
    Op.LE_F: lambda x, y: _bool(_compare_float(x, y) <= 0),
    Op.GT_F: lambda x, y: _bool(_compare_float(x, y) > 0),
    Op.GE_F: lambda x, y: _bool(_compare_float(x, y) >= 0),
}


def _evaluate(op: int, b: Value, c: Value, imm: int) -> Value | None:
    """A foldable opcode on constant inputs (c is NULL for unary ones); None = do not fold."""
    if op in STRICT:
        return NULL if not b[0] or (op in BINARY and not c[0]) else _evaluate_valid(op, b[1], c[1], imm)
    if op == Op.AND:
        return _bool(False) if _is_false(b) or _is_false(c) else _bool(True) if b[0] and c[0] else NULL
    if op == Op.OR:
        return _bool(True) if _is_true(b) or _is_true(c) else _bool(False) if b[0] and c[0] else NULL
    if op == Op.ISNULL:
        return _bool(not b[0])
    if op == Op.NOTNULL:
        return _bool(b[0])
    if op == Op.COALESCE:
        return b if b[0] else c
    return None


def _evaluate_valid(op: int, x: int, y: int, imm: int) -> Value | None:
    """A strict opcode on valid inputs' words x, y; None = do not fold."""
    if op == Op.MOV:
        return True, x
    if op == Op.ROUND_I:
        return _round_int(x, imm)
    if op == Op.NARROW_I:
        return _narrow_int(x, imm)
    if op == Op.ROUND_F:
        return _float(_round_float(_as_float(x), imm))
    if op in _INT_OPS:
        return _INT_OPS[op](x, y)
    if op in _FLOAT_OPS:
        return _FLOAT_OPS[op](_as_float(x), _as_float(y))
    return None


# --------------------------------------------------------------------- program

@dataclass
class _Program:
    code: list[list[int]]       # rows [op, a, b, c], rewritten in place by the passes
    kval: list[int]
    kvalid: list[int]
    kcap: int


def _constant(prog: _Program, k: int) -> Value:
    return (True, prog.kval[k]) if prog.kvalid[k] else NULL


def _intern_constant(prog: _Program, v: Value) -> int | None:
    """Index of a constant equal to v (all NULLs are equal), appended if new; None if full."""
    for k, (word, valid) in enumerate(zip(prog.kval, prog.kvalid)):
        if bool(valid) == v[0] and (not v[0] or word == v[1]):
            return k
    if len(prog.kval) >= prog.kcap:
        return None
    prog.kval.append(v[1])
    prog.kvalid.append(int(v[0]))
    return len(prog.kval) - 1


def _jump_targets(code: list[list[int]]) -> set[int]:
    return {ins[2] for ins in code if ins[0] in JUMPS}


def _delete_marked(prog: _Program, dead: list[bool]) -> int:
    """Deletes the marked rows; a jump to a deleted row lands on the next kept one."""
    newpc, kept = [], 0
    for d in dead:
        newpc.append(kept)    # = new index of the next kept instruction
        kept += not d
    code = []
    for ins, d in zip(prog.code, dead):
        if not d:
            code.append([ins[0], ins[1], newpc[ins[2]], ins[3]] if ins[0] in JUMPS else ins)
    removed = len(prog.code) - len(code)
    prog.code = code
    return removed


def _liveness(code: list[list[int]], query: list[int] | None = None,
              prune: bool = False) -> tuple[list[bool], list[bool]]:
    """Backward liveness in one sweep (jumps only go forward).

    Returns (live_after, dead): live_after[pc] tells whether register query[pc] is live
    after pc; with `prune`, writers whose destination is not live are dead and treated
    as absent, so whole dead chains go at once.
    """
    targets = _jump_targets(code)
    at_target: dict[int, frozenset[int]] = {}
    live: set[int] = set()
    live_after, dead = [False] * len(code), [False] * len(code)
    for pc in range(len(code) - 1, -1, -1):
        op, a, b, c = code[pc]
        if op in TERMINATORS:      # the next instruction is not a successor
            live = set()
        if op in JUMPS:
            live |= at_target[b]
        if query is not None and query[pc] >= 0:
            live_after[pc] = query[pc] in live
        if prune and op in WRITES_A and a not in live:
            dead[pc] = True
        else:
            if op in WRITES_A:
                live.discard(a)
            live |= {a} if op in READS_A else set()     # after: SELECT writes and reads A
            live |= {r for kind, r in zip(KINDS[op][1:], (b, c)) if kind == "R"}
        if pc in targets:
            at_target[pc] = frozenset(live)
    return live_after, dead


# ---------------------------------------------------------------------- passes
# Each pass returns (instructions removed, whether anything changed).

PassResult = tuple[int, bool]


def remove_nops(prog: _Program) -> PassResult:
    dead = [ins[0] == Op.NOP for ins in prog.code]
    return _delete_marked(prog, dead), False


_KEEP, _REWRITTEN, _DELETE = "keep", "rewritten", "delete"


def _load_constant(prog: _Program, ins: list[int], v: Value) -> str:
    k = _intern_constant(prog, v)
    if k is None:
        return _KEEP
    ins[:] = [Op.LOADK, ins[1], k, 0]
    return _REWRITTEN


def _move(ins: list[int], src: int) -> str:
    ins[:] = [Op.MOV, ins[1], src, 0]
    return _REWRITTEN


def _fold_jump(known: dict[int, Value], ins: list[int]) -> str:
    v = known.get(ins[1])
    if v is None:
        return _KEEP
    taken = {Op.JALLF: _is_false(v), Op.JALLT: _is_true(v)}.get(ins[0], not _is_true(v))
    if not taken:
        return _DELETE
    ins[:] = [Op.JMP, 0, ins[2], 0]
    return _REWRITTEN


def _fold_select(known: dict[int, Value], ins: list[int]) -> str:
    cond = known.get(ins[2])
    if cond is None:
        return _KEEP
    return _move(ins, ins[3]) if _is_true(cond) else _DELETE


def _simplify(prog: _Program, ins: list[int], b: Value | None, c: Value | None) -> str:
    """Identities with one known input (b or c, the other is None)."""
    op = ins[0]
    known, other = (b, ins[3]) if b is not None else (c, ins[2])
    if op in STRICT:      # arithmetic and comparisons: a NULL input makes a NULL
        return _KEEP if known[0] else _load_constant(prog, ins, NULL)
    if op == Op.AND:
        return (_load_constant(prog, ins, _bool(False)) if _is_false(known)
                else _move(ins, other) if _is_true(known) else _KEEP)
    if op == Op.OR:
        return (_load_constant(prog, ins, _bool(True)) if _is_true(known)
                else _move(ins, other) if _is_false(known) else _KEEP)
    if op == Op.COALESCE:
        if b is None:
            return _KEEP
        return _load_constant(prog, ins, b) if b[0] else _move(ins, ins[3])
    return _KEEP


def _fold_insn(prog: _Program, known: dict[int, Value], ins: list[int]) -> str:
    op = ins[0]
    if op in COND_JUMPS:
        return _fold_jump(known, ins)
    if op == Op.SELECT:
        return _fold_select(known, ins)
    if op not in FOLDABLE:
        return _KEEP
    binary = op in BINARY
    b = known.get(ins[2])
    c = known.get(ins[3]) if binary else None
    if b is not None and (c is not None or not binary):
        out = _evaluate(op, b, c if c is not None else NULL, ins[3])
        return _KEEP if out is None else _load_constant(prog, ins, out)
    if b is not None or c is not None:
        return _simplify(prog, ins, b, c)
    if op == Op.NARROW_I and ins[3] == _INT_I64:
        return _move(ins, ins[2])     # every int64 fits
    return _KEEP


def _learn(prog: _Program, known: dict[int, Value], ins: list[int]) -> None:
    """What executing `ins` teaches about its destination."""
    op, a, b = ins[0], ins[1], ins[2]
    if op == Op.LOADK:
        known[a] = _constant(prog, b)
    elif op == Op.MOV and b in known:
        known[a] = known[b]
    elif op in WRITES_A:
        known.pop(a, None)


def fold_constants(prog: _Program) -> PassResult:
    """Registers defined by LOADK are known within a block (forgotten at jump targets
    and after JMP/RET); ops on known inputs become LOADK."""
    targets = _jump_targets(prog.code)
    known: dict[int, Value] = {}
    dead, changed = [False] * len(prog.code), False
    for pc, ins in enumerate(prog.code):
        if pc in targets:
            known.clear()
        result = _fold_insn(prog, known, ins)
        changed |= result != _KEEP
        if result == _DELETE:
            dead[pc] = True
            continue
        _learn(prog, known, ins)
        if ins[0] in TERMINATORS:
            known.clear()
    return _delete_marked(prog, dead), changed


def fuse_load_move(prog: _Program) -> PassResult:
    """LOAD+STORE -> MOV fusion in register terms: `t := f(...); MOV d, t` with t dead
    afterwards and the MOV not a jump target becomes `d := f(...)`."""
    code = prog.code
    t_live, _ = _liveness(code, [ins[2] if ins[0] == Op.MOV else -1 for ins in code])
    targets = _jump_targets(code)
    dead, changed = [False] * len(code), False
    pc = 0
    while pc + 1 < len(code):
        prod, mov = code[pc], code[pc + 1]
        if (mov[0] == Op.MOV and pc + 1 not in targets and not t_live[pc + 1]
                and prod[0] in WRITES_A and prod[0] not in READS_A
                and prod[1] == mov[2] and mov[1] != mov[2]):
            prod[1] = mov[1]
            dead[pc + 1] = changed = True
            pc += 1           # the MOV is gone: it cannot be the next producer
        pc += 1
    return _delete_marked(prog, dead), changed


def remove_redundant_moves(prog: _Program) -> PassResult:
    """MOV a, a, and MOV a, b while a and b already hold the same value (per block)."""
    targets = _jump_targets(prog.code)
    pairs: set[frozenset[int]] = set()
    dead = [False] * len(prog.code)
    for pc, (op, a, b, _c) in enumerate(prog.code):
        if pc in targets:
            pairs.clear()
        if op == Op.MOV and (a == b or frozenset((a, b)) in pairs):
            dead[pc] = True
            continue
        if op in WRITES_A:
            pairs = {p for p in pairs if a not in p}
        if op == Op.MOV:
            pairs.add(frozenset((a, b)))
        if op in TERMINATORS:
            pairs.clear()
    return _delete_marked(prog, dead), False


def _final_target(code: list[list[int]], jump: list[int]) -> int:
    """Through unconditional JMPs, and through the same test of the same register."""
    t = jump[2]
    while True:
        at = code[t]
        same_test = jump[0] in COND_JUMPS and at[0] == jump[0] and at[1] == jump[1]
        if at[0] != Op.JMP and not same_test:
            return t
        t = at[2]


def thread_jumps(prog: _Program) -> PassResult:
    dead, changed = [False] * len(prog.code), False
    for pc, ins in enumerate(prog.code):
        if ins[0] not in JUMPS:
            continue
        t = _final_target(prog.code, ins)
        changed |= t != ins[2]
        ins[2] = t
        dead[pc] = t == pc + 1        # a jump to the next instruction does nothing
    return _delete_marked(prog, dead), changed


def remove_unreachable(prog: _Program) -> PassResult:
    reached = [False] * len(prog.code)
    reached[0] = True
    for pc, (op, _a, b, _c) in enumerate(prog.code):
        if not reached[pc]:
            continue
        if op not in TERMINATORS and pc + 1 < len(prog.code):
            reached[pc + 1] = True
        if op in JUMPS:
            reached[b] = True
    return _delete_marked(prog, [not r for r in reached]), False


def remove_dead_code(prog: _Program) -> PassResult:
    _, dead = _liveness(prog.code, prune=True)
    return _delete_marked(prog, dead), False


PASSES: tuple[Callable[[_Program], PassResult], ...] = (
    remove_nops, fold_constants, fuse_load_move, remove_redundant_moves,
    thread_jumps, remove_unreachable, remove_dead_code,
)
if tuple(p.__name__ for p in PASSES) != native.PASS_NAMES:
    raise ImportError(f"twin passes {[p.__name__ for p in PASSES]} != C passes {native.PASS_NAMES}")


# ---------------------------------------------------------------------- driver

def _verdict(prog: _Program) -> str:
    """Zero-tick: no jump before the first RET, whose register was last set by LOADK."""
    code = prog.code
    ret = 0
    while code[ret][0] != Op.RET:
        if code[ret][0] in JUMPS:
            return native.VERDICT_UNKNOWN
        ret += 1
    r = code[ret][1]
    writer = next((ins for ins in reversed(code[:ret]) if ins[0] in WRITES_A and ins[1] == r), None)
    if writer is None or writer[0] != Op.LOADK:
        return native.VERDICT_UNKNOWN
    valid, word = _constant(prog, writer[2])
    return native.VERDICT_NULL if not valid else native.VERDICT_TRUE if word else native.VERDICT_FALSE


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def optimize(code, kval, kvalid, nregs: int, ncols: int, nluts: int,
             passes: Iterable[str] | None = None) -> OptimizeResult:
    """Same contract and result as :meth:`native.Optimizer.optimize`."""
    mask = native.pass_mask(passes)
    arrays = native.program_arrays(code, kval, kvalid, nregs, ncols, nluts)
    _check(arrays)
    prog = _Program(code=arrays.code.tolist(), kval=arrays.kval.tolist(),
                    kvalid=arrays.kvalid.tolist(),
                    kcap=native.constant_capacity(len(arrays.kval), len(arrays.code)))
    before = len(prog.code)
    removed = [0] * len(PASSES)
    rounds, changed = 0, True
    while changed and rounds < native.MAX_ROUNDS:
        changed, rounds = False, rounds + 1
        for i, run in enumerate(PASSES):
            if mask >> i & 1:
                n, rewrote = run(prog)
                removed[i] += n
                changed |= rewrote or n > 0
    return OptimizeResult(
        code=_frozen(np.array(prog.code, dtype=np.int32).reshape(-1, 4)),
        kval=_frozen(np.array(prog.kval, dtype=np.int64)),
        kvalid=_frozen(np.array(prog.kvalid, dtype=np.uint8)),
        removed=dict(zip(native.PASS_NAMES, removed)),
        before=before, after=len(prog.code), rounds=rounds, verdict=_verdict(prog),
    )
