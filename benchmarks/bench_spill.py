"""`unique` over more keys than the process may hold: spilled buckets vs held ones.

One Parquet file of N email strings (about one in eight repeated), checked with
`unique: [email]` by `batchaot submit --mode in-process`:

- the runtime's own address-space peak, on a 200,000-row file with the same job;
- held (`--memory-budget 64GiB`, nothing spills) and spilled (`--memory-budget 256MB`)
  runs without a limit: time, peak RSS and bytes spilled, the cost of spilling;
- under an address-space limit (RLIMIT_AS) of that peak plus HEADROOM, the held run and
  one with the default budget (which reads the limit): which finish, with which count;
- DuckDB's count (GROUP BY ... HAVING count(*) > 1) and time on the same file.

    python benchmarks/bench_spill.py [--rows 36000000] [--headroom-mb 640]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import duckdb

from timing import write_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAK = ("import runpy, sys\nsys.argv = ['batchaot'] + sys.argv[1:]\ntry:\n"
        "    runpy.run_module('batchaot.cli', run_name='__main__')\nfinally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(*(status.split(k + ':')[1].split()[0] for k in ('VmPeak', 'VmHWM')), file=sys.stderr)")


def make_file(path: str, rows: int) -> None:
    duckdb.sql(f"COPY (SELECT 'user-' || (hash(i) % {rows * 8}) || '@example.com' AS email FROM range({rows}) t(i)) "
               f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)")


def run(job: str, out: str, extra: list[str], limit: int | None = None) -> dict:
    """One submit in a fresh process: exit code, seconds, peak address space and RSS (MB)."""
    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, "submit", job, "--mode", "in-process", "--json", "-q",
                           "-o", out, *extra], capture_output=True, text=True, cwd=ROOT, preexec_fn=limited)
    seconds = time.perf_counter() - started
    found = {"exit_code": done.returncode, "seconds": round(seconds, 2)}
    try:
        vm_peak, rss_peak = done.stderr.strip().splitlines()[-1].split()
        found.update(peak_address_space_mb=int(vm_peak) >> 10, peak_rss_mb=int(rss_peak) >> 10)
    except (IndexError, ValueError):       # killed before it could print
        pass
    if done.returncode in (0, 1):
        doc = json.loads(done.stdout)
        found.update(violations=doc["rules"][0]["violations"], spilled_bytes=doc.get("spilled_bytes", 0),
                     units=doc["units"])
    else:
        lines = done.stderr.strip().splitlines()
        found["error"] = next((line for line in lines if line.startswith("batchaot: error")), lines[-1:] or [""])
        found["error"] = str(found["error"])[:300]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=36_000_000)
    ap.add_argument("--headroom-mb", type=int, default=640)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spill-") as tmp:
        jobs = {}
        for size, rows in (("small", 200_000), ("big", args.rows)):
            data = os.path.join(tmp, f"{size}.parquet")
            make_file(data, rows)
            jobs[size] = os.path.join(tmp, f"{size}.yaml")
            with open(jobs[size], "w", encoding="utf-8") as fh:
                fh.write(f"name: {size}\nsource: {{path: '{data}'}}\nrules: [{{name: u, unique: [email]}}]\n")
        big = os.path.join(tmp, "big.parquet")
        base = run(jobs["small"], os.path.join(tmp, "o0"), [])
        limit = (base["peak_address_space_mb"] + args.headroom_mb) << 20
        held = ["--memory-budget", "64GiB"]
        results = {"held": run(jobs["big"], os.path.join(tmp, "o1"), held),
                   "spilled_256MB": run(jobs["big"], os.path.join(tmp, "o2"), ["--memory-budget", "256MB"]),
                   "held_limited": run(jobs["big"], os.path.join(tmp, "o3"), held, limit),
                   "default_budget_limited": run(jobs["big"], os.path.join(tmp, "o4"), [], limit)}
        started = time.perf_counter()
        expected = duckdb.sql(f"SELECT count(*) FROM '{big}' WHERE email IN "
                              f"(SELECT email FROM '{big}' GROUP BY email HAVING count(*) > 1)").fetchall()[0][0]
        results["duckdb"] = {"seconds": round(time.perf_counter() - started, 2), "violations": expected}
        file_mb = os.path.getsize(big) >> 20
    for name, r in results.items():
        print(f"{name:16} {json.dumps(r)}")
    agree = all(r.get("violations", expected) == expected for r in results.values())
    print(f"counts equal DuckDB's: {agree}")
    doc = {"benchmark": "spill", "rows": args.rows, "file_mb": file_mb, "cores": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version(), "load_average": os.getloadavg(),
           "runtime_peak_address_space_mb": base["peak_address_space_mb"], "headroom_mb": args.headroom_mb,
           "address_space_limit_mb": limit >> 20, "counts_agree": agree, "results": results}
    print(write_results(f"spill-{args.rows}-rows", doc))
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
