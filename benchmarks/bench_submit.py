"""End-to-end `submit` on a multi-file Parquet dataset, and compile-job throughput.

    python benchmarks/bench_submit.py [--rows 12000000] [--files 6] [--rules 10000]
                                      [--nodes N] [--repeat R] [--no-compile] [--early-ab N]

Measures, on this machine: the cost of starting Ray; the time of `batchaot submit`
in-process and on that running Ray with 1 and N worker actors (which includes starting
the actors), and on N workers kept from an earlier run (keep_workers), against
`batchaot.validate` on the same files and DuckDB reading them;
scaling efficiency; and a compile job over generated rules files (rules/s, cold and warm
cache, in-process and on Ray). Ray is an embedded local Ray with one CPU per core, or,
with --nodes N, a `ray.cluster_utils.Cluster` of N nodes of one CPU each on this machine
(separate raylets and object stores: actors are spread over nodes and results cross them
as on a real cluster). Writes JSON to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import duckdb
import ray

import batchaot
from batchaot.distributed import keep_workers
from batchaot.distributed.compile_job import chunks
from batchaot.samples import write_orders
from timing import write_results

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "jobs", "rules", "orders_rows.yaml")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ray_startup(nodes: int) -> tuple[float, object]:
    """Start Ray once (embedded, or a cluster of `nodes` one-CPU nodes); the submit runs
    below reuse it, as on a cluster. Returns (seconds, the Cluster to shut down or None)."""
    kwargs = dict(include_dashboard=False, log_to_driver=False)
    if not nodes:
        t, _ = timed(lambda: ray.init(num_cpus=os.cpu_count(), **kwargs))
        return t, None
    from ray.cluster_utils import Cluster

    def start() -> Cluster:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, **kwargs)
        cluster.wait_for_nodes()
        return cluster
    return timed(start)


def make_rules(folder: str, n: int, per_file: int = 100) -> None:
    ops = ["amount > {k}", "quantity BETWEEN 1 AND {k}", "discount <= amount * 0.{k}",
           "status IN ('new', 'paid') OR amount > {k}", "coalesce(amount, 0) + {k} > discount",
           "CASE WHEN quantity > {k} THEN amount ELSE 0 END >= 0", "created_at > DATE '2024-01-01' + {k}"]
    os.makedirs(folder, exist_ok=True)
    for f in range(0, n, per_file):
        with open(os.path.join(folder, f"rules-{f // per_file:04d}.yaml"), "w") as fh:
            for k in range(f, min(f + per_file, n)):
                fh.write(f"- {{name: r{k}, check: \"{ops[k % len(ops)].format(k=k % 97 + 1)}\"}}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=12_000_000)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=0, help="a local Cluster of N one-CPU nodes (default: embedded Ray)")
    ap.add_argument("--repeat", type=int, default=1, help="best of R runs of each submit")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-job throughput part")
    ap.add_argument("--early-ab", type=int, default=0, metavar="ROUNDS",
                    help="also time N rounds of actors started before vs after planning, interleaved")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="batchaot-bench-")
    cores = os.cpu_count() or 1
    try:
        data = os.path.join(work, "data")
        write_orders(data, args.rows, args.files, seed=7)
        job_path = os.path.join(work, "job.yaml")
        with open(job_path, "w") as fh:
            fh.write(f"name: bench\nsource: {{path: 'data/*.parquet'}}\nrules_from: {RULES}\n")
        job = batchaot.Job.from_yaml(job_path)
        res: dict = {"rows": args.rows, "files": args.files, "cores": cores,
                     "machine": platform.machine(), "batchaot": batchaot.__version__}
        files = sorted(os.path.join(data, f) for f in os.listdir(data))
        res["validate_in_memory_s"], ref = timed(lambda: batchaot.validate(files, RULES))
        res["ray_startup_s"], cluster = ray_startup(args.nodes)
        res["nodes"] = args.nodes
        slots = args.nodes or cores
        runs = {"in-process": dict(mode="in-process")}
        runs.update({f"ray {w} worker{'s' * (w > 1)}": dict(mode="ray", workers=w) for w in range(1, slots + 1)})
        counts = [r["violations"] for r in ref.to_dict()["rules"]]
        for name, kw in runs.items():
            def submit():
                out = job.run(output=os.path.join(work, "out", name.replace(" ", "_")), **kw)
                assert [r["violations"] for r in out.to_dict()["rules"]] == counts, name
            res[f"submit {name} s"] = min(timed(submit)[0] for _ in range(args.repeat))
        # a driver that runs job after job (keep_workers): the actors of the first run
        # (not timed) serve the next ones, which start none
        kept = f"ray {slots} worker{'s' * (slots > 1)} kept"
        keep_workers(600)
        job.run(output=os.path.join(work, "out", "warm"), mode="ray", workers=slots)
        res[f"submit {kept} s"] = min(timed(lambda: job.run(output=os.path.join(work, "out", "kept"), mode="ray",
                                                            workers=slots))[0] for _ in range(args.repeat))
        keep_workers(0)
        if args.early_ab:
            res["early_start_ab"] = early_start_ab(job, os.path.join(work, "out", "ab"), slots, args.early_ab)
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        preds = [s.body for s in job.spec.rules]
        con = duckdb.connect()
        sql = ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for p in preds)
        res["duckdb_files_s"], duck = timed(lambda: con.execute(
            f"SELECT {sql} FROM read_parquet('{data}/*.parquet')").fetchall()[0])
        assert list(duck) == counts, (duck, counts)
        one, many = res["submit ray 1 worker s"], res[f"submit ray {slots} worker{'s' * (slots > 1)} s"]
        res["scaling_efficiency"] = one / (many * slots)
        res["ray_all_workers_vs_in_process"] = many / res["submit in-process s"]
        res["ray_kept_workers_vs_in_process"] = res[f"submit {kept} s"] / res["submit in-process s"]
        if args.no_compile:
            return _report(res, args)
        # compile throughput
        rules_dir = os.path.join(work, "rules")
        make_rules(rules_dir, args.rules)
        cjob = os.path.join(work, "compile.yaml")
        with open(cjob, "w") as fh:
            fh.write(f"name: c\nkind: compile\nrules_from: 'rules/*.yaml'\nschema: {{path: {files[0]}}}\n")
        for mode in ("in-process", "ray"):
            cache = os.path.join(work, f"cache-{mode}")
            os.environ["BATCHAOT_CACHE_DIR"] = cache
            for temp in ("cold", "warm"):
                secs, out = timed(lambda: batchaot.Job.from_yaml(cjob).run(mode=mode))
                assert out.summary["compiled"] == args.rules
                res[f"compile {mode} {temp} rules/s"] = args.rules / secs
        res["compile_chunks"] = len(chunks(sorted(os.listdir(rules_dir))))
        _report(res, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def early_start_ab(job, out: str, workers: int, rounds: int) -> dict:
    """Ray actors started before the driver plans (driver.early_launch) or after, runs
    interleaved (ABBA...) on the running Ray so the machine's drift hits both alike."""
    import contextlib
    import statistics

    from batchaot.distributed import driver
    variants = {"early": driver.early_launch, "late": lambda *a, **k: contextlib.nullcontext(None)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for k in range(rounds):
            for name in (list(variants) if k % 2 == 0 else list(variants)[::-1]):
                driver.early_launch = variants[name]
                seconds[name].append(timed(lambda: job.run(output=out, mode="ray", workers=workers))[0])
    finally:
        driver.early_launch = variants["early"]
    return {name: {"median_s": statistics.median(v), "best_s": min(v), "runs": v} for name, v in seconds.items()}


def _report(res: dict, args: argparse.Namespace) -> None:
    for k, v in res.items():
        print(f"{k:<36} {v:,.3f}" if isinstance(v, float) else f"{k:<36} {v}")
    stem = f"submit-{args.rows}-rows" + (f"-{args.nodes}nodes" if args.nodes else "")
    write_results(stem + ("-early-ab" if args.early_ab else ""), res)


if __name__ == "__main__":
    main()
