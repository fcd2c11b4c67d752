"""The vectorized bytecode VM (numexpr style), compiled by Numba: just in time (cached on
disk), or ahead of time for small runs (engine/aot.py; the same function).

The VM walks a Program once per block of BLOCK rows; each instruction runs a tight
loop over the block. Registers are two 2-D scratch arrays (values, validity) that the
caller takes from its memory pool. Jumps test a whole block, so a conjunct that is
FALSE on every row of a block skips the rest of the chain for that block.

Opcode numbers are read from the compiled opcode table (compiler.opcodes) and
frozen into the kernel as constants; tests/test_vm.py runs every opcode against the
ISA reference interpreter.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ..compiler.opcodes import BINARY, DIVZERO, KINDS, OVERFLOW_SOURCES, WRITES_A, Op, mask
from .buffers import BLOCK
from .pointers import i64_at, u8_at

# Numba freezes module globals as compile-time constants: one per opcode, named as in
# native/opcodes.def (ADD_I, LT_F, RET, ...), made from the table here, never typed in.
globals().update({op.name: int(op) for op in Op})

# Where a program can overflow (an OVERFLOW opcode), run() tracks the overflow taint.
OVERFLOWS = mask(OVERFLOW_SOURCES)
# How a result's overflow taint follows its inputs' (run()): 0 the opcode sets it itself
# or writes no register from registers, 1 from R[B], 2 from R[B] and R[C].
_SETS_OWN_TAINT = OVERFLOW_SOURCES | DIVZERO | {Op.MOV, Op.SELECT}
TAINT_RULE = np.array([0 if op in _SETS_OWN_TAINT or op not in WRITES_A or KINDS[op][1] != "R"
                       else (2 if op in BINARY else 1) for op in Op], dtype=np.uint8)

_I64_MIN = -(2 ** 63)
_I64_MAX = 2 ** 63 - 1
_TWO63 = 9.223372036854775808e18


# -- scalar semantics shared by the VM (the optimizer folds with the same rules) -----

@njit(inline="always")
def round_half_away(x: float) -> float:
    """C's round(): half away from zero, exact for every double."""
    if x >= 0.0:
        t = np.floor(x)
        return t + 1.0 if x - t >= 0.5 else t
    t = np.ceil(x)
    return t - 1.0 if t - x >= 0.5 else t


@njit(inline="always")
def product_error(a: float, b: float, p: float) -> float:
    """e such that a * b == p + e exactly, for p = fl(a * b) (Dekker's TwoProduct)."""
    split = 134217729.0  # 2^27 + 1
    t = split * a
    ah = t - (t - a)
    al = a - ah
    t = split * b
    bh = t - (t - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(inline="always")
def round_digits(x: float, d: int) -> float:
    """DuckDB's round(double, d): the exact binary value rounded half away from zero."""
    if d >= 0:
        m = 10.0 ** d
        y = x * m
        if not math.isfinite(y):
            return x
        a = abs(y)
        t = np.floor(a)
        frac = a - t
        if frac > 0.5 or (frac == 0.5 and product_error(x, m, y) * (1.0 if y > 0 else -1.0) >= 0.0):
            t += 1.0
        return math.copysign(t, y) / m
    m = 10.0 ** (-d)
    if not math.isfinite(x):
        return x
    a = abs(x)
    rem = np.fmod(a, m)          # exact
    t = a - rem
    if 2.0 * rem >= m:
        t += m
    return math.copysign(t, x)


# Integer overflow gives NULL (DuckDB's TRY). numba emits signed arithmetic with LLVM's
# nsw flag, so an overflowing x + y is undefined, not wrapped: every check below tests
# the operands *before* computing, and callers compute only where the check passed.

@njit(inline="always")
def add_ok(x: int, y: int) -> bool:
    return (x <= _I64_MAX - y) if y > 0 else (x >= _I64_MIN - y)


@njit(inline="always")
def sub_ok(x: int, y: int) -> bool:
    return (x >= _I64_MIN + y) if y > 0 else (x <= _I64_MAX + y)


@intrinsic
def _smul_overflows(typingctx, x, y):
    """Whether the int64 product x * y overflows: LLVM's llvm.smul.with.overflow, one
    multiply and its flag (a division-based test cost a hardware division per row for
    any factor beyond 32 bits, e.g. a date widened to microseconds)."""
    sig = types.boolean(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        return builder.extract_value(builder.smul_with_overflow(args[0], args[1]), 1)
    return sig, codegen


@njit(inline="always")
def mul_ok(x: int, y: int) -> bool:
    return not _smul_overflows(np.int64(x), np.int64(y))


@njit(inline="always")
def narrow_ok(x: int, code: int) -> bool:
    """Whether x fits the integer type `code` (enum ba_int: 0 int64, 1 int8, 2 int16,
    3 int32, 4 uint8, 5 uint16, 6 uint32, 7 uint64)."""
    if code == 1:
        return -128 <= x <= 127
    if code == 2:
        return -32768 <= x <= 32767
    if code == 3:
        return -2147483648 <= x <= 2147483647
    if code == 4:
        return 0 <= x <= 255
    if code == 5:
        return 0 <= x <= 65535
    if code == 6:
        return 0 <= x <= 4294967295
    if code == 7:
        return x >= 0
    return True


@njit(inline="always")
def idiv_ok(x: int, y: int) -> bool:
    return y != 0 and not (y == -1 and x == _I64_MIN)


@njit(inline="always")
def mod_i(x: int, y: int) -> int:
    """x % y with the sign of x, for y != 0 (MIN % -1 is 0, not an overflow)."""
    if y == -1:
        return 0
    return x - idiv_trunc(x, y) * y


@njit(inline="always")
def idiv_trunc(x: int, y: int) -> int:
    """x // y truncated toward zero; callers exclude y = 0 and MIN // -1 (idiv_ok)."""
    if y == -1:
        return -x
    q = x // y
    if q < 0 and q * y != x:
        q += 1               # Python floors; SQL truncates toward zero
    return q


@njit(inline="always")
def round_int(x: int, d: int) -> int:
    """x rounded to a multiple of 10^-d (d < 0), half away from zero."""
    if d >= 0:
        return x
    if d < -18:
        return 0
    m = np.int64(10) ** np.int64(-d)
    q = idiv_trunc(x, m)
    r = x - q * m
    if 2 * abs(r) >= m:
        q += 1 if x > 0 else -1
    return q * m


@njit(inline="always")
def round_ok(x: int, d: int) -> bool:
    """Whether round_int(x, d) fits int64 (rounding up near the ends may not)."""
    if d >= 0 or d < -19:
        return True
    if d == -19:                      # to a multiple of 10^19: 0 unless it rounds away
        return -5 * 10 ** 18 < x < 5 * 10 ** 18
    m = np.int64(10) ** np.int64(-d)
    q = idiv_trunc(x, m)
    if 2 * abs(x - q * m) >= m:
        q += 1 if x > 0 else -1
    return mul_ok(q, m)


@njit(inline="always")
def f_eq(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


@njit(inline="always")
def f_lt(a: float, b: float) -> bool:
    return a < b or (a == a and b != b)          # NaN sorts above every number


@njit(inline="always")
def f_le(a: float, b: float) -> bool:
    return a <= b or b != b


@njit(inline="always")
def _all_tainted(vb, tb, vc, tc):
    """Overflow taint of a result from two inputs: some input is NULL, and every NULL
    input is an overflow's (a NULL that is there anyway makes the result NULL anyway,
    so the optimizer may fold such an operation without changing any count)."""
    return ((vb & vc) == 0) & ((vb | tb) != 0) & ((vc | tc) != 0)


# -- the interpreter ---------------------------------------------------------------

@njit(cache=True, nogil=True)
def run(code, kval, kvalid, col_addr, col_len, bm_addr, bm_len, bitoffs,
        lv_addr, lv_len, lm_addr, lm_len, nrows, R, V, strict, bits):
    """Run one program over `nrows` rows; violating row i sets bit i & 63 of bits[i >> 6]
    (every word of the range is written, a word at a time).

    Column i: int64 words (float columns viewed as int64) at col_addr[i]; its Arrow
    validity bitmap at bm_addr[i] with bit offset bitoffs[i] (-1: no NULLs). Lookup
    table c: values at lv_addr[c], validity at lm_addr[c] (see engine/buffers.py).
    R/V: register values and validity, shape (nregs, BLOCK). Returns (violations,
    rows whose verdict is NULL, rows whose verdict is NULL because an integer overflowed).

    Overflow taint: where a program can overflow (it has a TAINTS opcode), T[r, i] marks
    a NULL in register r that an overflow produced; it travels with NULLs through the
    program (an operation that gives a non-NULL result clears it), so the verdict's
    taint says whether the row's NULL verdict is an overflow's.
    """
    F = R.view(np.float64)
    nviol = 0
    nnull = 0
    novf = 0
    taint = False
    for pc in range(code.shape[0]):
        if OVERFLOWS[code[pc, 0]]:
            taint = True
    T = np.zeros((R.shape[0] if taint else 1, BLOCK), dtype=np.uint8)
    inherited_row = np.zeros(BLOCK, dtype=np.uint8)
    for start in range(0, nrows, BLOCK):
        n = min(BLOCK, nrows - start)
        pc = 0
        while True:
            op = code[pc, 0]
            a = code[pc, 1]
            b = code[pc, 2]
            c = code[pc, 3]
            pc += 1
            if taint and TAINT_RULE[op] != 0:     # inputs' taint, before the op overwrites them
                binary = TAINT_RULE[op] == 2
                for i in range(n):
                    inherited_row[i] = _all_tainted(V[b, i], T[b, i], V[c, i] if binary else 1,
                                                    T[c, i] if binary else 0)
            if op == LOAD:
                src = i64_at(col_addr, col_len, b)
                for i in range(n):
                    R[a, i] = src[start + i]
                off = bitoffs[b]
                if off < 0:
                    V[a, :n] = 1
                else:
                    bm = u8_at(bm_addr, bm_len, b)
                    for i in range(n):
                        bit = off + start + i
                        V[a, i] = (bm[bit >> 3] >> (bit & 7)) & 1
                if taint:
                    T[a, :n] = 0
            elif op == LOADK:
                R[a, :n] = kval[b]
                V[a, :n] = kvalid[b]
                if taint:
                    T[a, :n] = 0
            elif op == MOV:
                R[a, :n] = R[b, :n]
                V[a, :n] = V[b, :n]
                if taint:
                    T[a, :n] = T[b, :n]
            elif op == NOP:
                pass
            elif op == ADD_I or op == SUB_I or op == MUL_I:
                for i in range(n):
                    x = R[b, i]
                    y = R[c, i]
                    inherited = _all_tainted(V[b, i], T[b, i], V[c, i], T[c, i])   # before a is written
                    vin = V[b, i] & V[c, i]
                    if op == ADD_I:
                        fits = add_ok(x, y)
                        R[a, i] = x + y if fits else 0
                    elif op == SUB_I:
                        fits = sub_ok(x, y)
                        R[a, i] = x - y if fits else 0
                    else:
                        fits = mul_ok(x, y)
                        R[a, i] = x * y if fits else 0
                    V[a, i] = vin & fits
                    T[a, i] = (vin & (not fits)) | inherited
            elif op == IDIV_I or op == MOD_I:
                for i in range(n):
                    x = R[b, i]
                    y = R[c, i]
                    inherited = _all_tainted(V[b, i], T[b, i], V[c, i], T[c, i]) if taint else False
                    vin = V[b, i] & V[c, i]
                    fits = (y != -1) | (x != _I64_MIN) | (op == MOD_I)
                    ok = vin & (y != 0) & fits
                    V[a, i] = ok
                    if ok:
                        R[a, i] = idiv_trunc(x, y) if op == IDIV_I else mod_i(x, y)
                    else:
                        R[a, i] = 0
                    if taint:
                        T[a, i] = (vin & (not fits)) | inherited
            elif op == NEG_I or op == ABS_I or op == NARROW_I:
                for i in range(n):
                    x = R[b, i]
                    vb = V[b, i]
                    tb = T[b, i] if taint else 0
                    fits = narrow_ok(x, c) if op == NARROW_I else x != _I64_MIN
                    if op == NEG_I:
                        R[a, i] = -x if fits else 0
                    elif op == ABS_I:
                        R[a, i] = (-x if x < 0 else x) if fits else 0
                    else:
                        R[a, i] = x
                    V[a, i] = vb & fits
                    if taint:
                        T[a, i] = (vb & (not fits)) | tb
            elif op == ROUND_I:
                for i in range(n):
                    x = R[b, i]
                    vb = V[b, i]
                    fits = round_ok(x, c)
                    R[a, i] = round_int(x, c) if fits else 0
                    V[a, i] = vb & fits
                    T[a, i] = (vb & (not fits)) | T[b, i]          # a source: T is full-size
            elif op == ADD_F:
                for i in range(n):
                    F[a, i] = F[b, i] + F[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == SUB_F:
                for i in range(n):
                    F[a, i] = F[b, i] - F[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == MUL_F:
                for i in range(n):
                    F[a, i] = F[b, i] * F[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == DIV_F:
                for i in range(n):
                    y = F[c, i]
                    x = F[b, i]
                    if y == 0.0:      # IEEE without the FPU trap
                        F[a, i] = np.nan if (x == 0.0 or x != x) else math.copysign(np.inf, x) * math.copysign(1.0, y)
                    else:
                        F[a, i] = x / y
                    V[a, i] = V[b, i] & V[c, i]
            elif op == MOD_F:
                for i in range(n):
                    y = F[c, i]
                    F[a, i] = np.nan if y == 0.0 else np.fmod(F[b, i], y)
                    V[a, i] = V[b, i] & V[c, i]
            elif op == NEG_F:
                for i in range(n):
                    F[a, i] = -F[b, i]
                    V[a, i] = V[b, i]
            elif op == ABS_F:
                for i in range(n):
                    F[a, i] = abs(F[b, i])
                    V[a, i] = V[b, i]
            elif op == ROUND_F:
                for i in range(n):
                    F[a, i] = round_digits(F[b, i], c)
                    V[a, i] = V[b, i]
            elif op == F2S:
                for i in range(n):
                    F[a, i] = np.float64(np.float32(F[b, i]))
                    V[a, i] = V[b, i]
            elif op == I2F:
                for i in range(n):
                    F[a, i] = float(R[b, i])
                    V[a, i] = V[b, i]
            elif op == F2I:
                for i in range(n):
                    x = np.rint(F[b, i])
                    fits = (x >= -_TWO63) & (x < _TWO63)
                    vb = V[b, i]
                    tb = T[b, i]                                    # a source: T is full-size
                    ok = vb & fits
                    V[a, i] = ok
                    R[a, i] = np.int64(x) if ok else 0
                    T[a, i] = (vb & (not fits)) | tb
            elif op == EQ_I:
                for i in range(n):
                    R[a, i] = R[b, i] == R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == NE_I:
                for i in range(n):
                    R[a, i] = R[b, i] != R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == LT_I:
                for i in range(n):
                    R[a, i] = R[b, i] < R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == LE_I:
                for i in range(n):
                    R[a, i] = R[b, i] <= R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == GT_I:
                for i in range(n):
                    R[a, i] = R[b, i] > R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == GE_I:
                for i in range(n):
                    R[a, i] = R[b, i] >= R[c, i]
                    V[a, i] = V[b, i] & V[c, i]
            elif op == EQ_F:
                for i in range(n):
                    R[a, i] = f_eq(F[b, i], F[c, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == NE_F:
                for i in range(n):
                    R[a, i] = not f_eq(F[b, i], F[c, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == LT_F:
                for i in range(n):
                    R[a, i] = f_lt(F[b, i], F[c, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == LE_F:
                for i in range(n):
                    R[a, i] = f_le(F[b, i], F[c, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == GT_F:
                for i in range(n):
                    R[a, i] = f_lt(F[c, i], F[b, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == GE_F:
                for i in range(n):
                    R[a, i] = f_le(F[c, i], F[b, i])
                    V[a, i] = V[b, i] & V[c, i]
            elif op == NOT:
                for i in range(n):
                    R[a, i] = R[b, i] == 0
                    V[a, i] = V[b, i]
            elif op == AND:
                for i in range(n):
                    vb = V[b, i]
                    vc = V[c, i]
                    f = (vb & (R[b, i] == 0)) | (vc & (R[c, i] == 0))
                    V[a, i] = f | (vb & vc)
                    R[a, i] = (vb & vc) & (f == 0)
            elif op == OR:
                for i in range(n):
                    t = (V[b, i] & (R[b, i] != 0)) | (V[c, i] & (R[c, i] != 0))
                    V[a, i] = t | (V[b, i] & V[c, i])
                    R[a, i] = t
            elif op == ISNULL:
                for i in range(n):
                    R[a, i] = 1 - V[b, i]
                    V[a, i] = 1
            elif op == NOTNULL:
                for i in range(n):
                    R[a, i] = V[b, i]
                    V[a, i] = 1
            elif op == COALESCE:
                for i in range(n):
                    if V[b, i]:
                        R[a, i] = R[b, i]
                        V[a, i] = 1
                    else:
                        R[a, i] = R[c, i]
                        V[a, i] = V[c, i]
            elif op == SELECT:
                for i in range(n):
                    if V[b, i] and R[b, i] != 0:
                        R[a, i] = R[c, i]
                        V[a, i] = V[c, i]
                        if taint:
                            T[a, i] = T[c, i]
            elif op == LUT:
                lv = i64_at(lv_addr, lv_len, c)
                lm = u8_at(lm_addr, lm_len, c)
                last = lv.shape[0] - 1
                for i in range(n):
                    k = R[b, i]
                    if not V[b, i] or k < 0 or k >= last:   # NULL (or a code no table has)
                        k = last
                    R[a, i] = lv[k]
                    V[a, i] = lm[k]
            elif op == JMP:
                pc = b
            elif op == JALLF:
                hit = True
                for i in range(n):
                    if not V[a, i] or R[a, i] != 0:
                        hit = False
                        break
                if hit:
                    pc = b
            elif op == JALLT:
                hit = True
                for i in range(n):
                    if not V[a, i] or R[a, i] == 0:
                        hit = False
                        break
                if hit:
                    pc = b
            elif op == JNONET:
                hit = True
                for i in range(n):
                    if V[a, i] and R[a, i] != 0:
                        hit = False
                        break
                if hit:
                    pc = b
            elif op == RET:
                word = np.uint64(0)
                for i in range(n):
                    valid = V[a, i]
                    if not valid:
                        nnull += 1
                        if taint:
                            novf += T[a, i]
                    if (valid and R[a, i] == 0) or (strict and not valid):
                        word |= np.uint64(1) << np.uint64(i & 63)
                        nviol += 1
                    if (i & 63) == 63 or i == n - 1:
                        bits[(start + i) >> 6] = word
                        word = np.uint64(0)
                break
            else:
                raise ValueError("unknown opcode")
            if taint and TAINT_RULE[op] != 0:
                # a NULL result is an overflow's if its NULL inputs all are (the sources
                # above set their own; results that are not NULL carry no taint)
                for i in range(n):
                    T[a, i] = inherited_row[i] & (V[a, i] == 0)
    return nviol, nnull, novf


# -- reading a violation bitmap back -----------------------------------------------

@njit(cache=True, nogil=True)
def bitmap_rows(words, n):
    """Positions of the set bits among the first `n` bits of `words` (bit i & 63 of word
    i >> 6), ascending: a violation bitmap's row numbers. Zero words are skipped, so a
    bitmap with few violations costs a scan of its words."""
    nwords = min(words.shape[0], (n + 63) >> 6)
    count = 0
    for w in range(nwords):
        x = words[w]
        while x:
            x &= x - np.uint64(1)
            count += 1
    out = np.empty(count, dtype=np.int64)
    k = 0
    for w in range(nwords):
        x = words[w]
        if x == 0:
            continue
        base = w << 6
        for b in range(64):
            if (x >> np.uint64(b)) & np.uint64(1):
                out[k] = base + b
                k += 1
    while k > 0 and out[k - 1] >= n:      # bits past the last row (never set by kernels)
        k -= 1
    return out[:k]
