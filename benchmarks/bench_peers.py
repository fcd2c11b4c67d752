"""batchaot vs the engines and data-quality tools users would otherwise pick.

    python benchmarks/bench_peers.py [--rows 10000000] [--rule-sets numeric,mixed,strings]
                                     [--engines ...] [--threads 1,2] [--repeat 3]
    python benchmarks/bench_peers.py --shape cuallee [--rows 20000000] ...

On one synthetic table (benchmarks/datagen.py) and its rule sets, times every engine of
benchmarks/peers.py — batchaot VM and fused, Polars lazy, DuckDB, pyarrow.compute,
pandas, pandera (Polars backend), cuallee (Polars and DuckDB backends), Great
Expectations (pandas) — at 1 thread and at the machine's core count.

`--shape cuallee` runs the shape of cuallee's paper instead: 19 not-null and 19
exact-unique checks over 20M rows x 19 int/float columns (datagen.wide_table), for
batchaot's dataset checks, Polars is_duplicated, DuckDB GROUP BY, cuallee (Polars) and
pandera (peers.WIDE_ENGINES).

Each (engine, thread count) runs in a fresh process that reads the same Arrow IPC copy
of the table, so every engine sees the same in-memory data and the thread count is
fixed before any library starts its pool (Polars reads POLARS_MAX_THREADS once, at
import). In that process, per rule set: the engine's set-up (conversion to its own
format, compiling) is timed apart as setup_s; one untimed warm-up run (first_run_s:
batchaot fused pays its kernel compile or cache load here) gives the counts; then
`--repeat` timed runs, fewer when one run takes longer than --budget seconds. The
best run is the one reported. batchaot's dataset checks find violating rows as row
numbers in the timed runs; building their table (what Result.violations reads) is timed
once afterwards, apart, as materialize_s.

Every engine must give the same violation count for every rule as DuckDB (the oracle):
a disagreement prints the rule and each engine's count and exits 1 without writing
results. Otherwise prints a table of times and ratios (engine time / batchaot time,
so > 1 means batchaot is faster) and writes benchmarks/results/peers-<rows>-rows-
<cores>cores.json (peers-cuallee38-... for --shape cuallee).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyarrow as pa  # noqa: E402

import datagen  # noqa: E402

CHUNK_ROWS = 1 << 20       # record batches of batchaot.api.BATCH_ROWS rows, Parquet row-group sized
RESULT_TAG = "RESULT "


@dataclass
class Shape:
    default_rows: int
    make_table: Callable
    rule_sets: list[str]
    engines: str                  # name of the registry in peers.py
    baselines: tuple[str, ...]    # the batchaot engines ratios are taken against
    prefix: str                   # of the results file name


SHAPES = {
    "rules": Shape(datagen.DEFAULT_ROWS, datagen.table, list(datagen.RULE_SETS), "ENGINES",
                   ("batchaot-fused", "batchaot-vm"), "peers"),
    "cuallee": Shape(datagen.DEFAULT_WIDE_ROWS, datagen.wide_table, list(datagen.WIDE_RULE_SETS),
                     "WIDE_ENGINES", ("batchaot",), "peers-cuallee38"),
}


# --- the child: one engine at one thread count -----------------------------------------

def child(args: argparse.Namespace) -> None:
    import peers       # configure_threads must run before anything imports polars
    peers.configure_threads(args.threads)
    with pa.OSFile(args.data, "rb") as src:
        table = pa.ipc.open_file(src).read_all()
    out = {"engine": args.child, "threads": args.threads, "rule_sets": {}}
    prepare = getattr(peers, SHAPES[args.shape].engines)[args.child]
    for name in args.rule_sets:
        rules = datagen.rule_set(name)
        try:
            t0 = time.perf_counter()
            run = prepare(table, rules, args.threads)
            setup_s = time.perf_counter() - t0
        except peers.Unavailable as err:
            out["rule_sets"][name] = {"skipped": str(err)}
            continue
        t0 = time.perf_counter()
        counts = run()
        first_s = time.perf_counter() - t0
        times = []
        while len(times) < args.repeat and (not times or sum(times) + times[-1] <= args.budget):
            gc.collect()
            t0 = time.perf_counter()
            again = run()
            times.append(time.perf_counter() - t0)
            if again != counts:
                raise RuntimeError(f"{args.child} gave {again} on a rerun of {name}, {counts} before")
        out["rule_sets"][name] = {"counts": counts, "setup_s": setup_s, "first_run_s": first_s,
                                  "best_s": min(times), "median_s": statistics.median(times),
                                  "times": times}
        materialize = getattr(run, "materialize", None)
        if materialize is not None:      # violating rows as a table, once, apart from the runs
            t0 = time.perf_counter()
            out["rule_sets"][name]["materialized_rows"] = materialize()
            out["rule_sets"][name]["materialize_s"] = time.perf_counter() - t0
        print(f"  {args.child} x{args.threads} {name}: {min(times):.3f} s", file=sys.stderr)
    print(RESULT_TAG + json.dumps(out))


def run_child(engine: str, threads: int, data: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--data", data,
           "--threads", str(threads), "--shape", args.shape, "--repeat", str(args.repeat),
           "--budget", str(args.budget), "--rule-sets", ",".join(args.rule_sets)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
    return {"engine": engine, "threads": threads, "error": f"exit {proc.returncode}: {tail}"}


# --- the parent --------------------------------------------------------------------------

def check_counts(rule_set: str, runs: dict[str, dict[int, dict]]) -> list[str]:
    """Lines describing every rule whose counts differ between engines (empty: all agree)."""
    rules = datagen.rule_set(rule_set)
    seen = {f"{e} x{t}": r["counts"] for e, by_t in runs.items() for t, r in by_t.items()
            if "counts" in r}
    ref_name = next((k for k in seen if k.startswith("duckdb")), next(iter(seen), None))
    problems = []
    for i, rule in enumerate(rules):
        values = {k: v[i] for k, v in seen.items()}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{k}={v}" for k, v in values.items())
            problems.append(f"{rule_set}/{rule.name} `{rule.sql}` (reference {ref_name}): {listed}")
    return problems


def print_table(rule_set: str, runs: dict[str, dict[int, dict]], threads: list[int], rows: int,
                baselines: tuple[str, ...]) -> None:
    print(f"\n{rule_set}: {len(datagen.rule_set(rule_set))} rules, {rows:,} rows, "
          f"{os.cpu_count()} cores; best of the timed runs, ratio = engine / batchaot")
    head = f"{'engine':<20}"
    for t in threads:
        head += f"{f'{t} thr (s)':>12}" + "".join(f"{'/ ' + b.split('-')[-1]:>11}" for b in baselines)
    print(head)
    for engine, by_t in runs.items():
        line = f"{engine:<20}"
        for t in threads:
            r = by_t.get(t, {})
            if "best_s" not in r:
                line += f"{'-':>12}" + " " * 11 * len(baselines)
                continue
            line += f"{r['best_s']:>12.3f}"
            for base in baselines:
                b = runs.get(base, {}).get(t, {}).get("best_s")
                line += f"{r['best_s'] / b:>10.2f}x" if b else f"{'-':>11}"
        print(line)
    for engine, by_t in runs.items():
        for t in threads:
            r = by_t.get(t, {})
            if "materialize_s" in r:
                print(f"{engine} x{t}: building the violations tables ({r['materialized_rows']:,} rows) "
                      f"took {r['materialize_s']:.3f} s more, once, after the timed runs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="rules",
                    help="rules: row rule sets (default); cuallee: 19 not-null + 19 unique checks")
    ap.add_argument("--rows", type=int, default=None,
                    help="default 10M (rules) or 20M (cuallee)")
    ap.add_argument("--seed", type=int, default=datagen.DEFAULT_SEED)
    ap.add_argument("--rule-sets", default=None, type=lambda s: s.split(","),
                    help=f"comma-separated subset of {', '.join(datagen.RULE_SETS)} (default: all)")
    ap.add_argument("--engines", default=None, type=lambda s: s.split(","),
                    help="comma-separated subset of peers.ENGINES (default: all)")
    ap.add_argument("--threads", default=None, type=lambda s: [int(x) for x in s.split(",")],
                    help="thread counts to run (default: 1 and the core count)")
    ap.add_argument("--bad-rate", type=float, default=datagen.BAD_RATE,
                    help="rules shape: share of rows each defect is injected into (default 0.002)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=30.0,
                    help="stop repeating once the timed runs would pass this many seconds")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/peers-<rows>-rows-<cores>cores.json)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = SHAPES[args.shape]
    args.rows = shape.default_rows if args.rows is None else args.rows
    args.rule_sets = args.rule_sets or shape.rule_sets
    unknown = {r for r in args.rule_sets if r not in shape.rule_sets
               and not (args.shape == "rules" and datagen.is_generated(r))}
    if unknown:
        ap.error(f"unknown rule set(s) {sorted(unknown)}; known: {', '.join(shape.rule_sets)}, "
                 "generated<N> (N threshold rules at realistic violation rates)")
    if args.child:
        args.threads = args.threads[0]
        return child(args)

    import peers
    registry = getattr(peers, shape.engines)
    engines = args.engines or list(registry)
    if set(engines) - set(registry):
        ap.error(f"unknown engine(s) {sorted(set(engines) - set(registry))}; "
                 f"known: {', '.join(registry)}")
    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, cores})
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    table = (shape.make_table(args.rows, args.seed, args.bad_rate) if args.shape == "rules"
             else shape.make_table(args.rows, args.seed))
    table = pa.Table.from_batches(table.to_batches(max_chunksize=CHUNK_ROWS))
    print(f"generated {args.rows:,} rows ({table.nbytes / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.1f} s")

    runs: dict[str, dict[str, dict[int, dict]]] = {rs: {} for rs in args.rule_sets}
    skipped: dict[str, str] = {}     # the engine cannot run here (peers.Unavailable)
    failed: dict[str, str] = {}      # the engine's process crashed: exit 1 at the end
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        data = os.path.join(tmp, "table.arrow")
        with pa.OSFile(data, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        del table
        for t in threads:
            for engine in engines:
                print(f"{engine} at {t} thread(s) ...", flush=True)
                res = run_child(engine, t, data, args)
                if "error" in res:
                    failed[f"{engine} x{t}"] = res["error"]
                    print(f"  FAILED: {res['error']}")
                    continue
                for rs, r in res["rule_sets"].items():
                    if "skipped" in r:
                        skipped[f"{engine} x{t} {rs}"] = r["skipped"]
                        print(f"  skipped {rs}: {r['skipped']}")
                    else:
                        runs[rs].setdefault(engine, {})[t] = r

    problems = [p for rs in args.rule_sets for p in check_counts(rs, runs[rs])]
    if problems:
        print("\nCOUNT MISMATCH: engines disagree on violations (no results written)")
        for p in problems:
            print("  " + p)
        sys.exit(1)

    for rs in args.rule_sets:
        print_table(rs, runs[rs], threads, args.rows, shape.baselines)
    for what, why in skipped.items():
        print(f"not run: {what}: {why}")
    for what, why in failed.items():
        print(f"FAILED: {what}: {why.splitlines()[-1] if why else ''}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          "(other work on the machine disturbs these timings)")

    doc = {
        "benchmark": shape.prefix, "shape": args.shape, "rows": args.rows, "seed": args.seed, "bad_rate": args.bad_rate, "cores": os.cpu_count(),
        "threads": threads, "repeat": args.repeat, "chunk_rows": CHUNK_ROWS,
        "machine": platform.machine(), "python": platform.python_version(),
        "versions": peers.versions(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rule_sets": {
            rs: {"rules": [{"name": r.name, "sql": r.sql} for r in datagen.rule_set(rs)],
                 "violations": _violations(rs, runs[rs]),
                 "results": {e: {str(t): r for t, r in by_t.items()} for e, by_t in runs[rs].items()}}
            for rs in args.rule_sets},
        "not_run": skipped, "failed": failed,
    }
    out = args.out or os.path.join(HERE, "results", f"{shape.prefix}-{args.rows}-rows-{cores}cores.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {os.path.relpath(out)}")
    if failed:
        sys.exit(1)


def _violations(rule_set: str, runs: dict[str, dict[int, dict]]) -> dict[str, int] | None:
    counts = next((r["counts"] for by_t in runs.values() for r in by_t.values()), None)
    if counts is None:
        return None
    return {rule.name: n for rule, n in zip(datagen.rule_set(rule_set), counts)}


if __name__ == "__main__":
    main()
