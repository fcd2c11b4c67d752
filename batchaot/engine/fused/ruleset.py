"""A rule set laid out as one kernel's arguments: columns, lookup tables and constants merged."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...compiler.opcodes import Op
from ...compiler.program import Program


def divisors(prog: Program) -> dict[int, int]:
    """pc -> K for each integer / or % whose divisor register was last written, in program
    order, by a valid constant K > 1 (e.g. a timestamp's units per day): its kernel line
    divides by the literal K (multiply-and-shift, not a hardware divide) when the register
    holds K at run time, and falls back to the general division otherwise, so the choice
    only costs speed, never an answer. Part of a kernel's shape, since its source holds K."""
    found: dict[int, int] = {}
    last: dict[int, int] = {}                   # register -> pc of its last writer so far
    for pc, (op, a, b, c) in enumerate(prog.code.tolist()):
        if op in (Op.IDIV_I, Op.MOD_I) and c in last:
            wop, _, kb, _ = prog.code[last[c]].tolist()
            if wop == Op.LOADK and prog.kvalid[kb] and int(prog.kval[kb]) > 1:
                found[pc] = int(prog.kval[kb])
        last[a] = pc
    return found

@dataclass(frozen=True, eq=False)
class RuleSet:
    """The programs of one kernel, with their columns, lookup tables and constants merged.

    A column (name, type) read by several rules is one kernel argument, loaded once
    per row; likewise a lookup table that several rules index.
    """

    programs: tuple[Program, ...]
    columns: tuple[tuple[str, str], ...]
    col_maps: tuple[tuple[int, ...], ...]          # program's column index -> set's
    luts: tuple[tuple[int, list, str], ...]        # (set column, sexpr, result type)
    lut_maps: tuple[tuple[int, ...], ...]          # program's LUT index -> set's
    kbase: tuple[int, ...]                         # program's constants start here
    kval: np.ndarray
    kvalid: np.ndarray
    strict: np.ndarray                             # uint8 per program
    shape: str                                     # JSON: everything but constant values

    @classmethod
    def build(cls, programs: Sequence[Program]) -> "RuleSet":
        columns: dict[tuple[str, str], int] = {}
        luts: dict[tuple[int, str], int] = {}
        lut_list: list[tuple[int, list, str]] = []
        col_maps, lut_maps, kbase = [], [], []
        base = 0
        for prog in programs:
            col_maps.append(tuple(columns.setdefault(tuple(c), len(columns)) for c in prog.columns))
            lmap = []
            for ci, sexpr, result in prog.luts:
                gcol = col_maps[-1][ci]
                key = (gcol, json.dumps([sexpr, result]))
                if key not in luts:
                    luts[key] = len(lut_list)
                    lut_list.append((gcol, sexpr, result))
                lmap.append(luts[key])
            lut_maps.append(tuple(lmap))
            kbase.append(base)
            base += len(prog.kval)
        kval = np.concatenate([p.kval for p in programs] + [np.zeros(1, np.int64)])
        kvalid = np.concatenate([p.kvalid for p in programs] + [np.zeros(1, np.uint8)])
        shape = json.dumps({
            "columns": [t for _, t in columns],
            "luts": len(lut_list),
            "programs": [{"code": p.code.tolist(), "kvalid": p.kvalid.tolist(), "nregs": p.nregs,
                          "cols": cm, "luts": lm, "divisors": sorted(divisors(p).items())}
                         for p, cm, lm in zip(programs, col_maps, lut_maps)],
        }, separators=(",", ":"))
        return cls(tuple(programs), tuple(columns), tuple(col_maps), tuple(lut_list),
                   tuple(lut_maps), tuple(kbase), kval, kvalid,
                   np.array([p.strict for p in programs], dtype=np.uint8), shape)

    @property
    def instructions(self) -> int:
        return sum(len(p.code) for p in self.programs)

