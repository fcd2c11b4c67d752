"""Evaluate compiled Programs over Arrow record batches with the VM.

An :class:`Executor` owns one C memory pool (registers come from it) and caches the
inputs of the batch at hand, so rules that share a column load it once and string
lookup tables are built once per dictionary.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyarrow as pa
from numba import types as nbt
from numba.typed import List

from ..compiler.program import Program
from ..compiler.types import from_arrow
from ..errors import DataError
from ..native import Pool
from . import columns, vm

_REG_BYTES = vm.BLOCK * 8
POOL_REGISTERS = 64          # registers per pooled block; larger programs count a pool miss


@dataclass
class RuleOutcome:
    """What one rule found in the data it saw."""

    name: str
    rows: int = 0
    violations: int = 0
    nulls: int = 0                       # rows whose predicate was NULL
    zero_tick: bool = False
    row_chunks: list = field(default_factory=list)

    @property
    def row_ids(self) -> np.ndarray:
        if not self.row_chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.row_chunks)


class _BatchInputs:
    """Columns and lookup tables of one batch, loaded on first use."""

    def __init__(self, batch: pa.RecordBatch):
        self.batch = batch
        self._cols: dict[tuple[str, str], columns.Loaded] = {}
        self._luts: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def column(self, name: str, type_text: str) -> columns.Loaded:
        key = (name, type_text)
        if key not in self._cols:
            idx = self.batch.schema.get_field_index(name)
            if idx < 0:
                raise DataError(f"column '{name}' is missing from the data")
            field_type = self.batch.schema.field(idx).type
            typ = columns.parse_type(type_text)
            if not pa.types.is_null(field_type) and str(from_arrow(field_type)) != type_text:
                raise DataError(f"column '{name}' is {field_type} here but the rules were "
                                f"compiled for {type_text}")
            self._cols[key] = columns.load(self.batch.column(idx), typ)
        return self._cols[key]

    def lut(self, name: str, type_text: str, sexpr: list, result: str):
        key = (name, json.dumps([sexpr, result]))
        if key not in self._luts:
            col = self.column(name, type_text)
            self._luts[key] = columns.build_lut(col.dictionary, sexpr, columns.parse_type(result))
        return self._luts[key]


def _typed_list(items: Iterable[np.ndarray], item_type) -> List:
    out = List.empty_list(item_type)
    for x in items:
        out.append(x)
    return out


class Executor:
    """Runs Programs on batches; one per worker, owning its register pool."""

    def __init__(self, pool: Pool | None = None):
        self.pool = pool if pool is not None else Pool(block_bytes=POOL_REGISTERS * _REG_BYTES,
                                                       nblocks=8)

    def evaluate(self, programs: list[Program], batches: Iterable[pa.RecordBatch]) -> list[RuleOutcome]:
        outcomes = [RuleOutcome(p.name, zero_tick=p.zero_tick) for p in programs]
        row_base = 0
        for batch in batches:
            self.evaluate_batch(programs, batch, row_base, outcomes)
            row_base += batch.num_rows
        return outcomes

    def evaluate_batch(self, programs: list[Program], batch: pa.RecordBatch, row_base: int,
                       outcomes: list[RuleOutcome]) -> None:
        n = batch.num_rows
        inputs = _BatchInputs(batch)
        out = np.empty(n, dtype=np.int64)
        for prog, res in zip(programs, outcomes):
            res.rows += n
            if prog.zero_tick or n == 0:
                continue
            nviol, nnull = self.run_program(prog, inputs, row_base, out)
            res.violations += nviol
            res.nulls += nnull
            if nviol:
                res.row_chunks.append(out[:nviol].copy())

    def run_program(self, prog: Program, inputs: _BatchInputs, row_base: int,
                    out: np.ndarray) -> tuple[int, int]:
        loaded = [inputs.column(name, t) for name, t in prog.columns]
        luts = [inputs.lut(prog.columns[ci][0], prog.columns[ci][1], sexpr, result)
                for ci, sexpr, result in prog.luts]
        cols = _typed_list((c.words for c in loaded), nbt.int64[::1])
        bitmaps = _typed_list((c.bitmap for c in loaded), nbt.uint8[::1])
        bitoffs = np.array([c.bitoff for c in loaded] or [0], dtype=np.int64)
        lut_vals = _typed_list((v for v, _ in luts), nbt.int64[::1])
        lut_valid = _typed_list((m for _, m in luts), nbt.uint8[::1])
        regs = self.pool.take(prog.nregs * _REG_BYTES)
        valid = self.pool.take(prog.nregs * vm.BLOCK)
        try:
            R = regs.view(np.int64).reshape(prog.nregs, vm.BLOCK)
            V = valid.reshape(prog.nregs, vm.BLOCK)
            return vm.run(prog.code, prog.kval, prog.kvalid, cols, bitmaps, bitoffs,
                          lut_vals, lut_valid, inputs.batch.num_rows, R, V, prog.strict,
                          row_base, out)
        finally:
            self.pool.give(valid)
            self.pool.give(regs)
