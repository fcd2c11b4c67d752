"""The kernels compiled ahead of time (engine/aot.py): each export gives its JIT twin's
answer, byte for byte, on every signature; arguments of another dtype or layout never
reach an export; a small run in a fresh process loads no Numba and gives DuckDB's counts,
a larger one loads it; an untrusted module is never loaded. (Random rules against DuckDB
through the exports: tests/test_differential.py, `ahead_of_time`.)"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchaot
from batchaot.engine import aot, strings

pytestmark = pytest.mark.usefixtures("kernel_cache", "aot_module")

ALPHABET = ["a", "b", "@", ".", "%", "_", "\\", "-", " ", "\n", "é", "日", "😀", "x"]


@pytest.fixture
def twins():
    """Every aot.call runs the JIT dispatcher and the export on copies of its arguments
    and compares results and every array afterwards (outputs and scratch alike)."""
    with aot.twins() as seen:
        yield seen


def random_strings(rng: np.random.Generator, n: int, large: bool) -> pa.Array:
    values = ["".join(rng.choice(ALPHABET, int(rng.integers(0, 12)))) for _ in range(n)]
    return pa.array(values, pa.large_string() if large else pa.string(), mask=rng.random(n) < 0.1)


SEXPRS = [["like", ["col"], "%@%.%", False, None], ["like", ["col"], "a_b%", False, None],
          ["regexp", ["col"], "^[^@]+@[^@]+$"], ["regexp", ["col"], "(a|@)+\\."],
          ["starts_with", ["col"], "ab"], ["in", ["col"], ["a", "", "@", "é@日"]],
          ["cmp", "ne", ["col"], ["lit", "a"]], ["length", ["col"]]]


def test_every_export_equals_its_jit_twin(twins) -> None:
    """String kernels (string and large_string offsets, wide and narrow tables, array
    offsets), the encoder, the VM on random rules with NULLs and overflows, and reading
    the violation bitmaps back."""
    rng = np.random.default_rng(7)
    for large in (False, True):
        values = random_strings(rng, 3000, large)
        for arr in (values, values.slice(17, 900)):
            for sexpr in SEXPRS:
                plan = strings.fast_plan(sexpr)
                assert plan is not None, sexpr
                for dtype in (np.int64, np.uint8):
                    n = len(arr)
                    words, valid = np.full(n + 1, 7, dtype), np.full(n + 1, 7, np.uint8)
                    strings.run_fast(plan, strings.string_buffers(arr), words, valid, 0, n)
            assert strings.encode(arr) is not None
    n = 20_000
    table = pa.table({
        "a": pa.array(rng.integers(-2**62, 2**62, n), mask=rng.random(n) < 0.1),
        "b": pa.array(rng.integers(-5, 5, n)),
        "f": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.1),
        "s": random_strings(rng, n, False),
        "c": pa.array(rng.choice(["new", "paid", "", "é"], n)).dictionary_encode()})
    rules = [{"name": "sum", "check": "a + a > b"}, {"name": "product", "check": "a * b >= 0"},
             {"name": "div", "check": "a // b <> 3 OR f < 0.5"}, {"name": "email", "check": "s LIKE '%@%'"},
             {"name": "status", "check": "c IN ('new', 'paid')"}, {"name": "len", "check": "length(s) < 9"},
             {"name": "strict", "check": "f > -1", "strict": True}]
    result = batchaot.validate(table, rules)          # 20,000 rows: the VM
    assert result.violations.num_rows == sum(r.outcome.violations for r in result.rules) > 0
    names = {name for name, _ in twins}
    assert names == set(aot.ENTRIES), names
    # both offset widths of the string kernels, and both table widths, ran on the exports
    exports = {export for _, export in twins}
    for name, entry in aot.ENTRIES.items():
        if entry.module.endswith("strings.kernels") and name != "encode_kernel":
            assert {f"{name}__{k}" for k in range(4)} <= exports, name


def test_verify_holds_every_export_to_its_twin_and_catches_a_wrong_one(monkeypatch) -> None:
    compared = aot.verify()
    assert {name for name, _ in compared} == set(aot.ENTRIES)
    exported = aot.exported

    def one_bit_off(name, args):
        export = exported(name, args)
        if name != "vm_run" or export is None:
            return export

        def wrong(*a):
            counts = export(*a)
            a[-1][0] ^= np.uint64(1)          # row 0's verdict flipped in the bitmap
            return counts
        wrong.__name__ = export.__name__
        return wrong

    monkeypatch.setattr(aot, "exported", one_bit_off)
    with pytest.raises(aot.Mismatch, match="vm_run__0 left argument 16"):
        aot.verify()


def test_arguments_of_another_type_never_reach_an_export(monkeypatch) -> None:
    offsets = np.array([0, 1, 3], np.int32)
    data = np.frombuffer(b"abc", np.uint8)            # read-only, as Arrow's buffers
    good = (offsets, data, data, -1, 0, 2, np.zeros(3, np.int64), np.zeros(3, np.uint8))
    assert aot.exported("length_kernel", good) is not None
    read_only = np.zeros(3, np.int64)
    read_only.flags.writeable = False
    unaligned = np.frombuffer(bytearray(25), np.int64, count=3, offset=1)
    bad_args = [(0, offsets.astype(np.float64)), (6, np.zeros(3, np.int32)), (6, np.zeros(6, np.int64)[::2]),
                (6, np.zeros((3, 1), np.int64)), (0, list(offsets)), (6, read_only), (6, unaligned),
                (3, -1.0), (3, 2**63), (4, True), (4, np.uint64(2**64 - 1))]
    monkeypatch.setattr(aot, "_forced", True)
    for i, bad in bad_args:
        args = good[:i] + (bad,) + good[i + 1:]
        assert aot.exported("length_kernel", args) is None, (i, bad)
        with pytest.raises(TypeError, match="no ahead-of-time export of length_kernel"):
            aot.kernel("length_kernel", args)
    assert aot.exported("length_kernel", good[:-1]) is None
    assert aot.kernel("length_kernel", good) is aot.exported("length_kernel", good)


def test_a_build_deletes_only_modules_of_other_fingerprints_a_week_old(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path))
    aot.folder().mkdir(parents=True)
    current = aot.module_path("vm_run")
    old, recent = aot.folder() / "batchaot_aot_0ld_vm_run.so", aot.folder() / "batchaot_aot_n3w_vm_run.so"
    for path in (current, old, recent):
        path.write_bytes(b"x")
    week_ago = os.path.getmtime(old) - aot.STALE_AFTER_S - 60
    os.utime(old, (week_ago, week_ago))
    os.utime(current, (week_ago, week_ago))
    aot._remove_stale([current])
    assert (current.exists(), old.exists(), recent.exists()) == (True, False, True)


def test_an_untrusted_module_is_not_loaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path))
    aot.forget()
    try:
        target = aot.module_path("bitmap_rows")
        target.parent.mkdir(parents=True)
        target.write_bytes(b"not a module")
        os.chmod(target.parent, 0o777)            # anyone may write there: never loaded
        assert aot._load("bitmap_rows") is False
        aot.forget()
        os.chmod(target.parent, stat.S_IRWXU)     # ours, but not a module: JIT, no error
        assert aot._load("bitmap_rows") is False
        assert aot.exported("bitmap_rows", (np.zeros(1, np.uint64), 0)) is None
        assert not aot.available()
    finally:
        aot.forget()


SCRIPT = """
import json, sys
import batchaot
from batchaot.engine import aot, parallel
aot.AOT_MAX_ROWS = int(sys.argv[3])
if len(sys.argv) > 4:                        # small morsels: several threads at once
    from batchaot.runtime.unit import UnitRunner
    UnitRunner.morsel_rows = int(sys.argv[4])
threads = parallel.threads()
result = batchaot.validate(sys.argv[1], json.loads(sys.argv[2]))
counts = [r.outcome.violations for r in result.rules]
loaded = "numba" in sys.modules
import numba
print(json.dumps({"counts": counts, "numba": loaded, "threads": threads,
                  "numba_threads": numba.config.NUMBA_NUM_THREADS}))
"""

RULES = [{"name": "positive", "check": "amount > 0"},
         {"name": "known", "check": "status IN ('new', 'paid', 'shipped')"},
         {"name": "email", "check": "regexp_matches(email, '^[^@]+@[^@]+$')"},
         {"name": "short", "check": "length(email) < 12"},
         {"name": "product", "check": "amount * quantity < 9000"}]


def _orders(path: str, n: int, row_group: int | None = None) -> None:
    rng = np.random.default_rng(3)
    pq.write_table(pa.table({
        "amount": pa.array(rng.integers(-10, 1000, n), mask=rng.random(n) < 0.05),
        "quantity": pa.array(rng.integers(0, 20, n)),
        "status": pa.array(rng.choice(["new", "paid", "shipped", "lost", ""], n), mask=rng.random(n) < 0.05),
        "email": pa.array([f"u{i % 977}@x.io" if i % 13 else f"bad{i}" for i in range(n)])}), path,
        row_group_size=row_group)


def _run(path: str, max_rows: int, env: dict | None = None, morsel_rows: int | None = None) -> dict:
    extra = [str(morsel_rows)] if morsel_rows else []
    done = subprocess.run([sys.executable, "-c", SCRIPT, path, json.dumps(RULES), str(max_rows), *extra],
                          capture_output=True, text=True, env=env or dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_small_run_loads_no_numba_and_a_large_one_does(tmp_path) -> None:
    path = str(tmp_path / "orders.parquet")
    _orders(path, 30_000)
    con = duckdb.connect()
    want = [con.execute(f"SELECT count(*) FILTER (WHERE NOT ({r['check']})) FROM read_parquet('{path}')").fetchone()[0]
            for r in RULES]
    small = _run(path, 1_000_000)
    assert small["counts"] == want and small["numba"] is False
    large = _run(path, 1_000)                  # past AOT_MAX_ROWS: Numba, the JIT and threads
    assert large["counts"] == want and large["numba"] is True
    switched_off = _run(path, 1_000_000, dict(os.environ, BATCHAOT_AOT="0"))
    assert switched_off["counts"] == want and switched_off["numba"] is True


AGAIN = """
import json, sys
import batchaot
from batchaot.engine import aot
aot.AOT_MAX_ROWS = 50_000
loaded = []
for _ in range(2):
    result = batchaot.validate(sys.argv[1], json.loads(sys.argv[2]))
    loaded.append(("numba" in sys.modules, [r.outcome.violations for r in result.rules]))
print(json.dumps(loaded))
"""


def test_a_long_lived_process_moves_on_to_numba(tmp_path) -> None:
    """The rows on the exports count over the process's life: a second small run that
    would take them past AOT_MAX_ROWS loads Numba (and gives the same counts)."""
    path = str(tmp_path / "orders.parquet")
    _orders(path, 30_000)
    done = subprocess.run([sys.executable, "-c", AGAIN, path, json.dumps(RULES)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (first_numba, first), (second_numba, second) = json.loads(done.stdout.strip().splitlines()[-1])
    assert (first_numba, second_numba) == (False, True) and first == second


def test_morsel_threads_of_a_small_run_stay_on_the_exports(tmp_path) -> None:
    """Several morsel threads ask for the modules at once, each with its own Executor:
    none of them loads Numba while the run is within AOT_MAX_ROWS, and one beyond it
    loads Numba before any of them starts."""
    path = str(tmp_path / "orders.parquet")
    _orders(path, 240_000, row_group=10_000)
    env = dict(os.environ, NUMBA_NUM_THREADS="4")
    con = duckdb.connect()
    want = [con.execute(f"SELECT count(*) FILTER (WHERE NOT ({r['check']})) FROM read_parquet('{path}')").fetchone()[0]
            for r in RULES]
    for _ in range(3):
        small = _run(path, 1_000_000, env, morsel_rows=20_000)
        assert small["counts"] == want and small["numba"] is False and small["threads"] == 4
    large = _run(path, 100_000, env, morsel_rows=20_000)
    assert large["counts"] == want and large["numba"] is True


@pytest.mark.parametrize("setting", [None, "1", "3"])
def test_thread_count_without_numba_is_numbas(tmp_path, setting) -> None:
    path = str(tmp_path / "orders.parquet")
    _orders(path, 100)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    if setting:
        env["NUMBA_NUM_THREADS"] = setting
    got = _run(path, 1_000_000, env)
    assert got["threads"] == got["numba_threads"]
    if setting:
        assert got["threads"] == int(setting)
