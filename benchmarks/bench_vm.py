"""VM tier vs peers on the same in-memory data: rows/s for the demo rule set.

    python benchmarks/bench_vm.py [--rows 10000000] [--repeat 3]

Times, on one Arrow table of synthetic orders (batchaot.samples), the row rules of
jobs/demo.yaml: batchaot's bytecode VM (compiled programs, counts + violating row
numbers), DuckDB (one query, count(*) FILTER per rule; 1 thread and all threads),
pyarrow.compute, and Polars when installed. Checks that every engine gives the
same counts, prints a table with ratios, writes JSON to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import duckdb
import pyarrow as pa

import batchaot
from batchaot.api import BATCH_ROWS, compile_rules, load_rule_specs
from batchaot.engine.run import Executor
from batchaot.samples import orders
from timing import best_of, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "..", "jobs", "demo.yaml")



def run_batchaot(table: pa.Table, programs) -> list[int]:
    outcomes = Executor(engine="vm").evaluate(programs, table.to_batches(max_chunksize=BATCH_ROWS))
    return [o.violations for o in outcomes]


def run_duckdb(table: pa.Table, preds: list[str], threads: int | None) -> list[int]:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.register("t", table)
    sql = ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for p in preds)
    return list(con.execute(f"SELECT {sql} FROM t").fetchall()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    table = orders(args.rows, seed=1)
    print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
    specs = [s for s in load_rule_specs(JOB) if s.is_row_rule]
    preds = [s.body for s in specs]
    compile_s, programs = best_of(lambda: compile_rules(specs, table.schema), 1)
    run_batchaot(table.slice(0, 10_000), programs)  # warm the kernel cache

    results = {}
    results["batchaot VM (1 thread)"] = best_of(lambda: run_batchaot(table, programs), args.repeat)
    results["DuckDB (1 thread)"] = best_of(lambda: run_duckdb(table, preds, 1), args.repeat)
    results[f"DuckDB ({os.cpu_count()} threads)"] = best_of(lambda: run_duckdb(table, preds, None), args.repeat)

    reference = results["batchaot VM (1 thread)"][1]
    for name, (_, counts) in results.items():
        if counts != reference:
            sys.exit(f"count mismatch: {name} {counts} vs batchaot {reference}")

    base = results["batchaot VM (1 thread)"][0]
    print(f"\n{len(preds)} row rules, {args.rows:,} rows, {os.cpu_count()} cores; counts agree: {reference}")
    print(f"{'engine':<28}{'time (s)':>10}{'Mrows/s':>10}{'vs batchaot':>13}")
    for name, (secs, _) in results.items():
        print(f"{name:<28}{secs:>10.3f}{args.rows / secs / 1e6:>10.1f}{secs / base:>12.2f}x")
    programs_info = [{"name": p.name, "before": p.size[0], "after": p.size[1], "removed": p.removed,
                      "zero_tick": p.zero_tick} for p in programs]
    doc = {"benchmark": "vm", "rows": args.rows, "rules": preds, "cores": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version(),
           "batchaot": batchaot.__version__, "duckdb": duckdb.__version__,
           "compile_s": compile_s, "programs": programs_info,
           "results": {k: {"seconds": v[0], "rows_per_s": args.rows / v[0]} for k, v in results.items()}}
    write_results(f"vm-{args.rows}-rows", doc)


if __name__ == "__main__":
    main()
