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
from contextlib import nullcontext

from ..errors import DataError
from ..io import sinks
from ..io.units import WorkUnit
from ..job import JobSpec
from ..result import JobResult
from ..runtime import history as run_history
from ..runtime.plan import InProcess, Plan, UnitsRun, compile_for_units, plan_job_units
from ..runtime.progress import Quiet

# Without --address, below these sizes a job runs in this process, on all its cores:
# measured on 2 cores with 12M rows (benchmarks/results/submit-12000000-rows-2cores.json)
# in-process took 0.95 s and an already running local Ray with 2 workers 1.85 s (actor
# start-up and Numba initialization per worker, one thread each), plus 3.6 s to start
# Ray — so a local Ray only pays for data far larger than that, or on a cluster
# (--address), where it always runs.
IN_PROCESS_ROWS = 64_000_000
IN_PROCESS_BYTES = 4 << 30

__all__ = ["JobResult", "run_validate"]


def run_validate(job: JobSpec, *, address: str | None = None, workers: int | None = None,
                 output: str | None = None, mode: str = "auto", progress=None,
                 history: str | None = None, now=None) -> JobResult:
    """`history` (default: the job's `history:`) gets the run appended; `now`: the run's
    fixed "now", recorded with it."""
    started = time.perf_counter()
    history = history or job.history
    run_history.require(job.rules, history)
    out = output or job.output or tempfile.mkdtemp(prefix=f"batchaot-{job.name}-")
    # the folder is this run's from here on: locked, and every part goes to its staging
    # folder until the summary is ready (a failure leaves a summary that says so)
    with sinks.OutputRun(out, job=job.name) as target:
        plan, units, errors = _plan(job)
        with _recorder(job, plan, history, now) as record:
            result = _validate(job, plan, units, errors, target.staging, address, workers, mode,
                               progress or Quiet())
            result.output = out
            result.elapsed_s = time.perf_counter() - started
            if record is not None:
                record.record(result)
        target.commit(result.to_dict())
    return result


def _plan(job: JobSpec) -> tuple[Plan, list[WorkUnit], list[str]]:
    """The job's units (and the files that cannot be read), and its rules compiled."""
    units, errors = plan_job_units(job.source.paths, job.source.format, job.on_error)
    if not units:
        raise DataError(f"job '{job.name}': no readable input" + (f": {errors[0]}" if errors else ""))
    return compile_for_units(job.rules, units, job.source.csv), units, errors


def _recorder(job: JobSpec, plan: Plan, history: str | None, now):
    """The run's history (its checks' baselines loaded), or nothing to record in."""
    if history is None:
        return nullcontext()
    return run_history.Recorder(history, plan, job=job.name, sources=job.source.paths, now=now,
                                series=run_history.job_series(job.name, job.source.paths))


def _validate(job: JobSpec, plan: Plan, units: list[WorkUnit], errors: list[str], out: str,
              address: str | None, workers: int | None, mode: str, progress) -> JobResult:
    """Run and merge, writing parts into `out` (the run's staging folder)."""
    run = UnitsRun(plan, units, out, csv=job.source.csv, engine=job.engine, on_error=job.on_error,
                   errors=errors, progress=progress)
    mode = _mode(mode, address, units)
    used = 1
    if mode == "in-process":
        run.execute(InProcess(run.runner(threads=os.cpu_count() or 1)), "in-process")
    else:
        from . import actors
        cluster = actors.Cluster(address, workers or job.workers)
        try:
            used = min(cluster.workers, len(units))
            placed = actors.Actors(used, run)
            try:
                run.execute(placed, f"ray, {used} worker{'s' * (used > 1)}", attach=placed.actors)
            finally:
                placed.close()
        finally:
            cluster.close()
    return run.result(output=out, mode=mode, workers=used, job_name=job.name)


def _mode(mode: str, address: str | None, units: list[WorkUnit]) -> str:
    if mode in ("in-process", "ray"):
        return mode
    if address is not None:
        return "ray"
    rows = sum(u.rows for u in units if u.rows >= 0)
    size = sum(u.bytes for u in units)
    small = rows < IN_PROCESS_ROWS and (all(u.rows >= 0 for u in units) or size < IN_PROCESS_BYTES)
    return "in-process" if small or len(units) == 1 else "ray"
