"""The fused JIT tier gives the VM's answers: counts, NULL verdicts and row ids.

Kernels compile once per rule-set shape; the module shares one temporary kernel cache
(BATCHAOT_CACHE_DIR) so the file stays well under a minute, and the cache test runs
two fresh processes against a cache of its own.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchaot
from batchaot.compiler.opcodes import Op
from batchaot.compiler.program import Program
from batchaot.engine import fused, run, vm
from batchaot.engine.buffers import Buffers
from batchaot.engine.columns import Loaded
from batchaot.engine.vm import bitmap_rows
from conftest import random_table
from test_golden import CASES, GOLDEN_SCHEMA, HERE as GOLDEN_DIR
from test_optimizer_fuzz import OP, OPTIMIZER, SPECIAL_FLOATS, SPECIAL_INTS, TypedGenerator
from test_semantics_duckdb import CONSTRUCTS, _TABLES, predicates

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("kernel_cache")


def answers(engine: str, programs: list[Program], batches, threads: int = 1) -> list[tuple]:
    with run.Executor(engine=engine, threads=threads) as ex:
        outcomes = ex.evaluate(programs, batches)
        if engine != "vm" and any(not p.zero_tick for p in programs):
            assert ex.stats["fused_batches"] == len(batches) and not ex.stats["vm_batches"]
    return [(o.rows, o.violations, o.nulls, o.row_ids.tolist()) for o in outcomes]


def compile_all(preds: list[str], schema: pa.Schema, strict: bool) -> list[Program]:
    return [batchaot.compile(p, schema, name=f"r{k}", strict=strict) for k, p in enumerate(preds)]


def assert_same_as_vm(programs: list[Program], table: pa.Table, chunk: int) -> None:
    batches = table.to_batches(max_chunksize=chunk)
    want = answers("vm", programs, batches)
    got = answers("fused", programs, batches)
    for prog, w, g in zip(programs, want, got):
        assert g == w, (prog.source, prog.strict)


# -- SQL rules: golden cases and every construct ----------------------------------------

GOLDEN = [(GOLDEN_DIR / f"{case}.sql").read_text().strip() for case in CASES]


@pytest.mark.parametrize("strict", [False, True])
def test_golden_rules_match_the_vm(strict: bool) -> None:
    programs = compile_all(GOLDEN, GOLDEN_SCHEMA, strict)
    # batches with NULLs and without: the kernel variant must cover both
    table = pa.concat_tables([random_table(3, n=1500, null_rate=0.0), random_table(4, n=2500)])
    assert_same_as_vm(programs, table, chunk=1000)


@pytest.mark.parametrize("null_rate", [0.0, 0.15])
def test_every_construct_matches_the_vm(null_rate: float) -> None:
    table = random_table(11, n=2000, null_rate=null_rate)
    for start in range(0, len(CONSTRUCTS), 20):
        preds = CONSTRUCTS[start:start + 20]
        for strict in (False, True):       # strictness is data: both share one kernel
            assert_same_as_vm(compile_all(preds, table.schema, strict), table, chunk=700)


def test_shape_kernels_match_the_vm(monkeypatch) -> None:
    """Large rule sets run on one kernel per program shape, block by block."""
    table = random_table(12, n=9000)
    preds = ["i > 0 AND f > 0", "i < 0 OR j < 0 OR b", "s LIKE 'p%' OR length(s) > 3",
             "CASE WHEN i > 0 THEN f WHEN i < -5 THEN 0 ELSE -f END >= 0", "i / j > 1",
             "coalesce(f, 0) >= 0 AND i IS NOT NULL", "NOT (i > 0 AND NULL)", "f IN (0.0, 1.5)"]
    preds += [f"{a} + {b} < {t}" for a, b, t in
              [("i", "j", 40), ("j", "i", -3), ("f", "g", 1.5), ("g", "f", 0), ("i", "i", 7)]]
    monkeypatch.setattr(fused.plan, "MAX_FUSED_INSTRUCTIONS", 0)
    monkeypatch.setattr(fused.plan, "ROW_KERNEL_INSTRUCTIONS", 0)
    for strict in (False, True):
        programs = compile_all(preds, table.schema, strict)
        assert not fused.Plan(programs).per_row
        assert_same_as_vm(programs, table, chunk=6000)


# An integer / or % by a constant K > 1 divides by the literal K in a kernel (fused.ruleset
# .divisors), guarded by the register holding K at run time: same answers as the VM and
# DuckDB for negative, inexact and extreme dividends, per-row and shape kernels alike.
DIVISION_PREDS = ["i // 7 > 3", "i % 7 <> 2", "i // 86400000000 >= j", "i % 1000000 < j",
                  "i // -3 < 5", "(j - 1) % 4 = 1", "ts >= d", "ts < d", "ts = d", "ts <> d"]


@pytest.mark.parametrize("row_kernels", [True, False])
def test_division_by_a_constant_matches_the_vm_and_duckdb(row_kernels: bool, monkeypatch, oracle) -> None:
    rng = np.random.default_rng(11)
    n = 5000
    i = rng.integers(-10**17, 10**17, n)
    i[:6] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0, -86400000000, 86400000000 - 1]
    days = rng.integers(-30000, 30000, n).astype(np.int32)
    ts = days.astype(np.int64) * 86400000000 + rng.integers(-2, 2, n) * 43200000000
    table = pa.table({"i": pa.array(i, mask=rng.random(n) < 0.05), "j": pa.array(rng.integers(-50, 50, n)),
                      "ts": pa.array(ts, pa.timestamp("us")), "d": pa.array(days, pa.date32())})
    if not row_kernels:
        monkeypatch.setattr(fused.plan, "MAX_FUSED_INSTRUCTIONS", 0)
        monkeypatch.setattr(fused.plan, "ROW_KERNEL_INSTRUCTIONS", 0)
    programs = compile_all(DIVISION_PREDS, table.schema, strict=False)
    assert any(fused.ruleset.divisors(p) for p in programs)
    assert_same_as_vm(programs, table, chunk=3000)
    got = [v for _, v, _, _ in answers("fused", programs, table.to_batches(max_chunksize=3000))]
    assert got == [oracle.counts(table, pred)[0] for pred in DIVISION_PREDS]


# -- random bytecode: any forward-jump pattern, against the VM one row at a time ---------

COLUMN_TYPES = {"i": "bigint", "f": "double", "b": "boolean"}


def _random_loaded(rng, kinds: str, n: int) -> list[Loaded]:
    out = []
    for kind in kinds:
        if kind == "i":
            words = np.where(rng.random(n) < 0.4, rng.choice(SPECIAL_INTS, n), rng.integers(-20, 20, n))
        elif kind == "f":
            floats = np.where(rng.random(n) < 0.4, rng.choice(SPECIAL_FLOATS, n),
                              np.round(rng.normal(0, 10, n), 2))
            words = floats.astype(np.float64).view(np.int64)
        else:
            words = (rng.random(n) < 0.6).astype(np.int64)
        valid = rng.random(n) >= rng.choice([0.0, 0.3])
        bitmap = np.packbits(valid, bitorder="little")
        out.append(Loaded(np.ascontiguousarray(words, dtype=np.int64), bitmap, -1 if valid.all() else 0))
    return out


def _vm_row_by_row(prog: Program, cols: list[Loaded], n: int) -> tuple[int, int, list[int]]:
    """The VM with one row per block: what a per-row jump means."""
    R = np.zeros((prog.nregs, vm.BLOCK), np.int64)
    V = np.zeros((prog.nregs, vm.BLOCK), np.uint8)
    bits = np.empty(1, np.uint64)
    no_luts = Buffers([], np.int64)
    nviol, nnull, rows = 0, 0, []
    for i in range(n):
        words = Buffers([c.words[i:i + 1] for c in cols], np.int64)
        bitmaps = Buffers([c.bitmap for c in cols], np.uint8)
        offs = np.array([c.bitoff + i if c.bitoff >= 0 else -1 for c in cols], np.int64)
        v, z, _ = vm.run(prog.code, prog.kval, prog.kvalid, words.addr, words.lens, bitmaps.addr, bitmaps.lens,
                         offs, no_luts.addr, no_luts.lens, no_luts.addr, no_luts.lens, 1, R, V, prog.strict, bits)
        nviol, nnull = nviol + v, nnull + z
        rows += [i] if bits[0] & 1 else []
    return nviol, nnull, rows


def _random_programs(rng, count: int) -> list[Program]:
    kinds = "ifbifb"                              # test_optimizer_fuzz.COLUMN_TYPES
    columns = tuple((f"c{k}", COLUMN_TYPES[t]) for k, t in enumerate(kinds))
    programs = []
    while len(programs) < count:
        raw = TypedGenerator(rng).program()
        if any(row[0] == OP["LUT"] for row in raw["code"]):
            continue                              # random codes would index past a table
        if len(programs) % 2:                     # optimized: threaded, non-nesting jumps
            res = OPTIMIZER.optimize(**raw)
            code, kval, kvalid = res.code, res.kval, res.kvalid
        else:                                     # raw: RETs in the middle, dead code
            code, kval, kvalid = raw["code"], raw["kval"], raw["kvalid"]
        programs.append(Program(
            name=f"p{len(programs)}", source="random", strict=bool(rng.random() < 0.5),
            columns=columns, luts=(), nregs=raw["nregs"], code=np.asarray(code, np.int32),
            kval=np.asarray(kval, np.int64), kvalid=np.asarray(kvalid, np.uint8),
            code0=np.asarray(raw["code"], np.int32), kval0=np.asarray(raw["kval"], np.int64),
            kvalid0=np.asarray(raw["kvalid"], np.uint8)))
    return programs


def _crossing(code: np.ndarray) -> bool:
    skips = fused.emitter._skippers(code)
    return any(a < c < b < d for a, b in skips for c, d in skips)


def test_random_bytecode_matches_the_vm_row_by_row() -> None:
    rng = np.random.default_rng(2056)
    programs = _random_programs(rng, 24)
    assert any(_crossing(p.code) for p in programs), "no jumps that cross: pick another seed"
    n = 300
    cols = _random_loaded(rng, "ifbifb", n)
    plan = fused.Plan(programs, strategy="row")
    bits = np.empty((len(programs), (n + 63) >> 6), np.uint64)
    counts, _ = plan.bind(cols, []).run(0, n, 0, fused.Scratch(len(programs), pairs=64), bits)
    for k, prog in enumerate(programs):
        got = (int(counts[k, 0]), int(counts[k, 1]), bitmap_rows(bits[k], n).tolist())
        assert got == _vm_row_by_row(prog, cols, n), prog.disassemble("after")


def test_every_opcode_has_a_translation() -> None:
    prog = SimpleNamespace(code=np.zeros((2, 4), np.int32), kvalid=np.ones(1, np.uint8), name="x")
    for op in Op:
        emitter = fused.codegen._ShapeEmitter(prog, [True], set(), [])
        emitter.instruction(0, op, 1, 1 if op in (Op.JMP, Op.JALLF, Op.JALLT, Op.JNONET) else 0, 0, last=True)


# -- against DuckDB ------------------------------------------------------------------------

@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(preds=st.lists(predicates(), min_size=6, max_size=10), seed=st.integers(0, 3))
def test_random_predicates_match_duckdb(preds: list[str], seed: int, oracle) -> None:
    table = _TABLES[seed]
    expected = {}
    for p in dict.fromkeys(preds):
        try:
            expected[p] = oracle.counts(table, p)
        except duckdb.Error:
            continue                              # no oracle (e.g. integer overflow)
    preds = list(expected)
    lax = answers("fused", compile_all(preds, table.schema, False), table.to_batches(max_chunksize=100))
    strict = answers("fused", compile_all(preds, table.schema, True), table.to_batches(max_chunksize=100))
    for p, a, b in zip(preds, lax, strict):
        assert (a[1], b[1]) == expected[p], p


# -- threads, the cache key, the disk cache, engine choice ---------------------------------

@pytest.mark.parametrize("engine", ["vm", "fused"])
def test_threads_give_the_serial_answer(engine: str, monkeypatch) -> None:
    monkeypatch.setattr(run, "PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(run, "PARALLEL_LUT_VALUES", 4)      # string lookup tables in slices too
    table = random_table(21, n=5000)
    preds = CONSTRUCTS[::5]
    assert any("LIKE" in p or "s " in p for p in preds)
    programs = compile_all(preds, table.schema, False)
    batches = table.to_batches(max_chunksize=2100)
    assert answers(engine, programs, batches, threads=2) == answers(engine, programs, batches, threads=1)
    assert answers(engine, programs, batches, threads=3) == answers("vm", programs, batches)


def test_constants_are_not_in_the_cache_key() -> None:
    schema = GOLDEN_SCHEMA
    k3, k4, le = (fused.RuleSet.build([batchaot.compile(s, schema)]) for s in ("i < 3", "i < 4", "i <= 3"))
    assert fused.kernel_key(k3, [True]) == fused.kernel_key(k4, [True])
    assert fused.kernel_key(k3, [True]) != fused.kernel_key(le, [True])
    assert fused.kernel_key(k3, [True]) != fused.kernel_key(k3, [False])


def test_no_nulls_variant_has_no_validity_code() -> None:
    rset = fused.RuleSet.build([batchaot.compile("i > 0 AND f < 10", GOLDEN_SCHEMA)])
    lean, full = fused.generate(rset, [False, False]), fused.generate(rset, [True, True])
    lean = lean.split("def kernel", 1)[1]                # the kernel, not its imports
    assert "m0" not in lean and "y0" not in lean and "valid_word" not in lean and " & p0v" not in lean
    assert "valid_word(m0" in full and "y0" in full


def test_kernel_sources_open_with_a_key_to_their_names() -> None:
    prog = batchaot.compile("i > 0 AND f < 10", GOLDEN_SCHEMA)
    for src in (fused.generate(fused.RuleSet.build([prog]), [True, True]), fused.generate_shape(prog, [True, True])):
        head = src.split("import numpy", 1)[0]
        assert "# Key (" in head and ("p<k>r<r>" in head or "p0r<r>" in head)
        assert all(line.startswith("#") for line in head.strip().splitlines())   # comments only


def test_kernel_source_lands_in_the_cache_dir_whole(kernel_cache) -> None:
    prog = batchaot.compile("j * 3 - i <> 7", GOLDEN_SCHEMA)
    rset = fused.RuleSet.build([prog])
    kernel = fused.get_kernel(rset, [True, True])
    assert kernel.path.parent == kernel_cache / "kernels" and kernel.path.name == f"bk_{kernel.key}.py"
    assert kernel.path.read_text() == fused.generate(rset, kernel.nullable)
    assert not list(kernel.path.parent.glob(".bk_*"))    # no temporary file left behind
    assert fused.get_kernel(rset, [True, True]) is kernel


_CACHE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from conftest import random_table
    import batchaot
    from batchaot.engine import fused, run
    table = random_table(5, n=3000)
    preds = ["i > 3 AND f < 2.5", "s LIKE '%a%' OR d > '2024-02-01'", "i % j = 0", "abs(g) < 2"]
    programs = [batchaot.compile(p, table.schema, name=p) for p in preds]
    outcomes = run.Executor(engine="fused").evaluate(programs, table.to_batches(max_chunksize=1000))
    print(json.dumps({{"stats": dict(fused.STATS), "violations": [o.violations for o in outcomes]}}))
""")


def test_a_fresh_process_loads_the_kernel_from_disk(tmp_path) -> None:
    env = dict(os.environ, BATCHAOT_CACHE_DIR=str(tmp_path / "cache"))
    script = _CACHE_SCRIPT.format(tests=str(Path(__file__).parent))

    def fresh_process() -> dict:
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = fresh_process(), fresh_process()
    assert first["stats"].get("compiles", 0) == 1 and first["stats"].get("sources_written") == 1
    assert second["stats"].get("compiles", 0) == 0 and second["stats"].get("disk_hits") == 1
    assert not second["stats"].get("sources_written")
    assert first["violations"] == second["violations"]


def test_engine_and_threads_are_checked() -> None:
    with pytest.raises(ValueError, match="engine"):
        run.Executor(engine="jit")
    with pytest.raises(ValueError, match="threads"):
        run.Executor(threads=0)


def test_auto_runs_small_data_on_the_vm_and_cached_kernels_fused(monkeypatch) -> None:
    table = random_table(8, n=4000)
    programs = compile_all(["i > 0 AND f > 0", "s = 'paid'"], table.schema, False)
    with run.Executor(engine="auto") as ex:
        ex.evaluate(programs, table.to_batches())
        assert ex.stats == {"vm_batches": 1}           # 4,000 rows never pay for a compile
    answers("fused", programs, table.to_batches())       # now the kernel is compiled
    monkeypatch.setattr(run, "AUTO_MIN_ROWS", 1000)
    with run.Executor(engine="auto") as ex:
        ex.evaluate(programs, table.to_batches())
        assert ex.stats == {"fused_batches": 1}
    fresh = compile_all(["i - j > 3 OR g < 0"], table.schema, False)
    monkeypatch.setattr(run, "AUTO_MIN_ROWS", 100_000)
    big = pa.concat_tables([table] * 30).combine_chunks()   # 120,000 rows: not worth a compile
    with run.Executor(engine="auto") as ex:
        ex.evaluate(fresh, big.to_batches(max_chunksize=50_000))
        assert ex.stats == {"vm_batches": 3}


def test_auto_compiles_in_the_background_for_the_next_run(monkeypatch) -> None:
    table = random_table(9, n=6000)
    programs = compile_all(["i * 2 > j OR g IS NULL", "round(g, 1) <> 0.5 AND j <> 4"], table.schema, True)
    batches = table.to_batches(max_chunksize=2000)
    monkeypatch.setattr(run, "AUTO_MIN_ROWS", 0)
    monkeypatch.setattr(run, "AUTO_BACKGROUND_ROWS", 1000)
    with run.Executor(engine="auto") as ex:
        first = [(o.violations, o.nulls, o.row_ids.tolist()) for o in ex.evaluate(programs, batches)]
    assert ex.stats["background_compiles"] == 1 and ex.stats["vm_batches"] >= 1
    with run.Executor(engine="auto") as ex:                # the next run finds the kernel ready
        second = [(o.violations, o.nulls, o.row_ids.tolist()) for o in ex.evaluate(programs, batches)]
        assert ex.stats == {"fused_batches": 3}
    assert first == second


# -- physical layouts: narrow integers read in place, identity string columns ----------------

def _narrow_table(n: int = 6000) -> pa.Table:
    rng = np.random.default_rng(5)

    def mask() -> np.ndarray:
        return rng.random(n) < 0.1

    def ints(dtype) -> pa.Array:
        info = np.iinfo(dtype)
        edge = np.array([info.min, info.max, 0, 1, -1 if info.min < 0 else 2], dtype=dtype)
        values = np.where(rng.random(n) < 0.2, rng.choice(edge, n), rng.integers(max(info.min, -50), 50, n))
        return pa.array(values.astype(dtype), mask=mask())

    words = np.array(["alpha", "beta", "gamma", "delta"])
    return pa.table({
        "i8": ints(np.int8), "i16": ints(np.int16), "i32": ints(np.int32),
        "u8": ints(np.uint8), "u16": ints(np.uint16), "u32": ints(np.uint32),
        "d": pa.array(rng.integers(19000, 19400, n).astype(np.int32), pa.date32(), mask=mask()),
        "b": pa.array(rng.random(n) < 0.5, mask=mask()),
        "low": pa.array(rng.choice(words, n), mask=mask()),                        # encoded
        "uniq": pa.array([f"user{k}@{'x' if k % 7 else ''}mail.test" for k in range(n)], mask=mask()),  # identity
    })


NARROW_RULES = [
    "i8 + i16 > -100", "i32 * 2 <> u32", "u8 BETWEEN 1 AND 200", "u16 % 7 <> 3",
    "i8 < u8 OR u16 > 1000", "d >= DATE '2022-01-01'", "b OR i32 > 0", "NOT b AND u32 > 10",
    "low IN ('alpha', 'gamma')", "uniq LIKE '%@x%'", "regexp_matches(uniq, '^[^@]+@[^@]+$')",
    "length(uniq) < 20 OR low = 'beta'",
]


def test_narrow_and_identity_columns_match_the_vm_and_duckdb(oracle) -> None:
    table = _narrow_table()
    batch = table.to_batches()[0]
    inputs = run._BatchInputs(batch)
    layouts = {name: inputs.column(name, str(batchaot.compiler.types.from_arrow(batch.schema.field(name).type))).layout
               for name in table.column_names}
    assert layouts == {"i8": "i8", "i16": "i16", "i32": "i32", "u8": "u8", "u16": "u16", "u32": "u32",
                       "d": "i32", "b": "u8", "low": "u16", "uniq": "id"}
    programs = compile_all(NARROW_RULES, table.schema, False)
    batches = table.to_batches(max_chunksize=2500)
    want = answers("vm", programs, batches)
    assert answers("fused", programs, batches) == want
    assert answers("fused", programs, batches, threads=2) == want
    # batchaot's integers are all BIGINT; DuckDB would compute i8 + i16 in SMALLINT
    wide = table.cast(pa.schema([pa.field(f.name, pa.int64()) if pa.types.is_integer(f.type) else f
                                 for f in table.schema]))
    for rule, (_, violations, _, _) in zip(NARROW_RULES, want):
        assert violations == oracle.counts(wide, rule)[0], rule


def test_narrow_layouts_are_in_the_kernel_and_its_key() -> None:
    table = _narrow_table(100)
    prog = batchaot.compile("i32 > 0 AND low = 'beta' AND regexp_matches(uniq, 'x')", table.schema)
    rset = fused.RuleSet.build([prog])
    assert [c for c, _ in rset.columns] == ["i32", "low", "uniq"]
    source = fused.generate(rset, [True] * 3, ["i32", "u16", "id"])
    assert "R32, RU16" in source and "np.int64(w0[i])" in source and "x2 = i" in source
    assert not re.search(r"\bw2\b", source)         # an identity column is no argument
    keys = {fused.kernel_key(rset, [True] * 3, layout)
            for layout in (["i32", "u16", "id"], ["i64", "u16", "id"], ["i32", "i32", "id"])}
    assert len(keys) == 3


def test_auto_keeps_a_very_long_program_on_the_vm(monkeypatch) -> None:
    table = random_table(9, n=4000)
    wide = " OR ".join(f"i = {k}" for k in range(200))        # hundreds of instructions
    programs = compile_all([wide, "i > 0"], table.schema, False)
    assert max(len(p.code) for p in programs) > run.AUTO_MAX_PROGRAM
    monkeypatch.setattr(run, "AUTO_MIN_ROWS", 1000)
    with run.Executor(engine="auto") as ex:
        ex.evaluate(programs, table.to_batches())
        assert ex.stats == {"vm_batches": 1}
