"""The driver of a validate job: plan units, compile once, choose where the calls run.

The driver never reads data: it lists files, reads Parquet footers to plan, compiles
the rules once, and hands the run (batchaot/runtime: runtime.plan.UnitsRun) a placer —
the runtime's InProcess one for small inputs, or Ray worker actors (actors.py) that
call the very same UnitRunner methods.
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from contextlib import contextmanager, nullcontext

import pyarrow as pa

from ..compiler import clock
from ..errors import DataError
from ..io import sinks, violations
from ..io.units import WorkUnit, expand_paths
from ..job import JobSpec
from ..report import html
from ..result import JobResult
from ..runtime import history as run_history
from ..runtime import schema_gate
from ..runtime.plan import InProcess, Plan, UnitsRun, compile_for_units, plan_job_units
from ..runtime.progress import Quiet
from ..spec import rules_digest

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
                 output: str | None = None, mode: str = "auto", progress=None,
                 quarantine: str | None = None, history: str | None = None,
                 now: dt.datetime | None = None, memory_budget: int | None = None) -> JobResult:
    """`quarantine` (default: the job's output.quarantine) gets the rows split into valid/
    and invalid/; `history` (default: the job's `history:`) gets the run appended; `now`
    fixes current_date, now() and freshness, and is recorded with the run;
    `memory_budget` (default: the job's) bounds the dataset checks' buckets in memory."""
    started, started_at = time.perf_counter(), clock.iso(clock.wall())
    history = history or job.history
    run_history.require(job.rules, history)
    out = output or job.output or tempfile.mkdtemp(prefix=f"batchaot-{job.name}-")
    split = quarantine or job.quarantine
    # the folders are this run's from here on: locked, and every part goes to their staging
    # folders until the summary is ready (a failure leaves a summary that says so)
    with sinks.Outputs(out, split, job=job.name) as held:
        with clock.fixed(now) as instant:
            result = _validate(job, held.staging, address, workers, mode, progress or Quiet(),
                               held.quarantine_staging, history, now, started,
                               memory_budget or job.memory_budget)
        result.output, result.now, result.started_at = out, clock.iso(instant), started_at
        if result.quarantined is not None:
            result.quarantined = {"path": split, **result.quarantined}
        result.rules_hash = rules_digest([job.file, *job.rule_files])
        result.elapsed_s = time.perf_counter() - started
        summary = result.to_dict()
        held.commit(summary, html.write_staged(held.staging, summary))
    return result


def _validate(job: JobSpec, out: str, address: str | None, workers: int | None, mode: str, progress,
              quarantine: str | None, history: str | None, now: dt.datetime | None,
              started: float, budget: int | None) -> JobResult:
    """Plan, run and merge, writing parts into `out` (the run's staging folder), with
    `quarantine` (a staging folder too) every row into its valid/ or invalid/, and with
    `history` the run appended to it."""
    files = expand_paths(job.source.paths)
    with early_launch(mode, address, workers or job.workers, len(files)) as launch:
        return _planned(job, files, out, address, workers, mode, progress, quarantine, history, now,
                        started, budget, launch)


def _planned(job: JobSpec, paths: list[str], out: str, address: str | None, workers: int | None, mode: str,
             progress, quarantine: str | None, history: str | None, now: dt.datetime | None,
             started: float, budget: int | None, launch) -> JobResult:
    """_validate() of the expanded `paths`, Ray (`launch`) on its way if the run goes there."""
    units, errors = plan_job_units(paths, job.source.format, job.on_error, expanded=True)
    if not units:
        raise DataError(f"job '{job.name}': no readable input" + (f": {errors[0]}" if errors else ""))
    files = list(dict.fromkeys(u.path for u in units))
    found = schema_gate.check(job.rules, schema_gate.file_schemas(units, job.rules, job.source.csv))
    if found.stop:                  # every file's schema checked; no row read
        return JobResult(rules=found.results(job.rules), rows=0, units=len(units), files=files,
                         errors=errors, layout=violations.layout(pa.schema([]), []), stopped=found.stop,
                         output=out, mode="none", workers=0, job_name=job.name)
    plan = compile_for_units(job.rules, units, job.source.csv)
    found.apply(plan.compiled)
    with _recorder(job, plan, history, now) as record:
        result = _run_and_merge(job, plan, units, errors, out, address, workers, mode, progress, quarantine,
                                budget, launch)
        result.elapsed_s = time.perf_counter() - started
        if record is not None:
            record.record(result)
    return result


def _recorder(job: JobSpec, plan: Plan, history: str | None, now: dt.datetime | None):
    """The run's history (its checks' baselines loaded), or nothing to record in."""
    if history is None:
        return nullcontext()
    return run_history.Recorder(history, plan, job=job.name, sources=job.source.paths, now=now,
                                series=run_history.job_series(job.name, job.source.paths))


def _run_and_merge(job: JobSpec, plan: Plan, units: list[WorkUnit], errors: list[str], out: str,
             address: str | None, workers: int | None, mode: str, progress, quarantine: str | None,
             budget: int | None, launch=None) -> JobResult:
    """Run the units in-process or on Ray and merge their results."""
    run = UnitsRun(plan, units, out, csv=job.source.csv, engine=job.engine, on_error=job.on_error,
                   errors=errors, progress=progress, quarantine=quarantine, budget=budget)
    mode, used = execute(run, mode, address, workers or job.workers, launch)
    return run.result(output=out, mode=mode, workers=used, job_name=job.name, quarantined=run.quarantined)


def execute(run: UnitsRun, mode: str, address: str | None, workers: int | None,
            launch=None) -> tuple[str, int]:
    """Run `run` in this process or on Ray actors (`mode` auto: by the units' size);
    returns the mode used and how many workers ran it. `launch`: Ray and its actors,
    started before the run was planned (early_launch()); closed by its starter."""
    mode = _mode(mode, address, run.units)
    if mode == "in-process":
        runner = run.runner(threads=os.cpu_count() or 1)
        try:
            run.execute(InProcess(runner), "in-process")
        finally:
            runner.close()
        return mode, 1
    with nullcontext(launch) if launch is not None else _launch(address, workers, len(run.units)) as launched:
        used = min(launched.workers, len(run.units))
        placed = _placer(launched.take(used), run, launched.cluster)
        try:
            run.execute(placed, f"ray, {used} worker{'s' * (used > 1)}", attach=placed.actors)
        except BaseException:
            placed.keep = False
            raise
        finally:
            placed.close()
    return mode, used


def _placer(members: list, run: UnitsRun, cluster):
    from . import actors
    # actors are kept (keep_workers()) on a Ray that outlives this run, after a run that ended well
    return actors.Actors(members, run, keep=actors.KEPT.seconds > 0 and not cluster.started)


@contextmanager
def _launch(address: str | None, workers: int | None, at_most: int | None = None):
    """Ray and `workers` actors (default: one per CPU; `at_most` of them started now)."""
    from . import actors
    launched = actors.Launch(address, workers, at_most)
    try:
        yield launched
    finally:
        launched.close()


def early_launch(mode: str, address: str | None, workers: int | None, files: int):
    """_launch() now, before a run over `files` files is planned, when it goes to Ray
    whatever the plan says (mode "ray", or an address); else nothing to start yet."""
    if mode == "ray" or (mode == "auto" and address is not None):
        return _launch(address, workers, files)
    return nullcontext(None)


def _mode(mode: str, address: str | None, units: list[WorkUnit]) -> str:
    if mode in ("in-process", "ray"):
        return mode
    if address is not None:
        return "ray"
    rows = sum(u.rows for u in units if u.rows >= 0)
    size = sum(u.bytes for u in units)
    small = rows < IN_PROCESS_ROWS and (all(u.rows >= 0 for u in units) or size < IN_PROCESS_BYTES)
    return "in-process" if small or len(units) == 1 else "ray"
