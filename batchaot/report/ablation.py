"""`batchaot bench --ablation JOB.yaml`: what each part of batchaot buys, measured.

For one validate job, times the in-process run with every part on, with each part
removed, and with each part alone (all others off): the C optimizer, row-group
zero-tick, the C memory pool, and the fused JIT tier when this build has one; then
the job on Ray with 1 and N workers. Every configuration must give the same counts.
A part that buys nothing is reported as such.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from ..compiler import compile_rule, compile_rules
from ..engine.run import Executor
from ..errors import SpecError
from ..io import sources
from ..io.units import expand_paths, plan
from ..job import JobSpec
from ..runtime.unit import UnitRunner

PARTS = ("optimizer", "zero_tick", "pool", "fused")


class NumpyPool:
    """The pool's interface over plain numpy allocations: the 'pool off' configuration."""

    def take(self, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, arr: np.ndarray) -> None:
        pass


@dataclass
class Config:
    name: str
    on: frozenset

    def has(self, part: str) -> bool:
        return part in self.on


def available_parts() -> tuple[str, ...]:
    try:
        Executor(engine="fused")     # present once the fused tier is built in
        return PARTS
    except TypeError:
        return PARTS[:-1]


def configs(parts: tuple[str, ...]) -> list[Config]:
    full = frozenset(parts)
    out = [Config("all parts", full), Config("no parts", frozenset())]
    out += [Config(f"without {p}", full - {p}) for p in parts]
    out += [Config(f"only {p}", frozenset({p})) for p in parts]
    return out


def _programs(job: JobSpec, schema, optimize: bool):
    if optimize:
        return compile_rules(list(job.rules), schema)
    return [compile_rule(r.name, r.body, schema, strict=r.strict, passes=()) for r in job.rules]


def _executor(cfg: Config) -> Executor:
    pool = None if cfg.has("pool") else NumpyPool()
    if "fused" in available_parts():
        return Executor(pool=pool, engine="fused" if cfg.has("fused") else "vm")
    return Executor(pool=pool)


def run_config(job: JobSpec, units, schema, cfg: Config, repeat: int) -> tuple[float, list[int], int, int]:
    programs = _programs(job, schema, cfg.has("optimizer"))
    blobs = [p.to_bytes() for p in programs]
    runner = UnitRunner(blobs, None, job.source.csv, use_statistics=cfg.has("zero_tick"),
                        executor=_executor(cfg))
    runner.run(units[0])                       # warm: kernels loaded, files in page cache
    best, counts, skipped = float("inf"), [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        results = [runner.run(u) for u in units]
        best = min(best, time.perf_counter() - t0)
        errors = [r.error for r in results if r.error]
        if errors:
            raise SpecError(f"ablation: {errors[0]}")
        counts = list(np.sum([r.counts.to_pydict()["violations"] for r in results], axis=0))
        skipped = sum(r.row_groups_skipped for r in results)
    return best, [int(c) for c in counts], sum(len(p.code) for p in programs), skipped


def ablation(job: JobSpec, repeat: int = 3, workers: int | None = None, ray: bool = True) -> dict:
    if job.kind != "validate":
        raise SpecError(f"{job.file}: --ablation needs a validate job")
    if not all(r.is_row_rule for r in job.rules):
        raise SpecError(f"{job.file}: --ablation measures row rules; this job has dataset-level checks")
    units = plan(expand_paths(list(job.source.paths)), job.source.format)
    schema = sources.read_schema(units[0].path, units[0].format, job.source.csv)
    parts = available_parts()
    rows: list[dict] = []
    reference = None
    for cfg in configs(parts):
        secs, counts, instructions, skipped = run_config(job, units, schema, cfg, repeat)
        reference = reference or counts
        if counts != reference:
            raise AssertionError(f"ablation: '{cfg.name}' counted {counts}, 'all parts' {reference}")
        rows.append({"config": cfg.name, "parts": sorted(cfg.on), "seconds": secs,
                     "instructions": instructions, "row_groups_skipped": skipped})
    if ray:
        rows += _workers(job, workers)
    return {"job": job.name, "rows": sum(u.rows for u in units if u.rows > 0), "parts": list(parts),
            "cores": os.cpu_count(), "counts": reference, "results": rows,
            "verdicts": verdicts(rows, parts)}


def _workers(job: JobSpec, workers: int | None) -> list[dict]:
    from ..distributed import Job
    out = []
    most = workers or os.cpu_count() or 1
    for n in sorted({1, most}):
        t0 = time.perf_counter()
        Job(job).run(mode="ray", workers=n)
        out.append({"config": f"ray, {n} worker{'s' * (n > 1)}", "parts": list(PARTS),
                    "seconds": time.perf_counter() - t0, "instructions": None,
                    "row_groups_skipped": None})
    return out


def verdicts(rows: list[dict], parts: tuple[str, ...]) -> dict[str, str]:
    """One honest sentence per part: what removing it costs, what it buys alone."""
    t = {r["config"]: r["seconds"] for r in rows}
    ins = {r["config"]: r["instructions"] for r in rows}
    out = {}
    for p in parts:
        removed = t[f"without {p}"] / t["all parts"]
        alone = t["no parts"] / t[f"only {p}"]
        extra = ""
        if p == "optimizer":
            extra = f"; instructions {ins['without optimizer']} → {ins['all parts']}"
        if removed < 1.05 and alone < 1.05:
            out[p] = f"buys nothing measurable on this job (removed: {removed:.2f}x, alone: {alone:.2f}x){extra}"
        else:
            out[p] = f"removing it costs {removed:.2f}x; alone it speeds the bare run up {alone:.2f}x{extra}"
    return out


def write(report: dict, folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"ablation-{report['job']}-{report['cores']}cores.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2)
    written = [path]
    png = plot(report, path[:-5] + ".png")
    if png:
        written.append(png)
    return written


def plot(report: dict, path: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["results"]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    ax.barh([r["config"] for r in rows][::-1], [r["seconds"] for r in rows][::-1], color="#4c72b0")
    ax.set_xlabel("seconds (best of runs)")
    ax.set_title(f"batchaot ablation: {report['job']}, {report['rows']:,} rows, {report['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(report: dict) -> str:
    base = next(r["seconds"] for r in report["results"] if r["config"] == "all parts")
    lines = [f"{'configuration':<28}{'seconds':>10}{'vs all parts':>14}{'instructions':>14}"
             f"{'groups skipped':>16}"]
    for r in report["results"]:
        ins = "" if r["instructions"] is None else str(r["instructions"])
        skipped = "" if r["row_groups_skipped"] is None else str(r["row_groups_skipped"])
        lines.append(f"{r['config']:<28}{r['seconds']:>10.3f}{r['seconds'] / base:>13.2f}x{ins:>14}"
                     f"{skipped:>16}")
    lines.append("")
    lines += [f"{p}: {v}" for p, v in report["verdicts"].items()]
    return "\n".join(lines)
