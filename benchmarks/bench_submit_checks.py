"""Dataset-level checks end to end on files: `submit` vs DuckDB and Polars reading them.

    python benchmarks/bench_submit_checks.py [--rows 10000000] [--files 5] [--repeat 2]

On synthetic orders (batchaot.samples) in several Parquet files and their customers,
times each check alone as a job — unique(order_id) and reference(customer_id → customers.id),
the reference both with its key set shared and hash-partitioned on both sides — run by
`batchaot submit` in this process and on an embedded Ray (started once, as on a cluster)
with 1 and N workers; against DuckDB (`GROUP BY ... HAVING count(*) > 1` joined back to
list the duplicate rows; anti-join) and Polars (`is_duplicated`; anti join), each reading
the same files. Every engine must find the same number of violating rows. Writes JSON to
benchmarks/results/submit-checks-<rows>-rows-<cores>cores.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile

import duckdb
import pyarrow.parquet as pq
import ray

import batchaot
from batchaot.runtime import settle
from batchaot.samples import customers, write_orders
from timing import best_of, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKS = {
    "unique(order_id)": "{name: u, unique: [order_id]}",
    "reference(customer_id)": "{name: r, reference: {columns: [customer_id], dataset: customers.parquet, key: [id]}}",
}

try:
    import polars as pl
except ImportError:          # the bench extra installs it; without it Polars is skipped
    pl = None


def write_job(work: str, name: str, rule: str) -> str:
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as fh:
        fh.write(f"name: {name}\nsource: {{path: 'data/*.parquet'}}\nrules:\n  - {rule}\n")
    return path


def batchaot_runs(job: batchaot.Job, work: str, cores: int, repeat: int) -> dict[str, tuple[float, int]]:
    runs = {"in-process": dict(mode="in-process")}
    runs.update({f"ray {w}w": dict(mode="ray", workers=w) for w in range(1, cores + 1)})
    out = {}
    for name, kw in runs.items():
        folder = os.path.join(work, "out", name.replace(" ", "_"))
        secs, res = best_of(lambda: job.run(output=folder, **kw), repeat)
        out[name] = (secs, res.to_dict()["rules"][0]["violations"])
    return out


def duckdb_run(check: str, data: str, ref: str, threads: int, repeat: int) -> tuple[float, int]:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    src = f"read_parquet('{data}/*.parquet')"
    if check.startswith("unique"):
        sql = (f"SELECT count(*) FROM {src} t JOIN (SELECT order_id FROM {src} WHERE order_id IS NOT NULL "
               "GROUP BY order_id HAVING count(*) > 1) d USING (order_id)")
    else:
        sql = (f"SELECT count(*) FROM {src} t WHERE customer_id IS NOT NULL AND NOT EXISTS "
               f"(SELECT 1 FROM read_parquet('{ref}') c WHERE c.id = t.customer_id)")
    secs, rows = best_of(lambda: con.execute(sql).fetchone()[0], repeat)
    return secs, rows


def polars_run(check: str, data: str, ref: str, repeat: int) -> tuple[float, int]:
    lf = pl.scan_parquet(f"{data}/*.parquet")
    if check.startswith("unique"):
        q = lf.filter(pl.col("order_id").is_not_null() & pl.col("order_id").is_duplicated()).select(pl.len())
    else:
        q = lf.filter(pl.col("customer_id").is_not_null()) \
            .join(pl.scan_parquet(ref), left_on="customer_id", right_on="id", how="anti").select(pl.len())
    secs, frame = best_of(lambda: q.collect(), repeat)
    return secs, int(frame.item())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    work = tempfile.mkdtemp(prefix="batchaot-bench-")
    res: dict = {"benchmark": "submit-checks", "rows": args.rows, "files": args.files, "cores": cores,
                 "repeat": args.repeat, "machine": platform.machine(), "batchaot": batchaot.__version__,
                 "load_average_before": os.getloadavg(), "checks": {}}
    try:
        data = os.path.join(work, "data")
        write_orders(data, args.rows, args.files, seed=7)
        ref = os.path.join(work, "customers.parquet")
        pq.write_table(customers(max(args.rows // args.files // 10, 2), seed=7, missing=50), ref)
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        variants = [("unique(order_id)", None), ("reference(customer_id)", "shared"),
                    ("reference(customer_id)", "partitioned")]
        for check, how in variants:
            label = check if how is None else f"{check} {how}"
            settle.SHARED_SIDE_ROWS = 0 if how == "partitioned" else 10_000_000
            job = batchaot.Job.from_yaml(write_job(work, f"j{len(res['checks'])}", CHECKS[check]))
            runs = {f"batchaot {k}": v for k, v in batchaot_runs(job, work, cores, args.repeat).items()}
            if how != "partitioned":
                runs.update({f"duckdb {t}t": duckdb_run(check, data, ref, t, args.repeat) for t in (1, cores)})
                if pl is not None:
                    runs["polars"] = polars_run(check, data, ref, args.repeat)
            counts = {v[1] for v in runs.values()}
            assert len(counts) == 1, (label, runs)
            res["checks"][label] = {"violating_rows": counts.pop(),
                                    "seconds": {k: round(v[0], 4) for k, v in runs.items()}}
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load_average_after"] = os.getloadavg()
    for label, doc in res["checks"].items():
        print(f"\n{label}: {doc['violating_rows']:,} violating rows")
        best = min(doc["seconds"].values())
        for engine, secs in doc["seconds"].items():
            print(f"  {engine:<24} {secs:8.3f} s  {secs / best:6.2f}x")
    write_results(f"submit-checks-{args.rows}-rows", res)


if __name__ == "__main__":
    main()
