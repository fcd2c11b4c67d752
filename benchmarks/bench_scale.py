"""Time per row and memory from 1M to 100M rows, streaming from Parquet.

    python benchmarks/bench_scale.py [--base-rows 10000000] [--copies 10]

Writes one file of synthetic orders, then datasets of 1/10 of it, all of it, and
`--copies` hard links of it (100M rows by default); runs `submit --mode in-process` with
the rules of jobs/rules/orders_rows.yaml on each in a fresh process and records wall
time, time per row and the peak resident memory of that process, beside DuckDB reading
the same files. Times are the median of BENCH_REPEAT (5) runs after a first one, for both.
Flat time per row and flat memory = the data streams through.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq
from timing import write_results

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "jobs", "rules", "orders_rows.yaml")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited
    from the parent across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def timed_runs(run) -> dict:
    """The first run (kernels loaded from the disk cache, files opened cold) and the median
    and best of REPEAT more, as this VM's timings vary from run to run."""
    t0 = time.perf_counter()
    result = run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "seconds": statistics.median(times), "best_s": min(times),
            "runs": len(times), "result": result}


def child(job_path: str) -> None:
    """Run one job in this fresh process; print the times and the peak RSS as JSON."""
    import batchaot
    got = timed_runs(lambda: batchaot.Job.from_yaml(job_path).run(mode="in-process"))
    res = got.pop("result")
    print(json.dumps({**got, "peak_rss_mb": peak_rss_mb(), "rows": res.rows,
                      "violations": [r["violations"] for r in res.to_dict()["rules"]]}))


def duckdb_child(folder: str) -> None:
    import duckdb
    import yaml
    preds = [r["check"] for r in yaml.safe_load(open(RULES))["rules"]]
    con = duckdb.connect()
    sql = ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for p in preds)
    got = timed_runs(lambda: con.execute(f"SELECT {sql} FROM read_parquet('{folder}/*.parquet')").fetchall()[0])
    counts = got.pop("result")
    print(json.dumps({**got, "violations": list(counts), "peak_rss_mb": peak_rss_mb()}))


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


LOAD_BEFORE = os.getloadavg()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-rows", type=int, default=10_000_000)
    ap.add_argument("--copies", type=int, default=10)
    args = ap.parse_args()
    from batchaot.samples import orders
    work = tempfile.mkdtemp(prefix="batchaot-scale-")
    try:
        base = os.path.join(work, "base.parquet")
        pq.write_table(orders(args.base_rows, seed=9), base, row_group_size=65_536)
        small = os.path.join(work, "small.parquet")
        pq.write_table(pq.read_table(base).slice(0, args.base_rows // 10), small, row_group_size=65_536)
        sets = {args.base_rows // 10: [small], args.base_rows: [base], args.base_rows * args.copies: [base] * args.copies}
        results = []
        for rows, files in sets.items():
            folder = os.path.join(work, f"d{rows}")
            os.makedirs(folder)
            for k, f in enumerate(files):
                os.link(f, os.path.join(folder, f"part-{k:03d}.parquet"))
            job = os.path.join(work, f"job{rows}.yaml")
            with open(job, "w") as fh:
                fh.write(f"name: scale\nsource: {{path: '{folder}/*.parquet'}}\nrules_from: {RULES}\n")
            ours, duck = run_child("--child", job), run_child("--duckdb", folder)
            assert ours["violations"] == duck["violations"], (ours, duck)
            results.append({"rows": rows, "batchaot_first_run_s": ours["first_s"], "batchaot_s": ours["seconds"],
                            "batchaot_best_s": ours["best_s"], "batchaot_ns_per_row": ours["seconds"] / rows * 1e9,
                            "batchaot_peak_rss_mb": ours["peak_rss_mb"], "duckdb_first_run_s": duck["first_s"],
                            "duckdb_s": duck["seconds"], "duckdb_best_s": duck["best_s"],
                            "duckdb_ns_per_row": duck["seconds"] / rows * 1e9, "duckdb_peak_rss_mb": duck["peak_rss_mb"],
                            "runs": ours["runs"], "duckdb_over_batchaot": duck["seconds"] / ours["seconds"]})
            print(json.dumps(results[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"benchmark": "scale", "cores": os.cpu_count(), "machine": platform.machine(),
           "load_average_before": LOAD_BEFORE, "results": results}
    write_results("scale", doc)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--duckdb":
        duckdb_child(sys.argv[2])
    else:
        main()
