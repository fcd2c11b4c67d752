"""batchaot's VM and fused tiers against DuckDB and pyarrow.compute, 1 and 2 threads.

    python benchmarks/bench_engines.py [--rows 10000000] [--repeat 3] [--scale 10,100,1000]

Part 1, on one in-memory Arrow table of synthetic orders (batchaot.samples.orders):
the row rules of jobs/demo.yaml, as a numeric set (no string columns) and the mixed
set (all of them). Part 2, rule-count scaling: a table of 10 float columns (1% NULLs)
and 10 / 100 / 1,000 generated rules ``c<a> + c<b> < t`` (few violations, as in real
data). Every timed batchaot pass counts violations and NULL verdicts and collects the
violating row numbers. Fused-kernel compile times are measured cold (an empty kernel
cache), from the disk cache in a warm process, and in a fresh process. All engines
must agree on every count. Prints tables with ratios and writes JSON to
benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import duckdb
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import batchaot
from batchaot.api import BATCH_ROWS, compile_rules, load_rule_specs
from batchaot.engine import fused, run
from batchaot.engine.run import Executor
from batchaot.samples import orders
from timing import best_of, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "..", "jobs", "demo.yaml")
STRING_COLUMNS = {"status", "email"}



# -- engines -----------------------------------------------------------------------------

def run_batchaot(table: pa.Table, programs, engine: str, threads: int) -> list[int]:
    with Executor(engine=engine, threads=threads) as ex:
        outcomes = ex.evaluate(programs, table.to_batches(max_chunksize=BATCH_ROWS))
    return [o.violations for o in outcomes]


def run_duckdb(table: pa.Table, preds: list[str], threads: int) -> list[int]:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET error_on_division_by_zero = false")
    con.register("t", table)
    sql = ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for p in preds)
    return list(con.execute(f"SELECT {sql} FROM t").fetchall()[0])


def _false_count(mask) -> int:
    """Rows where a three-valued mask is FALSE (NULL passes, as in SQL CHECK)."""
    return int(pc.sum(pc.invert(mask)).as_py() or 0)


_STATUSES = pa.array(["new", "paid", "shipped", "delivered", "cancelled", "refunded"])


def _in(col, values):
    return pc.if_else(pc.is_null(col), pa.scalar(None, pa.bool_()), pc.is_in(col, value_set=values))


def demo_masks(t: pa.Table) -> dict:
    """The demo rules written with pyarrow.compute, by rule name."""
    amount, discount, quantity = t["amount"], t["discount"], t["quantity"]
    created, shipped = t["created_at"], t["shipped_at"]
    status, email = t["status"], t["email"]
    return {
        "positive_amount": lambda: pc.greater(amount, 0),
        "known_status": lambda: _in(status, _STATUSES),
        "email_shape": lambda: pc.match_substring_regex(email, "^[^@]+@[^@]+$"),
        "quantity_range": lambda: pc.and_kleene(pc.greater_equal(quantity, 1), pc.less_equal(quantity, 100)),
        "discount_le_amount": lambda: pc.and_kleene(pc.less_equal(discount, amount),
                                                    pc.greater_equal(discount, 0)),
        "shipped_after_created": lambda: pc.or_kleene(
            pc.is_null(shipped), pc.greater_equal(shipped, pc.cast(created, pa.timestamp("us")))),
        "shipped_has_date": lambda: pc.if_else(
            pc.fill_null(_in(status, pa.array(["shipped", "delivered"])), False), pc.is_valid(shipped), True),
        "order_in_2024": lambda: pc.and_kleene(
            pc.greater_equal(created, pa.scalar(datetime.date(2024, 1, 1), pa.date32())),
            pc.less_equal(created, pa.scalar(datetime.date(2024, 12, 31), pa.date32()))),
        "legacy_margin_check": lambda: pc.or_kleene(
            pc.greater(pc.subtract(amount, discount), pc.multiply(amount, 0.5)), True),
    }


def run_pyarrow(masks: list) -> list[int]:
    return [_false_count(m()) for m in masks]


# -- fused compile times ---------------------------------------------------------------------

_FRESH = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    import batchaot
    from batchaot.engine import fused, run
    t1 = time.perf_counter()
    programs = [batchaot.Program.from_bytes(bytes.fromhex(h)) for h in json.load(open(sys.argv[1]))]
    table = pq.read_table(sys.argv[2])
    fused.group_pairs(np.zeros(1, np.int32), np.zeros(1, np.int64), 1, 1)   # numba's own start-up
    t2 = time.perf_counter()
    ex = run.Executor(engine="fused")
    inputs = run._BatchInputs(table.to_batches()[0])
    plan = ex._plan(tuple(p for p in programs if not p.zero_tick))
    cols = plan.rset.columns
    plan.bind([inputs.column(n, t) for n, t in cols],
              [inputs.lut(cols[g][0], cols[g][1], s, r) for g, s, r in plan.rset.luts])
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "numba_start_s": t2 - t1, "kernel_load_s": t3 - t2,
                      "stats": dict(fused.STATS)}))
""")


def compile_times(table: pa.Table, programs) -> dict:
    """Cold compile, warm-process disk load, and a fresh process's load of the fused kernels."""
    sample = table.slice(0, 10_000)
    live = [p for p in programs if not p.zero_tick]
    before = dict(fused.STATS)
    t0 = time.perf_counter()
    run_batchaot(sample, programs, "fused", 1)
    cold = time.perf_counter() - t0
    compiled = fused.STATS["compiles"] - before.get("compiles", 0)
    fused.forget()
    t0 = time.perf_counter()
    run_batchaot(sample, programs, "fused", 1)
    warm = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        blobs = os.path.join(tmp, "programs.json")
        with open(blobs, "w") as fh:
            json.dump([p.to_bytes().hex() for p in programs], fh)
        data = os.path.join(tmp, "sample.parquet")
        import pyarrow.parquet as pq
        pq.write_table(sample, data)
        done = subprocess.run([sys.executable, "-c", _FRESH, blobs, data], capture_output=True,
                              text=True, env=dict(os.environ), check=True)
        fresh = json.loads(done.stdout.strip().splitlines()[-1])
    plan = fused.Plan(live)
    return {"kernels_compiled": compiled, "strategy": "per-row" if plan.per_row else "shape",
            "instructions": plan.rset.instructions, "cold_s": cold, "warm_process_disk_hit_s": warm,
            "fresh_process": fresh}


# -- one comparison --------------------------------------------------------------------------

def compare(title: str, table: pa.Table, programs, preds: list[str], masks: list | None,
            repeat: int, duck_threads: tuple[int, ...] = (1, 2)) -> dict:
    rows, nrules = table.num_rows, len(programs)
    run_batchaot(table.slice(0, 10_000), programs, "vm", 1)      # load the VM's compiled code
    results: dict[str, tuple[float, list[int]]] = {}
    for threads in (1, 2):
        results[f"batchaot VM ({threads} thread{'s' * (threads > 1)})"] = best_of(
            lambda: run_batchaot(table, programs, "vm", threads), repeat)
        results[f"batchaot fused ({threads} thread{'s' * (threads > 1)})"] = best_of(
            lambda: run_batchaot(table, programs, "fused", threads), repeat)
    for threads in duck_threads:
        results[f"DuckDB ({threads} thread{'s' * (threads > 1)})"] = best_of(
            lambda: run_duckdb(table, preds, threads), repeat)
    if masks is not None:
        results["pyarrow.compute"] = best_of(lambda: run_pyarrow(masks), repeat)
    reference = results["batchaot VM (1 thread)"][1]
    for name, (_, counts) in results.items():
        if counts != reference:
            sys.exit(f"{title}: count mismatch: {name} {counts} vs batchaot VM {reference}")
    base = results["batchaot fused (1 thread)"][0]
    print(f"\n{title}: {nrules} rules, {rows:,} rows, {os.cpu_count()} cores; all engines agree "
          f"({sum(reference):,} violations)")
    print(f"{'engine':<28}{'time (s)':>10}{'Mrows/s':>10}{'ns/row·rule':>13}{'vs fused 1t':>13}")
    for name, (secs, _) in results.items():
        print(f"{name:<28}{secs:>10.3f}{rows / secs / 1e6:>10.1f}{secs / rows / nrules * 1e9:>13.3f}"
              f"{secs / base:>12.2f}x")
    return {"rules": nrules, "rows": rows, "violations": reference,
            "results": {k: {"seconds": v[0], "rows_per_s": rows / v[0],
                            "ns_per_row_rule": v[0] / rows / nrules * 1e9,
                            "vs_fused_1_thread": v[0] / base} for k, v in results.items()}}


def duckdb_sample(table: pa.Table, programs, preds: list[str]) -> dict:
    """DuckDB (1 thread) on a slice, checked against the VM on the same slice."""
    secs, counts = best_of(lambda: run_duckdb(table, preds, 1), 1)
    if counts != run_batchaot(table, programs, "vm", 1):
        sys.exit("DuckDB sample: count mismatch")
    per = secs / table.num_rows / len(preds) * 1e9
    print(f"DuckDB (1 thread) on a {table.num_rows:,}-row sample: {secs:.1f} s, {per:.2f} ns/row·rule "
          "(counts agree with the VM on the sample)")
    return {"rows": table.num_rows, "seconds": secs, "ns_per_row_rule": per}


def float_table(rows: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({f"c{k}": pa.array(rng.normal(0, 1, rows), pa.float64(), mask=rng.random(rows) < 0.01)
                     for k in range(10)})


def generated_rules(count: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a, b = rng.choice(10, 2, replace=False)
        out.append(f"c{a} + c{b} < {round(float(rng.uniform(3.5, 5.0)), 2)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", default="10,100,1000", help="rule counts for the scaling run ('' to skip)")
    ap.add_argument("--duckdb-max-rules", type=int, default=100,
                    help="larger generated sets time DuckDB on a sample only (it needs minutes)")
    ap.add_argument("--duckdb-sample-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    # a cold kernel cache of our own, so compile times are first-compile times
    cache = tempfile.mkdtemp(prefix="batchaot-bench-kernels-")
    os.environ["BATCHAOT_CACHE_DIR"] = cache
    try:
        bench(args, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def bench(args: argparse.Namespace, cache: str) -> None:
    doc = {"benchmark": "engines", "rows": args.rows, "cores": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version(),
           "batchaot": batchaot.__version__, "numba": numba.__version__, "duckdb": duckdb.__version__,
           "pyarrow": pa.__version__, "load_average_at_start": os.getloadavg(), "thresholds": {
               "MAX_FUSED_INSTRUCTIONS": fused.plan.MAX_FUSED_INSTRUCTIONS,
               "ROW_KERNEL_INSTRUCTIONS": fused.plan.ROW_KERNEL_INSTRUCTIONS,
               "AUTO_MIN_ROWS": run.AUTO_MIN_ROWS, "AUTO_BACKGROUND_ROWS": run.AUTO_BACKGROUND_ROWS,
               "AUTO_SAVED_NS_PER_ROW_INSTRUCTION": run.AUTO_SAVED_NS_PER_ROW_INSTRUCTION},
           "sets": {}}

    t0 = time.perf_counter()
    table = orders(args.rows, seed=1)
    print(f"generated {args.rows:,} orders in {time.perf_counter() - t0:.1f} s; kernel cache {cache}")
    specs = [s for s in load_rule_specs(JOB) if s.is_row_rule]
    programs = compile_rules(specs, table.schema)
    numeric = [k for k, p in enumerate(programs) if not set(p.column_names) & STRING_COLUMNS]
    all_masks = demo_masks(table)
    for label, idx in (("demo numeric", numeric), ("demo mixed", list(range(len(programs))))):
        progs = [programs[k] for k in idx]
        preds = [specs[k].body for k in idx]
        times = compile_times(table, progs)
        print(f"\n{label}: fused compile cold {times['cold_s']:.2f} s ({times['kernels_compiled']} kernel, "
              f"{times['strategy']}, {times['instructions']} instructions); disk hit in a warm process "
              f"{times['warm_process_disk_hit_s'] * 1e3:.0f} ms; fresh process: kernel load "
              f"{times['fresh_process']['kernel_load_s'] * 1e3:.0f} ms after numba start-up "
              f"{times['fresh_process']['numba_start_s'] * 1e3:.0f} ms")
        entry = compare(label, table, progs, preds, [all_masks[specs[k].name] for k in idx], args.repeat)
        entry["compile"] = times
        entry["rule_names"] = [specs[k].name for k in idx]
        doc["sets"][label] = entry
    del table, all_masks

    counts = [int(x) for x in args.scale.split(",") if x]
    if counts:
        ftable = float_table(args.rows)
        cols = {name: ftable[name] for name in ftable.column_names}
        for n in counts:
            preds = generated_rules(n)
            progs = [batchaot.compile(p, ftable.schema, name=f"g{k}") for k, p in enumerate(preds)]
            masks = [_sum_below(cols, *_parts(p)) for p in preds]
            times = compile_times(ftable, progs)
            print(f"\n{n} generated rules: fused compile cold {times['cold_s']:.2f} s "
                  f"({times['kernels_compiled']} kernel(s), {times['strategy']})")
            repeat = args.repeat if n <= 100 else 1
            duck = (1, 2) if n <= args.duckdb_max_rules else ()
            entry = compare(f"{n} generated rules", ftable, progs, preds, masks, repeat, duck)
            entry["compile"] = times
            if not duck:
                entry["duckdb_sample"] = duckdb_sample(ftable.slice(0, args.duckdb_sample_rows), progs, preds)
            doc["sets"][f"scale {n}"] = entry

    # other work on the machine shows here: 2-thread times mean little when it is > ~0.5
    doc["load_average_at_end"] = os.getloadavg()
    write_results(f"engines-{args.rows}-rows", doc)


def _sum_below(cols: dict, a: str, b: str, t: float):
    return lambda: pc.less(pc.add(cols[a], cols[b]), t)


def _parts(pred: str) -> tuple[str, str, float]:
    lhs, t = pred.split(" < ")
    a, b = lhs.split(" + ")
    return a, b, float(t)


if __name__ == "__main__":
    main()
