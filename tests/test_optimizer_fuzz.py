"""The C optimizer against its pure-Python twin (compiler/twin.py), and against the ISA itself.

* Random valid programs (seeded and hypothesis-built): C and twin agree byte
  for byte, with all passes, each pass alone and all passes but one.
* Malformed programs: both raise InvalidProgram with the same code at the same pc.
* Typed random programs on random data with NULLs: the optimized program computes
  what the original computes (tests/isa_interp.py runs both). The generator takes
  each opcode's register classes from the opcode table, so a new opcode is fuzzed.

(That every view of the opcode table agrees is tests/test_opcode_table.py.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import isa_interp as isa
from batchaot import native
from batchaot.compiler import twin
from batchaot.compiler.opcodes import CLASSES, FOLDABLE as FOLDABLE_OPS, WRITES_A, Op

OP = isa.OP
TABLE = native.opcode_table()
KINDS = {info.name: info.kinds for info in TABLE}
OPTIMIZER = native.Optimizer()
INT64_MIN, INT64_MAX = isa.INT64_MIN, isa.INT64_MAX
f2b = isa.f2b

SPECIAL_INTS = [0, 1, -1, 2, 3, 7, -7, 10, 15, -25, 100, 12345, INT64_MIN, INT64_MAX, INT64_MIN + 1,
                INT64_MAX - 1, 127, 128, -128, -129, 255, 256, 65535, -32769, 2**31 - 1, -2**31,
                2**32, 3037000499, -3037000500, 2**62, -2**62]
# NARROW_I's immediates: every type of enum ba_int (numbers from C)
INT_TYPES = [getattr(native.lib, f"BA_INT_{t}") for t in ("I64", "I8", "I16", "I32", "U8", "U16", "U32", "U64")]
SPECIAL_FLOATS = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.1, 3.0, 1e300, -1e300, 1e-300,
                  9.3e18, -9.3e18, 9.2233720368547758e18, math.inf, -math.inf, math.nan]
NEG_NAN = int(np.array([0xFFF8000000000123], dtype=np.uint64).view(np.int64)[0])
SPECIAL_WORDS = SPECIAL_INTS + [f2b(x) for x in SPECIAL_FLOATS] + [NEG_NAN]


# ------------------------------------------------------------------ comparison

def assert_same(c: native.OptimizeResult, py: native.OptimizeResult, context: str = "") -> None:
    assert c.code.tolist() == py.code.tolist(), context
    assert c.kval.tolist() == py.kval.tolist(), context
    assert c.kvalid.tolist() == py.kvalid.tolist(), context
    assert (c.removed, c.before, c.after, c.rounds, c.verdict) == \
        (py.removed, py.before, py.after, py.rounds, py.verdict), context


def both(prog: dict, passes=None) -> tuple[native.OptimizeResult, native.OptimizeResult]:
    c = OPTIMIZER.optimize(**prog, passes=passes)
    py = twin.optimize(**prog, passes=passes)
    assert_same(c, py, f"passes={passes} program={prog}")
    return c, py


def outcome(fn, prog: dict):
    """('ok', result) or ('invalid', code, pc)."""
    try:
        return "ok", fn(**prog)
    except native.InvalidProgram as e:
        return "invalid", e.code, e.pc, str(e)


# ------------------------------------------------------- untyped random programs

OP_WEIGHTS = {name: 1.0 for name in OP} | {
    "LOADK": 6, "MOV": 4, "JMP": 2, "JALLF": 2, "JALLT": 2, "JNONET": 2, "SELECT": 2,
    "AND": 2, "OR": 2, "COALESCE": 2, "NOP": 1.5, "RET": 0.7,
}
_NAMES = list(OP_WEIGHTS)
_P = np.array([OP_WEIGHTS[n] for n in _NAMES]) / sum(OP_WEIGHTS.values())


def _operand(rng, kind: str, pc: int, n: int, sizes: dict) -> int | None:
    """A valid operand of `kind`, or None when there is none (e.g. no constants)."""
    if kind == "_":
        return 0
    if kind == "N":
        return int(rng.choice([-1, -2, -3, 0, 1, 2, 3, 4, 5, 6, 7, 8, -18, -19, 30, -400, 400, INT64_MIN >> 33]))
    if kind == "J":
        return int(rng.integers(pc + 1, n)) if pc + 1 < n else None
    bound = sizes[kind]
    if bound == 0:
        return None
    if kind == "R":       # few registers in play, so values meet and collide
        return int(min(rng.geometric(0.35) - 1, bound - 1))
    return int(rng.integers(0, bound))


def random_program(rng: np.random.Generator, max_len: int = 40) -> dict:
    sizes = {"R": int(rng.integers(1, 9)), "K": int(rng.integers(0, 8)),
             "C": int(rng.integers(0, 3)), "L": int(rng.integers(0, 3))}
    kval = [int(rng.choice(SPECIAL_WORDS)) if rng.random() < 0.8 else int(rng.integers(-2**63, 2**63 - 1))
            for _ in range(sizes["K"])]
    kvalid = [int(rng.choice([0, 1, 1, 1, 1, 2, 255])) for _ in range(sizes["K"])]
    n = int(rng.integers(1, max_len + 1))
    code = []
    for pc in range(n - 1):
        while True:
            name = str(rng.choice(_NAMES, p=_P))
            operands = [_operand(rng, kind, pc, n, sizes) for kind in KINDS[name]]
            if None not in operands:
                break
        code.append([OP[name], *operands])
    code.append([OP["RET"], _operand(rng, "R", n - 1, n, sizes), 0, 0])
    return dict(code=code, kval=kval, kvalid=kvalid, nregs=sizes["R"], ncols=sizes["C"], nluts=sizes["L"])


def test_c_matches_twin_on_random_programs():
    rng = np.random.default_rng(20240607)
    changed = 0
    for i in range(2500):
        prog = random_program(rng)
        c, _ = both(prog)
        changed += c.after < c.before
        # stats are consistent, the output is valid and a fixed point
        assert c.before - c.after == sum(c.removed.values())
        assert c.after == len(c.code) and c.before == len(prog["code"])
        assert len(c.kval) >= len(prog["kval"]) and c.kval[:len(prog["kval"])].tolist() == prog["kval"]
        again = dict(prog, code=c.code, kval=c.kval, kvalid=c.kvalid)
        OPTIMIZER.validate(**again)
        twin.validate(**again)
        if c.rounds < native.MAX_ROUNDS:
            twice = OPTIMIZER.optimize(**again)
            assert twice.code.tolist() == c.code.tolist() and sum(twice.removed.values()) == 0
            assert twice.kval.tolist() == c.kval.tolist()
    assert changed > 1500, "the generator should give the optimizer work"


def test_each_pass_alone_and_all_but_one_match():
    rng = np.random.default_rng(7)
    for i in range(250):
        prog = random_program(rng, max_len=30)
        for name in native.PASS_NAMES:
            c, _ = both(prog, passes=[name])
            assert set(k for k, v in c.removed.items() if v) <= {name}
            assert c.before - c.after == c.removed[name]
            both(prog, passes=[p for p in native.PASS_NAMES if p != name])
        c, _ = both(prog, passes=[])
        assert c.code.tolist() == prog["code"] and c.rounds == 1


def test_every_pass_does_something_on_random_programs():
    rng = np.random.default_rng(11)
    totals = dict.fromkeys(native.PASS_NAMES, 0)
    verdicts = set()
    for _ in range(400):
        c, _ = both(random_program(rng))
        verdicts.add(c.verdict)
        for name, n in c.removed.items():
            totals[name] += n
    assert all(totals.values()), totals
    assert verdicts == {"unknown", "true", "false", "null"}


@st.composite
def repaired_programs(draw) -> dict:
    """Raw integers from hypothesis, mapped onto valid operands (shrinks well)."""
    nregs = draw(st.integers(1, 6))
    kval = draw(st.lists(st.sampled_from(SPECIAL_WORDS) | st.integers(INT64_MIN, INT64_MAX), max_size=5))
    kvalid = draw(st.lists(st.integers(0, 2), min_size=len(kval), max_size=len(kval)))
    ncols, nluts = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    raw = draw(st.lists(st.tuples(st.sampled_from(_NAMES), st.integers(0, 50),
                                  st.integers(0, 50), st.integers(-25, 25)), max_size=30))
    n = len(raw) + 1
    bounds = {"R": nregs, "K": len(kval), "C": ncols, "L": nluts}
    code = []
    for pc, (name, a, b, c) in enumerate(raw):
        row = [OP[name]]
        for kind, x in zip(KINDS[name], (a, b, c)):
            if kind == "J":
                row.append(pc + 1 + x % (n - pc - 1))
            elif kind == "N":
                row.append(x)
            elif kind == "_":
                row.append(0)
            elif bounds[kind]:
                row.append(x % bounds[kind])
            else:
                row = [OP["NOP"], 0, 0, 0]
                break
        code.append(row)
    code.append([OP["RET"], draw(st.integers(0, nregs - 1)), 0, 0])
    return dict(code=code, kval=kval, kvalid=kvalid, nregs=nregs, ncols=ncols, nluts=nluts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repaired_programs())
def test_c_matches_twin_hypothesis(prog):
    c, _ = both(prog)
    assert c.before - c.after == sum(c.removed.values())


# ------------------------------------------------------------ malformed programs

def _garbage(rng) -> dict:
    n = int(rng.integers(0, 8))
    pick = lambda: int(rng.choice([0, 1, 2, 3, 5, 46, 47, -1, int(rng.integers(-2**31, 2**31 - 1))]))
    code = np.array([[pick() for _ in range(4)] for _ in range(n)], dtype=np.int32).reshape(n, 4)
    if rng.random() < 0.5 and n:
        code[-1] = [OP["RET"], 0, 0, 0]
    k = int(rng.integers(0, 3))
    return dict(code=code, kval=[0] * k, kvalid=[1] * k, nregs=int(rng.integers(0, 4)),
                ncols=int(rng.integers(0, 3)), nluts=int(rng.integers(0, 2)))


def _mutant(rng) -> dict:
    prog = random_program(rng, max_len=12)
    code = np.array(prog["code"], dtype=np.int32)
    pc, field = int(rng.integers(0, len(code))), int(rng.integers(0, 4))
    code[pc, field] = int(rng.choice([-1, 0, 1, 47, 1000, prog["nregs"], len(code), pc, 2**31 - 1, -2**31]))
    return dict(prog, code=code)


def test_malformed_programs_raise_the_same_error():
    rng = np.random.default_rng(99)
    seen = set()
    for i in range(3000):
        prog = _garbage(rng) if i % 2 else _mutant(rng)
        c, py = outcome(OPTIMIZER.optimize, prog), outcome(twin.optimize, prog)
        assert c[0] == py[0], prog
        if c[0] == "ok":
            assert_same(c[1], py[1])
        else:
            assert c[1:] == py[1:], prog          # same code, pc and message
            assert outcome(OPTIMIZER.validate, prog)[1:] == c[1:]
            assert outcome(twin.validate, prog)[1:] == c[1:]
            seen.add(c[1].name)
    assert seen >= {"BAD_ARGUMENT", "BAD_OPCODE", "BAD_REGISTER", "BAD_CONSTANT", "BAD_COLUMN",
                    "BAD_LUT", "BAD_JUMP", "MISSING_RET", "NONZERO_UNUSED"}, seen


@pytest.mark.parametrize("args", [
    dict(code=np.zeros((2, 3), np.int32), kval=[], kvalid=[], nregs=1, ncols=0, nluts=0),
    dict(code=[[OP["RET"], 0, 0, 0]], kval=[1, 2], kvalid=[1], nregs=1, ncols=0, nluts=0),
    dict(code=[[OP["RET"], 0, 0, 0]], kval=[], kvalid=[], nregs=-1, ncols=0, nluts=0),
    dict(code=[[OP["RET"], 0, 0, 0]], kval=[], kvalid=[], nregs=1, ncols=2**31, nluts=0),
    dict(code=[[OP["RET"], 0, 0, 0.5]], kval=[], kvalid=[], nregs=1, ncols=0, nluts=0),
    dict(code=[[OP["RET"], 0, 0, 2**40]], kval=[], kvalid=[], nregs=1, ncols=0, nluts=0),
    dict(code=[], kval=[], kvalid=[], nregs=1, ncols=0, nluts=0),
])
def test_bad_arguments(args):
    for fn in (OPTIMIZER.optimize, OPTIMIZER.validate, twin.optimize, twin.validate):
        with pytest.raises(native.InvalidProgram) as err:
            fn(**args)
        assert err.value.code == native.ErrorCode.BAD_ARGUMENT


def test_unknown_pass_and_inputs_not_mutated():
    prog = random_program(np.random.default_rng(3))
    code = np.array(prog["code"], dtype=np.int32)
    kval, kvalid = np.array(prog["kval"], np.int64), np.array(prog["kvalid"], np.uint8)
    snapshot = (code.copy(), kval.copy(), kvalid.copy())
    for fn in (OPTIMIZER.optimize, twin.optimize):
        with pytest.raises(ValueError, match="unknown optimizer pass"):
            fn(code, kval, kvalid, prog["nregs"], prog["ncols"], prog["nluts"], passes=["fold"])
        res = fn(code, kval, kvalid, prog["nregs"], prog["ncols"], prog["nluts"])
        assert not res.code.flags.writeable
    for before, after in zip(snapshot, (code, kval, kvalid)):
        assert np.array_equal(before, after)


# -------------------------------------------------------------- fold semantics

FOLDABLE = sorted(op.name for op in FOLDABLE_OPS)


@pytest.mark.parametrize("name", FOLDABLE)
def test_scalar_folds_match_the_isa(name):
    """OP r2, r0, r1 on constants: C folds it to what the twin and the ISA compute."""
    kinds = KINDS[name]
    floats = [f2b(x) for x in SPECIAL_FLOATS + [7.0, -7.0, 1e19, 0.25]] + [NEG_NAN]
    # the words of the opcode's own operand class, and a few of the other (bits are bits)
    if CLASSES[OP[name]][1] == "f":
        words = floats + [0, 1, -1, INT64_MIN, INT64_MAX]
    elif CLASSES[OP[name]][1] == "i":
        words = SPECIAL_INTS + [f2b(0.5), f2b(math.nan), NEG_NAN]
    else:
        words = [0, 1, 2, -1, INT64_MIN, f2b(-0.0), f2b(math.nan)]
    inputs = [(1, w) for w in words] + [(0, 0)]
    imms = [-20, -19, -18, -2, -1, 0, 1, 2, 400, -400] if kinds[2] == "N" else [None]
    if name == "NARROW_I":
        imms = INT_TYPES + [-1, 8, 400]
    folded = 0
    for vb, wb in inputs:
        for vc, wc in inputs if kinds[2] == "R" else [(1, 0)]:
            for imm in imms:
                c_operand = 1 if kinds[2] == "R" else imm if kinds[2] == "N" else 0
                prog = dict(code=[[OP["LOADK"], 0, 0, 0], [OP["LOADK"], 1, 1, 0],
                                  [OP[name], 2, 0, c_operand], [OP["RET"], 2, 0, 0]],
                            kval=[wb, wc], kvalid=[vb, vc], nregs=3, ncols=0, nluts=0)
                c, _ = both(prog)
                expect = isa.run(prog["code"], prog["kval"], prog["kvalid"], 3, [], [])[0]
                if c.after == 2:        # folded to LOADK r2, k; RET r2
                    folded += 1
                    k = c.code[0][2]
                    got = (bool(c.kvalid[k]), int(c.kval[k]) if c.kvalid[k] else 0)
                    assert cells_equal(got, expect), (name, wb, wc, imm, got, expect)
                    assert c.verdict == ("null" if not got[0] else "true" if got[1] else "false")
    assert folded > 0


INT_FOLDS = {"ADD_I": lambda x, y: x + y, "SUB_I": lambda x, y: x - y, "MUL_I": lambda x, y: x * y,
             "IDIV_I": lambda x, y: None if y == 0 else abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1),
             "NEG_I": lambda x, y: -x, "ABS_I": lambda x, y: abs(x)}


@pytest.mark.parametrize("name", sorted(INT_FOLDS))
def test_integer_overflow_folds_to_null_never_wraps(name):
    """Exact (Python-integer) arithmetic: a result outside int64 folds to NULL."""
    edges = [INT64_MIN, INT64_MIN + 1, -2**62, -3037000500, -3037000499, -2, -1, 0, 1, 2,
             3037000499, 3037000500, 2**62, INT64_MAX - 1, INT64_MAX]
    unary = KINDS[name][2] != "R"
    nulls = 0
    for x in edges:
        for y in [0] if unary else edges:
            prog = dict(code=[[OP["LOADK"], 0, 0, 0], [OP["LOADK"], 1, 1, 0],
                              [OP[name], 2, 0, 0 if unary else 1], [OP["RET"], 2, 0, 0]],
                        kval=[x, y], kvalid=[1, 1], nregs=3, ncols=0, nluts=0)
            c, _ = both(prog)
            assert c.after == 2 and c.code[0][0] == OP["LOADK"], (name, x, y)
            k = c.code[0][2]
            exact = INT_FOLDS[name](x, y)
            if exact is None or not INT64_MIN <= exact <= INT64_MAX:
                assert not c.kvalid[k], (name, x, y, c.kval[k])
                nulls += 1
            else:
                assert c.kvalid[k] and c.kval[k] == exact, (name, x, y)
    assert nulls > 0


@pytest.mark.parametrize("int_type", INT_TYPES)
def test_narrow_folds_and_int64_becomes_a_move(int_type):
    info = isa.NARROW_TYPES[int_type]
    for x in SPECIAL_INTS:
        prog = dict(code=[[OP["LOADK"], 0, 0, 0], [OP["NARROW_I"], 1, 0, int_type], [OP["RET"], 1, 0, 0]],
                    kval=[x], kvalid=[1], nregs=2, ncols=0, nluts=0)
        c, _ = both(prog)
        k = c.code[0][2]
        assert c.after == 2 and bool(c.kvalid[k]) == (info.min <= x <= info.max), (int_type, x)
    on_column = dict(code=[[OP["LOAD"], 0, 0, 0], [OP["NARROW_I"], 1, 0, int_type], [OP["RET"], 1, 0, 0]],
                     kval=[], kvalid=[], nregs=2, ncols=1, nluts=0)
    c, _ = both(on_column, passes=["fold_constants"])
    want = "MOV" if int_type == native.lib.BA_INT_I64 else "NARROW_I"
    assert c.code[1].tolist() == [OP[want], 1, 0, 0 if want == "MOV" else int_type]
    c, _ = both(on_column)
    assert len(c.code) == (2 if want == "MOV" else 3)


def test_fold_appends_a_new_constant():
    prog = dict(code=[[OP["LOADK"], 0, 0, 0], [OP["LOADK"], 1, 1, 0], [OP["ADD_I"], 2, 0, 1],
                      [OP["RET"], 2, 0, 0]], kval=[2, 3], kvalid=[1, 1], nregs=3, ncols=0, nluts=0)
    c, _ = both(prog)
    assert c.code.tolist() == [[OP["LOADK"], 2, 2, 0], [OP["RET"], 2, 0, 0]]
    assert c.kval.tolist() == [2, 3, 5] and c.verdict == "true"


# --------------------------------------------------- semantics on random data

def cells_equal(x: isa.Cell, y: isa.Cell) -> bool:
    """NULL-aware, and NaN-aware: NaN payloads and signs are not observable."""
    if x[0] != y[0]:
        return False
    if not x[0] or x[1] == y[1]:
        return True
    is_nan = lambda w: math.isnan(isa.b2f(w))
    return is_nan(x[1]) and is_nan(y[1])


# Opcodes that write a register of class t ("i", "f", "b"): those whose A has that
# class in the opcode table, and the polymorphic ones (class "x"), a few weighted up.
# LUT writes booleans here: the test's tables (LUTS) hold booleans.
PRODUCER_WEIGHTS = {"LOADK": 2, "AND": 2, "OR": 2}


def _producers(t: str) -> list[str]:
    names = []
    for op in sorted(WRITES_A):
        cls = CLASSES[op][0]
        if cls == t or (cls == "x" and (op != Op.LUT or t == "b")):
            names += [op.name] * PRODUCER_WEIGHTS.get(op.name, 1)
    return names


TYPED_PRODUCERS = {t: _producers(t) for t in "ifb"}


def input_class(name: str, t: str) -> str | None:
    """The class of the registers an opcode that writes class t reads in B (and C):
    the table's; "x" means the destination's for a polymorphic opcode (MOV, COALESCE),
    any class (None) for one with a typed result (ISNULL)."""
    dest, cls = CLASSES[OP[name]][:2]
    if cls != "x":
        return cls
    return t if dest == "x" else None


COLUMN_TYPES = ["i", "f", "b", "i", "f", "b"]


class TypedGenerator:
    """Well-typed programs with structured forward jumps: a register is read only
    where it is defined on every path, with the type the opcode expects."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nregs = int(rng.integers(3, 9))
        self.code: list[list[int]] = []
        self.kval: list[int] = []
        self.kvalid: list[int] = []
        self.ktypes: list[str] = []

    def choice(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def constant(self, t: str) -> int:
        same = [k for k in range(len(self.kval)) if self.ktypes[k] == t]
        if same and self.rng.random() < 0.5:
            return self.choice(same)
        if self.rng.random() < 0.15:
            word, valid = int(self.rng.choice([0, 5, -1])), 0
        elif t == "i":
            word, valid = self.choice(SPECIAL_INTS), 1
        elif t == "f":
            word, valid = f2b(self.choice(SPECIAL_FLOATS + [1.0, -3.5, 2.0])), 1
        else:
            word, valid = self.choice([0, 1]), 1
        self.kval.append(word)
        self.kvalid.append(valid)
        self.ktypes.append(t)
        return len(self.kval) - 1

    def regs_of(self, env: dict, t: str | None) -> list[int]:
        return [r for r, rt in env.items() if t is None or rt == t]

    def produce(self, env: dict) -> None:
        t = self.choice("ifb")
        name = self.choice(TYPED_PRODUCERS[t])
        dest = int(self.rng.integers(0, self.nregs))
        if name in ("LOAD",):
            row = [OP["LOAD"], dest, self.choice([i for i, ct in enumerate(COLUMN_TYPES) if ct == t]), 0]
        elif name == "LUT":
            ints = self.regs_of(env, "i")
            if not ints:
                return
            row = [OP["LUT"], dest, self.choice(ints), int(self.rng.integers(0, 2))]
        elif name == "SELECT":
            targets, conds = self.regs_of(env, t), self.regs_of(env, "b")
            if not targets or not conds:
                return
            dest = self.choice(targets)
            row = [OP["SELECT"], dest, self.choice(conds), self.choice(targets)]
        elif name == "LOADK":
            row = [OP["LOADK"], dest, self.constant(t), 0]
        else:
            kinds = KINDS[name]
            pool = self.regs_of(env, input_class(name, t))
            if not pool:
                return
            row = [OP[name], dest, self.choice(pool), 0]
            if kinds[2] == "R":
                row[3] = self.choice(pool)
            elif name == "NARROW_I":
                row[3] = self.choice(INT_TYPES)
            elif kinds[2] == "N":
                row[3] = int(self.rng.choice([-19, -18, -3, -2, -1, 0, 1, 2, 3, 400]))
        self.code.append(row)
        env[row[1]] = t

    def block(self, env: dict, depth: int, budget: int) -> dict:
        for _ in range(budget):
            roll = self.rng.random()
            bools = self.regs_of(env, "b")
            if roll < 0.12 and bools and depth < 3:
                jump = [OP[self.choice(["JALLF", "JALLT", "JNONET"])], self.choice(bools), -1, 0]
                self.code.append(jump)
                inner = self.block(dict(env), depth + 1, int(self.rng.integers(0, 6)))
                jump[2] = len(self.code)
                env = {r: t for r, t in env.items() if inner.get(r) == t}
            elif roll < 0.16 and depth < 3:
                jump = [OP["JMP"], 0, -1, 0]
                self.code.append(jump)
                self.block(dict(env), depth + 1, int(self.rng.integers(0, 4)))
                jump[2] = len(self.code)
            elif roll < 0.18 and bools:
                self.code.append([OP["RET"], self.choice(bools), 0, 0])
            elif roll < 0.2:
                self.code.append([OP["NOP"], 0, 0, 0])
            else:
                self.produce(env)
        return env

    def program(self) -> dict:
        env = self.block({}, 0, int(self.rng.integers(3, 30)))
        bools = self.regs_of(env, "b")
        if not bools:
            self.code.append([OP["LOADK"], 0, self.constant("b"), 0])
            bools = [0]
        self.code.append([OP["RET"], self.choice(bools), 0, 0])
        return dict(code=self.code, kval=self.kval, kvalid=self.kvalid, nregs=self.nregs,
                    ncols=len(COLUMN_TYPES), nluts=2)


def random_columns(rng: np.random.Generator) -> list[isa.Column]:
    nrows = int(rng.integers(1, 6))
    null_rate = rng.choice([0.0, 0.0, 0.2, 0.5])
    columns = []
    for t in COLUMN_TYPES:
        if t == "i":
            words = [int(rng.choice(SPECIAL_INTS)) if rng.random() < 0.5 else int(rng.integers(-20, 20))
                     for _ in range(nrows)]
        elif t == "f":
            words = [f2b(float(rng.choice(SPECIAL_FLOATS))) if rng.random() < 0.5
                     else f2b(float(np.round(rng.normal(0, 10), 2))) for _ in range(nrows)]
        else:
            words = [int(rng.random() < 0.6) for _ in range(nrows)]
        columns.append(isa.Column(np.array(words, dtype=np.int64), rng.random(nrows) >= null_rate))
    return columns


LUTS = [[(True, 1), (True, 0), (False, 0), (True, 1)], [(True, 0), (True, 1), (True, 0)]]


def test_optimized_programs_compute_the_same_results():
    rng = np.random.default_rng(2024)
    shrunk = 0
    for i in range(1200):
        prog = TypedGenerator(rng).program()
        OPTIMIZER.validate(**prog)
        c, _ = both(prog)
        shrunk += c.after < c.before
        for _ in range(3):
            columns = random_columns(rng)
            want = isa.run(prog["code"], prog["kval"], prog["kvalid"], prog["nregs"], columns, LUTS)
            got = isa.run(c.code, c.kval, c.kvalid, prog["nregs"], columns, LUTS)
            assert all(map(cells_equal, want, got)), (prog, c.code.tolist(), want, got)
            if c.verdict != "unknown":
                expect = {"true": (True, 1), "false": (True, 0), "null": (False, 0)}[c.verdict]
                assert all(cells_equal(expect, (v, int(w != 0) if v else 0)) for v, w in want)
    assert shrunk > 600
