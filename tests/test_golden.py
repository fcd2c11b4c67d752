"""Golden listings: rule text in, bytecode before/after optimization out.

Each tests/fixtures/golden/NAME.sql holds one rule (compiled against GOLDEN_SCHEMA);
NAME.out beside it holds the expected disassembly. After an intended change to the
compiler or optimizer, regenerate with BATCHAOT_UPDATE_GOLDEN=1 and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

import batchaot

HERE = Path(__file__).parent / "fixtures" / "golden"
GOLDEN_SCHEMA = pa.schema([("i", pa.int64()), ("j", pa.int32()), ("f", pa.float64()),
                           ("dec", pa.decimal128(10, 2)), ("s", pa.string()),
                           ("d", pa.date32()), ("ts", pa.timestamp("us")), ("b", pa.bool_())])
CASES = sorted(p.stem for p in HERE.glob("*.sql"))


def side_by_side(left: str, right: str) -> str:
    a, b = left.splitlines(), right.splitlines()
    width = max(map(len, a)) + 3
    rows = [f"{x:<{width}}{y}".rstrip() for x, y in zip(a + [""] * len(b), b + [""] * len(a))]
    return "\n".join(rows[:max(len(a), len(b))])


def render(sql: str) -> str:
    prog = batchaot.compile(sql, GOLDEN_SCHEMA, name="rule")
    removed = ", ".join(f"{k}={v}" for k, v in prog.removed.items() if v) or "none"
    listing = side_by_side(prog.disassemble("before"), prog.disassemble("after"))
    return (f"-- {sql}\n{listing}\n; removed: {removed}\n"
            f"; verdict: {prog.verdict}, zero-tick: {prog.zero_tick}\n")


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_golden_listing(case: str) -> None:
    sql = (HERE / f"{case}.sql").read_text().strip()
    got = render(sql)
    expected_path = HERE / f"{case}.out"
    if os.environ.get("BATCHAOT_UPDATE_GOLDEN"):
        expected_path.write_text(got)
    assert expected_path.exists(), f"missing {expected_path.name}: run with BATCHAOT_UPDATE_GOLDEN=1"
    assert got == expected_path.read_text()
