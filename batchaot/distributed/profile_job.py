"""Profiling jobs (`kind: profile`, `batchaot profile`): every column's profile, computed
by the runtime that runs validation — the same units, runner and placers, in this
process or on Ray workers — with one profiler per column as its dataset checks.
"""
from __future__ import annotations

import time
from typing import Sequence

from ..errors import DataError
from ..io import sinks, sources
from ..job import JobSpec
from ..profile import Profile, profilers
from ..runtime.plan import Plan, UnitsRun, plan_job_units
from ..runtime.progress import Quiet
from .driver import execute


def run_profile_job(job: JobSpec, *, address: str | None = None, workers: int | None = None,
                    output: str | None = None, mode: str = "auto", progress=None) -> Profile:
    """A `kind: profile` job; with an output folder, its summary.json is the profile."""
    def run() -> Profile:
        return profile_files(job.source.paths, fmt=job.source.format, csv=job.source.csv,
                             on_error=job.on_error, address=address, workers=workers or job.workers,
                             mode=mode, progress=progress, job_name=job.name)
    out = output or job.output
    if out is None:
        return run()
    with sinks.OutputRun(out, job=job.name) as target:
        profile = run()
        profile.output = out
        target.commit(profile.to_dict())
    return profile


def profile_files(paths: Sequence[str], *, fmt: str | None = None, csv: dict | None = None,
                  on_error: str = "continue", address: str | None = None, workers: int | None = None,
                  mode: str = "auto", progress=None, job_name: str | None = None) -> Profile:
    """Profile files (paths, globs, folders): plan their units, map every column's
    profiler over each unit, merge the states and finish them."""
    started = time.perf_counter()
    units, errors = plan_job_units(paths, fmt, on_error)
    if not units:
        raise DataError("no readable input to profile" + (f": {errors[0]}" if errors else ""))
    files = list(dict.fromkeys(u.path for u in units))
    schema = sources.read_schema(units[0].path, units[0].format, csv)
    plan = Plan.of_checks(profilers(schema, files), schema)
    run = UnitsRun(plan, units, None, csv=csv, on_error=on_error, errors=errors,
                   progress=progress or Quiet())
    mode, used = execute(run, mode, address, workers)
    return Profile([o.column for o in run.check_outcomes], rows=sum(r.rows for r in run.merged.values()),
                   sources=files, errors=run.errors, elapsed_s=time.perf_counter() - started,
                   mode=mode, workers=used, units=len(units), job_name=job_name)
