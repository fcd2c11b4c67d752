"""Every view of native/opcodes.def agrees, and its columns say what the opcodes do.

Views: the rows of opcodes.def; the C enum and table (compiled and printed by a small C
program); the table read through cffi (batchaot.native); the Python view
(batchaot.compiler.opcodes) and its users, the optimizer's Python twin and the ISA
interpreter. Then the columns are checked for sense (flags against operand kinds,
classes against kinds) and against semantics written elsewhere: the ISA interpreter
(tests/isa_interp.py, which spells out every opcode and reads only names, numbers and
kinds from the table) decides whether an opcode's NULL flags, FOLDABLE and symbol hold.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import isa_interp as isa
from batchaot import native
from batchaot.compiler import opcodes, twin
from batchaot.compiler.opcodes import CLASSES, FAMILY, FLAGS, KINDS, SYMBOL, Op, OpFlag

NATIVE = Path(__file__).resolve().parents[1] / "native"
TABLE = native.opcode_table()

# One row: OP(NAME, A, B, C, FAMILY, CLASSES, "SYMBOL", FLAGS,\n   "semantics")
ROW = re.compile(r'^OP\(\s*(\w+)\s*,\s*(\S)\s*,\s*(\S)\s*,\s*(\S)\s*,\s*(\w+)\s*,\s*(\w+)\s*,'
                 r'\s*"([^"]*)"\s*,\s*([^\n]*?)\s*,\s*\n\s*"(.*)"\s*\)\s*$', re.M)


def def_rows() -> list[tuple]:
    text = (NATIVE / "opcodes.def").read_text()
    rows = ROW.findall(text)
    assert len(rows) == len(re.findall(r"^OP\(", text, re.M)), "a row the pattern does not read"
    return rows


def parse_flags(expr: str) -> OpFlag:
    if expr == "0":
        return OpFlag(0)
    names = re.findall(r"F\((\w+)\)", expr)
    assert " | ".join(f"F({n})" for n in names) == expr, f"FLAGS must be F(X) | F(Y) or 0: {expr!r}"
    flags = OpFlag(0)
    for n in names:
        flags |= OpFlag[n]
    return flags


# ---------------------------------------------------------------- the views agree

def test_def_rows_are_the_compiled_table():
    rows = def_rows()
    assert len(rows) == len(TABLE) == native.lib.ba_op_count() == len(Op)
    for code, (info, row) in enumerate(zip(TABLE, rows)):
        name, a, b, c, family, classes, symbol, flags, doc = row
        assert info == native.OpInfo(code=code, name=name, kinds=(a, b, c), doc=doc, family=family,
                                     classes=tuple(classes), symbol=symbol, flags=parse_flags(flags))
        assert Op[name] == code


def test_the_c_enum_numbers_what_python_numbers():
    """A C program prints, through the enum itself, each opcode's number and its row."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"needs {cc} on PATH")   # test_native_c.py fails under CI without it
    src = NATIVE / "tests" / "build" / "print_table.c"
    exe = src.with_suffix("")
    src.parent.mkdir(exist_ok=True)
    src.write_text(
        '#include <stdio.h>\n#include "../../bytecode.h"\n'
        "int main(void) {\n"
        "#define OP(name, ...) printf(\"%s %d %s %s [%s] %u\\n\", #name, BA_OP_##name,"
        " ba_optable[BA_OP_##name].family, ba_optable[BA_OP_##name].classes,"
        " ba_optable[BA_OP_##name].symbol, ba_optable[BA_OP_##name].flags);\n"
        '#include "../../opcodes.def"\n#undef OP\n'
        '    printf("COUNT %d\\n", BA_OP_COUNT);\n    return 0;\n}\n')
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-o", str(exe), str(src), str(NATIVE / "bytecode.c")],
                   check=True, capture_output=True, text=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert lines[-1] == f"COUNT {len(Op)}"
    for line, op in zip(lines[:-1], Op):
        name, code, family, classes, symbol, flags = re.fullmatch(r"(\w+) (\d+) (\w+) (\w+) \[(.*)\] (\d+)", line).groups()
        assert (name, int(code), family, tuple(classes), symbol, int(flags)) == \
            (op.name, int(op), FAMILY[op], CLASSES[op], SYMBOL.get(op, ""), int(FLAGS[op]))


def test_the_flag_enum_is_read_from_the_header():
    header = (NATIVE / "batchaot_native.h").read_text()
    body = re.search(r"enum ba_opflag \{(.*?)\};", header, re.S).group(1)
    declared = {name: int(value) for name, value in re.findall(r"BA_OPF_(\w+) = (\d+)", body)}
    assert declared == {flag.name: flag.value for flag in OpFlag}
    assert all(value & (value - 1) == 0 for value in declared.values()), "one bit per flag"


def test_python_views_are_the_table():
    assert [op.name for op in Op] == [info.name for info in TABLE]
    for info in TABLE:
        op = Op(info.code)
        assert (KINDS[op], FAMILY[op], CLASSES[op], FLAGS[op], opcodes.DOCS[op]) == \
            (info.kinds, info.family, info.classes, info.flags, info.doc)
        assert SYMBOL.get(op, "") == info.symbol
    # the oracles read the same table, and keep no enum of their own
    assert twin.Op is Op
    assert isa.OP == {op.name: int(op) for op in Op}
    assert tuple(p.__name__ for p in twin.PASSES) == native.PASS_NAMES == (
        "remove_nops", "fold_constants", "fuse_load_move", "remove_redundant_moves",
        "thread_jumps", "remove_unreachable", "remove_dead_code")


def test_derived_sets_are_the_flags():
    for op in Op:
        f = FLAGS[op]
        assert (op in opcodes.JUMPS) == bool(f & OpFlag.JUMP)
        assert (op in opcodes.TERMINATORS) == bool(f & OpFlag.TERMINATOR)
        assert (op in opcodes.COMPARISONS) == bool(f & OpFlag.COMPARISON)
        assert (op in opcodes.NULL_PROPAGATING) == bool(f & OpFlag.NULL_PROPAGATING)
        assert (op in opcodes.OVERFLOW_SOURCES) == bool(f & OpFlag.OVERFLOW)
        assert (op in opcodes.DIVZERO) == bool(f & OpFlag.DIVZERO)
        assert (op in opcodes.NEVER_NULL) == bool(f & OpFlag.NEVER_NULL)
        assert (op in opcodes.FOLDABLE) == bool(f & OpFlag.FOLDABLE)
        assert (op in opcodes.READS_A) == bool(f & OpFlag.READS_A)
    assert opcodes.COND_JUMPS == {Op.JALLF, Op.JALLT, Op.JNONET}
    assert opcodes.TERMINATORS == {Op.JMP, Op.RET}
    assert opcodes.OVERFLOW_SOURCES == {Op.ADD_I, Op.SUB_I, Op.MUL_I, Op.IDIV_I, Op.NEG_I, Op.ABS_I,
                                        Op.ROUND_I, Op.NARROW_I, Op.F2I}


def test_mask_is_an_opcode_indexed_set():
    m = opcodes.mask(opcodes.OVERFLOW_SOURCES)
    assert m.dtype == bool and len(m) == len(Op)
    assert {Op(i) for i in m.nonzero()[0]} == opcodes.OVERFLOW_SOURCES
    assert not opcodes.mask(()).any()


# ------------------------------------------------------------- the columns make sense

def test_every_opcode_has_its_semantics_in_register_notation():
    for op in Op:
        doc = opcodes.DOCS[op]
        if op in opcodes.WRITES_A:
            assert doc.startswith("R[A] := "), (op.name, doc)
        elif op in opcodes.JUMPS:
            assert doc.startswith("goto B"), (op.name, doc)
        else:
            assert doc and doc == doc.strip(), (op.name, doc)
        for x, kind in zip("ABC", KINDS[op]):   # every operand it has, as its kind says
            spelled = {"R": f"R[{x}]", "K": f"K[{x}]", "C": f"column[{x}]", "J": f"goto {x}",
                       "L": f"lut[{x}]", "N": x}.get(kind)
            if spelled:
                assert re.search(rf"(?<!\w){re.escape(spelled)}(?!\w)", doc), (op.name, spelled, doc)


def test_flags_agree_with_operand_kinds():
    for op in Op:
        f, (ka, kb, kc) = FLAGS[op], KINDS[op]
        assert bool(f & OpFlag.JUMP) == (kb == "J"), op.name            # every jump has a J operand
        if f & OpFlag.READS_A:
            assert ka == "R", op.name
        if f & OpFlag.TERMINATOR:
            assert op not in opcodes.WRITES_A, op.name
        if f & OpFlag.FOLDABLE:
            assert op in opcodes.WRITES_A and op not in opcodes.READS_A and kb == "R", op.name
        if f & OpFlag.COMPARISON:
            assert (kb, kc) == ("R", "R") and CLASSES[op][0] == "b" and op in SYMBOL, op.name
            assert CLASSES[op][1] == CLASSES[op][2] in ("i", "f"), op.name
        if f & OpFlag.DIVZERO:
            assert kc == "R", op.name
        null_flags = [OpFlag.NULL_PROPAGATING, OpFlag.NEVER_NULL, OpFlag.OVERFLOW | OpFlag.DIVZERO]
        assert sum(bool(f & n) for n in null_flags) <= 1, op.name
        if any(f & n for n in null_flags):
            assert op in opcodes.WRITES_A and op not in opcodes.READS_A, op.name
    # what writes A without reading it is exactly what is not a jump or RET
    assert opcodes.READS_A & opcodes.WRITES_A == {Op.SELECT}


def test_classes_agree_with_operand_kinds():
    for op in Op:
        for kind, cls in zip(KINDS[op], CLASSES[op]):
            assert cls in "ifbx_", op.name
            assert (cls != "_") == (kind == "R"), (op.name, KINDS[op], CLASSES[op])
        if op in opcodes.BINARY and op not in (Op.SELECT,):
            assert CLASSES[op][1] == CLASSES[op][2], op.name   # both inputs of one class
        if CLASSES[op][0] != "x" and op in opcodes.WRITES_A:
            assert "x" not in CLASSES[op][1:] or op in opcodes.NEVER_NULL, op.name


def test_families_are_names_and_typed_picks_each_opcode():
    for op in Op:
        family = FAMILY[op]
        assert re.fullmatch(r"[a-z][a-z0-9]*", family), op.name
        cls = CLASSES[op][1]
        for physical in ("i", "f", "b") if cls == "x" else (cls,):
            assert opcodes.typed(family, physical) is op
        assert op in opcodes.FAMILIES[family]
    assert opcodes.typed("add", "f") is Op.ADD_F and opcodes.typed("lt", "i") is Op.LT_I
    assert opcodes.typed("idiv", "i") is Op.IDIV_I and opcodes.typed("div", "f") is Op.DIV_F
    assert opcodes.typed("isnull", "f") is Op.ISNULL
    # a boolean is an int64 word: the compiler's class 'i' covers booleans (NOT of a BOOLEAN)
    assert opcodes.typed("not", "i") is Op.NOT and opcodes.typed("eq", "b") is Op.EQ_I
    for family, physical in [("idiv", "f"), ("not", "f"), ("i2f", "f"), ("div", "i"), ("nosuch", "i")]:
        with pytest.raises(KeyError):
            opcodes.typed(family, physical)
    # a family's opcodes differ in their operands' class, and in nothing else of kind
    for family, ops in opcodes.FAMILIES.items():
        assert len({CLASSES[op][1] for op in ops}) == len(ops), family
        assert len({KINDS[op] for op in ops}) == 1, family
        if len(ops) > 1:
            assert family in opcodes.TYPED_FAMILIES
            assert len({FLAGS[op] & ~(OpFlag.OVERFLOW | OpFlag.DIVZERO | OpFlag.NULL_PROPAGATING)
                        for op in ops}) == 1, family
    assert {"add", "sub", "mul", "div", "idiv", "mod", "neg", "abs", "round", "narrow",
            "eq", "ne", "lt", "le", "gt", "ge"} <= opcodes.TYPED_FAMILIES
    assert not {"not", "and", "or", "isnull", "coalesce", "select", "lut", "mov"} & opcodes.TYPED_FAMILIES


# ------------------------------------------------- the columns against the semantics

INTS = [0, 1, -1, 2, -7, 10, 1000, 2**31, -2**40, isa.INT64_MIN, isa.INT64_MIN + 1, isa.INT64_MAX]
FLOATS = [0.0, -0.0, 0.5, -2.5, 1.0, 3.0, 1e19, -1e300, math.inf, -math.inf, math.nan]
BOOLS = [0, 1]
IMMEDIATES = [-2, -1, 0, 1, 2] + [getattr(native.lib, f"BA_INT_{t}") for t in ("I8", "U8", "U32")]
WORDS = {"i": INTS, "f": [isa.f2b(x) for x in FLOATS], "b": BOOLS}


def _cells(cls: str) -> list[isa.Cell]:
    words = WORDS[cls] if cls in WORDS else BOOLS + INTS[:4]
    return [(True, w) for w in words]


def _scalar_cases(op: Op):
    """(b, c, imm, result) of the ISA interpreter, over values of the opcode's classes
    and NULLs."""
    _, cb, cc = CLASSES[op]
    unary = KINDS[op][2] != "R"
    imms = IMMEDIATES if KINDS[op][2] == "N" else [0]
    bs = _cells(cb) + [isa.NULL]
    cs = [isa.NULL] if unary else _cells(cc) + [isa.NULL]
    for b in bs:
        for c in cs:
            for imm in imms:
                yield b, c, imm, isa._scalar(op.name, b, c, imm)


def test_foldable_is_what_the_isa_computes_row_by_row():
    """FOLDABLE: a function of the register inputs (and immediate) alone: exactly the
    opcodes the ISA interpreter computes as a scalar of one row."""
    assert {op.name for op in opcodes.FOLDABLE} == isa.SCALAR


@pytest.mark.parametrize("op", sorted(opcodes.FOLDABLE), ids=lambda op: op.name)
def test_null_flags_are_what_the_isa_computes(op: Op):
    unary = KINDS[op][2] != "R"
    saw_null_from_valid = saw_valid_from_null = False
    for b, c, imm, (valid, word) in _scalar_cases(op):
        some_null = not b[0] or (not unary and not c[0])
        if op in opcodes.STRICT and some_null:
            assert not valid, (op.name, b, c, imm)
        if op in opcodes.NULL_PROPAGATING:
            assert valid == (not some_null), (op.name, b, c, imm)
        if op in opcodes.NEVER_NULL:
            assert valid, (op.name, b, c, imm)
        if op in opcodes.DIVZERO and not some_null and c[1] == 0:
            assert not valid, (op.name, b, c)
        if not valid and not some_null:
            saw_null_from_valid = True
            # NULL from valid inputs: an overflow, or a zero divisor
            assert op in opcodes.OVERFLOW_SOURCES or (op in opcodes.DIVZERO and c[1] == 0), (op.name, b, c, imm)
        saw_valid_from_null |= valid and some_null
    if op in opcodes.OVERFLOW_SOURCES:
        assert saw_null_from_valid, f"{op.name} is flagged OVERFLOW but never overflows here"
    if op not in opcodes.STRICT:
        assert saw_valid_from_null, f"{op.name} makes NULL of every NULL input: flag it"


@pytest.mark.parametrize("op", sorted(SYMBOL), ids=lambda op: Op(op).name)
def test_symbols_compute_what_the_isa_computes(op: int):
    """An opcode's symbol, as a C or Python operator, computes its result on ordinary
    values: integers far from overflow, floats that are numbers, nonzero divisors."""
    op = Op(op)
    sym, (_, cb, _) = SYMBOL[op], CLASSES[op]
    unary = KINDS[op][2] != "R"
    values = [0, 1, -1, 2, -7, 10, 1000] if cb == "i" else [0.0, -0.0, 0.5, -2.5, 1.0, 3.0, 1e19, -1e300]
    word = (lambda v: v) if cb == "i" else isa.f2b
    for x in values:
        for y in [0] if unary else values:
            if sym == "/" and y == 0:
                continue
            got = isa._scalar(op.name, (True, word(x)), (True, word(y)), 0)
            want = eval(f"{sym} x" if unary else f"x {sym} y", {"x": x, "y": y})
            if isinstance(want, bool):
                want = int(want)
            elif isinstance(want, float):
                want = isa.f2b(want)
            assert got == (True, want), (op.name, x, y)
