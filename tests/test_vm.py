"""The Numba VM executes every opcode as the ISA reference interpreter (tests/isa_interp.py)
says, on random well-typed programs and data with NULLs, NaN, infinities and -0."""
from __future__ import annotations

import numpy as np
from numba import types as nbt

import isa_interp as isa
from batchaot.compiler.opcodes import Op
from batchaot.engine import vm
from batchaot.engine.run import _typed_list
from test_optimizer_fuzz import LUTS, TypedGenerator, random_columns


def vm_verdicts(prog: dict, columns: list[isa.Column], strict: bool) -> tuple[set, int]:
    nrows = len(columns[0].words)
    cols = _typed_list((np.ascontiguousarray(c.words, dtype=np.int64) for c in columns), nbt.int64[::1])
    bitmaps = _typed_list((np.packbits(c.valid.astype(np.uint8), bitorder="little") for c in columns),
                          nbt.uint8[::1])
    bitoffs = np.zeros(len(columns), dtype=np.int64)
    lut_vals = _typed_list((np.array([w for _, w in t], dtype=np.int64) for t in LUTS), nbt.int64[::1])
    lut_valid = _typed_list((np.array([v for v, _ in t], dtype=np.uint8) for t in LUTS), nbt.uint8[::1])
    R = np.zeros((prog["nregs"], vm.BLOCK), dtype=np.int64)
    V = np.zeros((prog["nregs"], vm.BLOCK), dtype=np.uint8)
    out = np.empty(nrows, dtype=np.int64)
    code = np.asarray(prog["code"], dtype=np.int32).reshape(-1, 4)
    kval = np.asarray(prog["kval"] or [0], dtype=np.int64)
    kvalid = np.asarray(prog["kvalid"] or [0], dtype=np.uint8)
    nviol, nnull = vm.run(code, kval, kvalid, cols, bitmaps, bitoffs, lut_vals, lut_valid,
                          nrows, R, V, strict, 0, out)
    return set(out[:nviol].tolist()), nnull


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

