"""The Numba VM executes every opcode as the ISA reference interpreter (tests/isa_interp.py)
says, on random well-typed programs and data with NULLs, NaN, infinities and -0."""
from __future__ import annotations

import numpy as np
import pytest

import isa_interp as isa
from batchaot.compiler.opcodes import Op
from batchaot.engine import vm
from batchaot.engine.buffers import Buffers
from batchaot.engine.vm import bitmap_rows
from test_optimizer_fuzz import LUTS, TypedGenerator, random_columns


def vm_verdicts(prog: dict, columns: list[isa.Column], strict: bool) -> tuple[set, int]:
    nrows = len(columns[0].words)
    cols = Buffers([np.ascontiguousarray(c.words, dtype=np.int64) for c in columns], np.int64)
    bitmaps = Buffers([np.packbits(c.valid.astype(np.uint8), bitorder="little") for c in columns], np.uint8)
    bitoffs = np.zeros(len(columns), dtype=np.int64)
    lut_vals = Buffers([np.array([w for _, w in t], dtype=np.int64) for t in LUTS], np.int64)
    lut_valid = Buffers([np.array([v for v, _ in t], dtype=np.uint8) for t in LUTS], np.uint8)
    R = np.zeros((prog["nregs"], vm.BLOCK), dtype=np.int64)
    V = np.zeros((prog["nregs"], vm.BLOCK), dtype=np.uint8)
    bits = np.empty((nrows + 63) >> 6, dtype=np.uint64)
    code = np.asarray(prog["code"], dtype=np.int32).reshape(-1, 4)
    kval = np.asarray(prog["kval"] or [0], dtype=np.int64)
    kvalid = np.asarray(prog["kvalid"] or [0], dtype=np.uint8)
    nviol, nnull, _ = vm.run(code, kval, kvalid, cols.addr, cols.lens, bitmaps.addr, bitmaps.lens, bitoffs,
                             lut_vals.addr, lut_vals.lens, lut_valid.addr, lut_valid.lens, nrows, R, V, strict, bits)
    rows = set(bitmap_rows(bits, nrows).tolist())
    assert len(rows) == nviol
    return rows, nnull


def test_vm_matches_the_isa_interpreter_on_every_opcode() -> None:
    rng = np.random.default_rng(7)
    seen: set[int] = set()
    for _ in range(1500):
        prog = TypedGenerator(rng).program()
        seen.update(row[0] for row in prog["code"])
        columns = random_columns(rng)
        cells = isa.run(prog["code"], prog["kval"], prog["kvalid"], prog["nregs"], columns, LUTS)
        lax = {i for i, (v, w) in enumerate(cells) if v and w == 0}
        strict = {i for i, (v, w) in enumerate(cells) if not (v and w != 0)}
        nulls = sum(1 for v, _ in cells if not v)
        assert vm_verdicts(prog, columns, False) == (lax, nulls), prog
        assert vm_verdicts(prog, columns, True) == (strict, nulls), prog
    assert seen == {int(op) for op in Op}, f"never generated: {[Op(o).name for o in set(map(int, Op)) - seen]}"



def test_buffers_view_arrays_without_copies_and_check_their_type() -> None:
    from batchaot.engine.pointers import i64_at
    from numba import njit

    @njit
    def total(addr, lens):
        return sum([i64_at(addr, lens, j).sum() for j in range(lens.shape[0])])

    parts = [np.arange(5, dtype=np.int64), np.arange(100, 103, dtype=np.int64)[::1], np.zeros(0, np.int64)]
    b = Buffers(parts, np.int64)
    assert total(b.addr, b.lens) == 10 + 303 and list(b.lens) == [5, 3, 0]
    assert b.addr[0] == parts[0].ctypes.data          # the caller's memory, not a copy
    with pytest.raises(TypeError, match="int64"):
        Buffers([np.zeros(3, np.int32)], np.int64)
