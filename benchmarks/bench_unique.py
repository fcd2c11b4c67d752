"""Where the time of `unique` goes on the bucket path: map, split + finish per bucket, outcome.

    python benchmarks/bench_unique.py [--rows 2000000] [--columns a,b] [--repeat 2]

On datagen.wide_table (the cuallee shape: 19 int64/float64 columns, several of them
low-cardinality), runs one `unique: [col]` check per column in this process the way a
distributed run settles it (batches of BATCH_ROWS rows, one map per batch, merge, split
into hash buckets, finish_bucket per bucket), and prints the best time of each phase per
column, the duplicate rows found, and the peak RSS. map only holds a one-column key
(zero-copy), so its time is ~0 and the partitioning shows under finish_s. In one process
run_checks settles held keys with checks/duplicates.py instead (bench_peers.py --shape
cuallee times that, and is the recorded comparison). Threads: the kernels use
NUMBA_NUM_THREADS threads (set it to 1 for a serial profile). Prints only.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numba  # noqa: E402

import datagen  # noqa: E402
from batchaot.api import BATCH_ROWS, compile_rules, load_rule_specs  # noqa: E402
from batchaot.engine import parallel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--columns", help="comma-separated (default: every column)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    table = datagen.wide_table(args.rows)
    columns = args.columns.split(",") if args.columns else table.column_names
    batches = table.to_batches(max_chunksize=BATCH_ROWS)
    starts = [0]
    for b in batches[:-1]:
        starts.append(starts[-1] + b.num_rows)
    print(f"{args.rows:,} rows, {len(batches)} batches, threads={parallel.threads()} "
          f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}), load={os.getloadavg()[0]:.2f}")
    print(f"{'column':<22}{'map_s':>8}{'finish_s':>10}{'outcome_s':>11}{'total_s':>9}{'dup_rows':>12}")
    total = [0.0, 0.0, 0.0]
    for col in columns:
        (check,) = compile_rules(load_rule_specs([{"name": f"{col}_unique", "unique": [col]}]), table.schema)
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            partials = [check.map(b, "<table>", s) for b, s in zip(batches, starts)]
            merged = check.merge(partials)
            t1 = time.perf_counter()
            head, buckets = check.split(merged)
            results = parallel.run_parallel(check.finish_bucket, buckets)
            t2 = time.perf_counter()
            out = check.outcome(head, results)
            t3 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2)
            if best is None or sum(times) < sum(best):
                best = times
            del partials, merged, buckets, results
        total = [a + b for a, b in zip(total, best)]
        print(f"{col:<22}{best[0]:>8.3f}{best[1]:>10.3f}{best[2]:>11.3f}{sum(best):>9.3f}{out.violations:>12,}")
        del out
    print(f"{'all':<22}{total[0]:>8.3f}{total[1]:>10.3f}{total[2]:>11.3f}{sum(total):>9.3f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
