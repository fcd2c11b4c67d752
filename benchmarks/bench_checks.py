"""Dataset-level checks vs peers on the same in-memory data: unique and reference.

    python benchmarks/bench_checks.py [--rows 10000000] [--repeat 3]

On synthetic orders (batchaot.samples) and their customers, times:
  * unique(order_id), unique(customer_id, quantity, status) — batchaot's map/merge/finish
    (in this process, one thread), DuckDB (`GROUP BY ... HAVING count(*) > 1` joined back to
    return the duplicate rows; 1 thread and all threads), Polars (`is_duplicated`);
  * reference(orders.customer_id → customers.id) — batchaot (key set built once, then
    probed), DuckDB anti-join, Polars anti join.
Every engine must return the same violating rows; the JSON goes to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import batchaot
from batchaot.api import BATCH_ROWS
from batchaot.checks import build_check, run_checks
from batchaot.samples import customers, orders
from batchaot.spec import parse_rule
from timing import best_of, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
COMPOUND = ["customer_id", "quantity", "status"]

try:
    import polars as pl
except ImportError:          # the bench extra installs it; without it Polars is skipped
    pl = None



def batchaot_rows(table: pa.Table, rule: dict) -> np.ndarray:
    check = build_check(parse_rule(rule, 0, "<bench>"), table.schema)
    batches = ((b, "<table>", i * BATCH_ROWS) for i, b in enumerate(table.to_batches(max_chunksize=BATCH_ROWS)))
    (outcome,) = run_checks([check], batches)
    return _sorted(outcome.violating["row"].to_numpy() if outcome.violating is not None else [])


def duckdb_unique(table: pa.Table, key: list[str], threads: int) -> np.ndarray:
    con = _duck(threads, t=numbered(table))
    cols = ", ".join(key)
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in key)
    sql = (f"SELECT t.__r FROM t JOIN (SELECT {cols} FROM t WHERE {not_null} GROUP BY {cols} "
           f"HAVING count(*) > 1) d USING ({cols})")
    return _sorted(con.execute(sql).fetchnumpy()["__r"])


def duckdb_reference(table: pa.Table, ref: pa.Table, threads: int) -> np.ndarray:
    con = _duck(threads, t=numbered(table), c=ref)
    sql = "SELECT __r FROM t ANTI JOIN c ON t.customer_id = c.id WHERE t.customer_id IS NOT NULL"
    return _sorted(con.execute(sql).fetchnumpy()["__r"])


def polars_unique(df, key: list[str]) -> np.ndarray:
    keyed = df.select(key + ["__r"]).drop_nulls(key)
    return _sorted(keyed.filter(keyed.select(key).is_duplicated())["__r"].to_numpy())


def polars_reference(df, ref) -> np.ndarray:
    probe = df.select(["customer_id", "__r"]).drop_nulls("customer_id")
    return _sorted(probe.join(ref.select("id"), left_on="customer_id", right_on="id", how="anti")["__r"].to_numpy())


def _duck(threads: int, **tables):
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    for name, t in tables.items():
        con.register(name, t)
    return con


def _sorted(rows) -> np.ndarray:
    return np.sort(np.asarray(rows, dtype=np.int64))


def numbered(table: pa.Table) -> pa.Table:
    return table.append_column("__r", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1

    t0 = time.perf_counter()
    table = orders(args.rows, seed=1)
    ref = customers(max(args.rows // 10, 2), seed=1)
    print(f"generated {args.rows:,} orders and {ref.num_rows:,} customers in {time.perf_counter() - t0:.1f} s")
    folder = tempfile.mkdtemp(prefix="bench-checks-")
    ref_path = os.path.join(folder, "customers.parquet")
    pq.write_table(ref, ref_path)
    ref_rule = {"name": "r", "reference": {"columns": ["customer_id"], "dataset": ref_path, "key": ["id"]}}
    batchaot_rows(table.slice(0, 10_000), {"name": "u", "unique": COMPOUND})   # warm Numba's cache
    batchaot_rows(table.slice(0, 10_000), ref_rule)

    cases = {
        "unique(order_id)": {
            "batchaot (1 thread)": lambda: batchaot_rows(table, {"name": "u", "unique": ["order_id"]}),
            "DuckDB (1 thread)": lambda: duckdb_unique(table, ["order_id"], 1),
            f"DuckDB ({cores} threads)": lambda: duckdb_unique(table, ["order_id"], cores)},
        f"unique({', '.join(COMPOUND)})": {
            "batchaot (1 thread)": lambda: batchaot_rows(table, {"name": "u", "unique": COMPOUND}),
            "DuckDB (1 thread)": lambda: duckdb_unique(table, COMPOUND, 1),
            f"DuckDB ({cores} threads)": lambda: duckdb_unique(table, COMPOUND, cores)},
        "reference(customer_id -> customers.id)": {
            "batchaot (1 thread, incl. key set build)": lambda: batchaot_rows(table, ref_rule),
            "DuckDB (1 thread)": lambda: duckdb_reference(table, ref, 1),
            f"DuckDB ({cores} threads)": lambda: duckdb_reference(table, ref, cores)},
    }
    if pl is not None:
        df, pref = pl.from_arrow(numbered(table)), pl.from_arrow(ref)
        cases["unique(order_id)"]["Polars"] = lambda: polars_unique(df, ["order_id"])
        cases[f"unique({', '.join(COMPOUND)})"]["Polars"] = lambda: polars_unique(df, COMPOUND)
        cases["reference(customer_id -> customers.id)"]["Polars"] = lambda: polars_reference(df, pref)

    results: dict[str, dict] = {}
    for case, engines in cases.items():
        timed = {name: best_of(fn, args.repeat) for name, fn in engines.items()}
        answers = {name: rows for name, (_, rows) in timed.items()}
        first = next(iter(answers.values()))
        for name, rows in answers.items():
            if not np.array_equal(rows, first):
                sys.exit(f"{case}: {name} found {len(rows)} rows, batchaot {len(first)}")
        base = next(iter(timed.values()))[0]
        print(f"\n{case}: {args.rows:,} rows, {len(first):,} violating rows, all engines agree")
        print(f"{'engine':<42}{'time (s)':>10}{'Mrows/s':>10}{'vs batchaot':>13}")
        for name, (secs, _) in timed.items():
            print(f"{name:<42}{secs:>10.3f}{args.rows / secs / 1e6:>10.1f}{secs / base:>12.2f}x")
        results[case] = {"violating_rows": int(len(first)),
                         "engines": {n: {"seconds": s, "rows_per_s": args.rows / s} for n, (s, _) in timed.items()}}

    doc = {"benchmark": "checks", "rows": args.rows, "reference_rows": ref.num_rows, "cores": cores,
           "machine": platform.machine(), "python": platform.python_version(),
           "batchaot": batchaot.__version__, "duckdb": duckdb.__version__,
           "polars": pl.__version__ if pl is not None else None, "results": results}
    write_results(f"checks-{args.rows}-rows", doc)


if __name__ == "__main__":
    main()
