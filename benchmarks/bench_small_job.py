"""A small job as a user runs it: one fresh process per run, start-up included.

The 200,000-row demo orders (batchaot.samples) checked with the demo's 9 row rules:

- ``batchaot validate FILE -r RULES --json`` (the CLI, a new process each time);
- ``batchaot submit JOB --mode ray`` (Ray started and stopped by the job);
- a fresh Python process that counts the same 9 predicates' violations in DuckDB, and
  one that does it with Polars (``scan_parquet`` + SQL), both reading the same file.

Warm runs find Numba's and batchaot's disk caches filled (as after ``make``, which runs
``batchaot warmup``); cold runs start from empty caches (``NUMBA_CACHE_DIR`` and
``BATCHAOT_CACHE_DIR`` point at new folders), the first run on a fresh machine.
Counts are checked equal to DuckDB's before any time is kept.

    python benchmarks/bench_small_job.py [--rows 200000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import yaml

from timing import write_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO_JOB = os.path.join(ROOT, "jobs", "demo.yaml")

DUCKDB = """
import sys, duckdb, yaml
rules = yaml.safe_load(open(sys.argv[2]))["rules"]
cols = ", ".join(f"count(*) FILTER (WHERE NOT ({r['check']}))" for r in rules)
print(list(duckdb.sql(f"SELECT {cols} FROM read_parquet('{sys.argv[1]}')").fetchall()[0]))
"""

POLARS = """
import sys, polars as pl, yaml
rules = yaml.safe_load(open(sys.argv[2]))["rules"]
# Polars SQL names DuckDB's regexp_matches regexp_like
cols = ", ".join(f"count(*) FILTER (WHERE NOT ({r['check'].replace('regexp_matches(', 'regexp_like(')}))"
                 for r in rules)
ctx = pl.SQLContext(t=pl.scan_parquet(sys.argv[1]))
print(list(ctx.execute(f"SELECT {cols} FROM t").collect().row(0)))
"""


def row_rules() -> list[dict]:
    with open(DEMO_JOB, encoding="utf-8") as fh:
        return [r for r in yaml.safe_load(fh)["rules"] if "check" in r]


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    failed_rules_ok = os.path.basename(cmd[0]) == "batchaot"     # exit 1: a rule failed
    if done.returncode not in ((0, 1) if failed_rules_ok else (0,)):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def batchaot_counts(out: str, names: list[str]) -> list[int]:
    by_name = {r["name"]: r for r in json.loads(out)["rules"]}
    # a lax rule counts FALSE rows, as `count(*) FILTER (WHERE NOT p)` does
    return [by_name[n]["violations"] for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bin_dir = os.path.dirname(sys.executable)
    work = tempfile.mkdtemp(prefix="batchaot-small-")
    subprocess.run([sys.executable, "-m", "batchaot.samples", work, "--rows", str(args.rows)], check=True,
                   capture_output=True)
    data = os.path.join(work, "orders.parquet")
    rules = row_rules()
    rules_file = os.path.join(work, "rules.yaml")
    with open(rules_file, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"rules": rules}, fh)
    job_file = os.path.join(work, "job.yaml")
    with open(job_file, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"name": "small", "source": {"path": data}, "rules": rules}, fh)
    names = [r["name"] for r in rules]
    commands = {
        "batchaot validate": [os.path.join(bin_dir, "batchaot"), "validate", data, "-r", rules_file, "--json"],
        "batchaot submit --mode ray": [os.path.join(bin_dir, "batchaot"), "submit", job_file, "--mode", "ray",
                                       "--json"],
        "duckdb": [sys.executable, "-c", DUCKDB, data, rules_file],
        "polars": [sys.executable, "-c", POLARS, data, rules_file],
    }
    env = dict(os.environ)
    _, out = timed(commands["duckdb"], env)
    want = json.loads(out)
    results: dict[str, dict] = {}
    not_run: dict[str, str] = {}
    for name, cmd in commands.items():
        cold_env = dict(env, NUMBA_CACHE_DIR=tempfile.mkdtemp(), BATCHAOT_CACHE_DIR=tempfile.mkdtemp())
        try:
            cold, out = timed(cmd, cold_env)
        except SystemExit as exc:
            if name.startswith("batchaot"):
                raise
            not_run[name] = str(exc)[-300:]        # e.g. a function its SQL does not have
            print(f"{name:28s} not run: {not_run[name]}")
            continue
        times = [timed(cmd, env)[0] for _ in range(args.repeat)]
        got = batchaot_counts(out, names) if name.startswith("batchaot") else json.loads(out.strip().splitlines()[-1])
        if got != want:
            raise SystemExit(f"{name} counts {got} differ from DuckDB's {want}")
        results[name] = {"cold_s": round(cold, 3), "warm_best_s": round(min(times), 3),
                         "warm_median_s": round(sorted(times)[len(times) // 2], 3)}
        print(f"{name:28s} cold {cold:6.2f} s   warm best {min(times):6.2f} s", flush=True)
    base = results["duckdb"]["warm_best_s"]
    for name, r in results.items():
        r["warm_vs_duckdb"] = round(r["warm_best_s"] / base, 2)
        print(f"{name:28s} {r['warm_vs_duckdb']:5.2f}x a fresh DuckDB process")
    write_results(f"small-job-{args.rows}-rows", {
        "benchmark": "small_job", "rows": args.rows, "rules": names, "repeat": args.repeat,
        "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "load_average": os.getloadavg(), "results": results, "not_run": not_run})


if __name__ == "__main__":
    main()
