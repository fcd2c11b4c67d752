"""The driver of a validate job: plan units, compile once, choose where the calls run.

The driver never reads data: it lists files, reads Parquet footers to plan, compiles
the rules once, and hands the run (batchaot/runtime: runtime.plan.UnitsRun) a placer —
the runtime's InProcess one for small inputs, or Ray worker actors (actors.py) that
call the very same UnitRunner methods.
"""
from __future__ import annotations

import os
import tempfile
import time

from ..errors import DataError
from ..io import sinks
from ..io.units import WorkUnit
from ..job import JobSpec
from ..result import JobResult
from ..runtime.plan import InProcess, UnitsRun, compile_for_units, plan_job_units
from ..runtime.progress import Quiet

# Without --address, below these sizes a job runs in this process, on all its cores:
# measured on 2 cores with 12M rows (benchmarks/results/submit-12000000-rows-2cores.json)
# in-process took 0.95 s and an already running local Ray with 2 workers 1.85 s (actor
# start-up and Numba initialization per worker, one thread each), plus 3.6 s to start
# Ray — so a local Ray only pays for data far larger than that, or on a cluster
# (--address), where it always runs.
IN_PROCESS_ROWS = 64_000_000
IN_PROCESS_BYTES = 4 << 30

__all__ = ["JobResult", "execute", "run_validate"]


def run_validate(job: JobSpec, *, address: str | None = None, workers: int | None = None,
                 output: str | None = None, mode: str = "auto", progress=None) -> JobResult:
    started = time.perf_counter()
    out = output or job.output or tempfile.mkdtemp(prefix=f"batchaot-{job.name}-")
    # the folder is this run's from here on: locked, and every part goes to its staging
    # folder until the summary is ready (a failure leaves a summary that says so)
    with sinks.OutputRun(out, job=job.name) as target:
        result = _validate(job, target.staging, address, workers, mode, progress or Quiet())
        result.output = out
        result.elapsed_s = time.perf_counter() - started
        target.commit(result.to_dict())
    return result


def _validate(job: JobSpec, out: str, address: str | None, workers: int | None, mode: str,
              progress) -> JobResult:
    """Plan, run and merge, writing parts into `out` (the run's staging folder)."""
    units, errors = plan_job_units(job.source.paths, job.source.format, job.on_error)
    if not units:
        raise DataError(f"job '{job.name}': no readable input" + (f": {errors[0]}" if errors else ""))
    plan = compile_for_units(job.rules, units, job.source.csv)
    run = UnitsRun(plan, units, out, csv=job.source.csv, engine=job.engine, on_error=job.on_error,
                   errors=errors, progress=progress)
    mode, used = execute(run, mode, address, workers or job.workers)
    return run.result(output=out, mode=mode, workers=used, job_name=job.name)


def execute(run: UnitsRun, mode: str, address: str | None, workers: int | None) -> tuple[str, int]:
    """Run `run` in this process or on Ray actors (`mode` auto: by the units' size);
    returns the mode used and how many workers ran it."""
    mode = _mode(mode, address, run.units)
    if mode == "in-process":
        run.execute(InProcess(run.runner(threads=os.cpu_count() or 1)), "in-process")
        return mode, 1
    from . import actors
    cluster = actors.Cluster(address, workers)
    try:
        used = min(cluster.workers, len(run.units))
        placed = actors.Actors(used, run)
        try:
            run.execute(placed, f"ray, {used} worker{'s' * (used > 1)}", attach=placed.actors)
        finally:
            placed.close()
    finally:
        cluster.close()
    return mode, used


def _mode(mode: str, address: str | None, units: list[WorkUnit]) -> str:
    if mode in ("in-process", "ray"):
        return mode
    if address is not None:
        return "ray"
    rows = sum(u.rows for u in units if u.rows >= 0)
    size = sum(u.bytes for u in units)
    small = rows < IN_PROCESS_ROWS and (all(u.rows >= 0 for u in units) or size < IN_PROCESS_BYTES)
    return "in-process" if small or len(units) == 1 else "ray"
