"""Running jobs over many files, cores and machines.

This package only decides *where* the runtime's calls run (batchaot/runtime): the driver
plans and compiles, then runs small inputs in this process and the rest on Ray worker
actors. `actors.py` (the driver's side) and `worker.py` (the actor) are the only modules
that import ray; `compile_job.py` runs `kind: compile` jobs, `profile_job.py` `kind:
profile` jobs.
"""
from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..job import JobSpec
    from ..profile import Profile
    from ..result import JobResult
    from .compile_job import CompileResult

# Imported when used: a Ray worker process imports this package (for its worker
# module) and must not load the compiler and Numba before its environment is set.
_LAZY = {"JobResult": "..result", "CompileResult": ".compile_job", "Profile": "..profile",
         "keep_workers": ".actors", "release_workers": ".actors"}

__all__ = ["Job", "JobResult", "CompileResult", "Profile", "keep_workers", "release_workers"]

MODES = ("auto", "in-process", "ray")


class Job:
    """A job file, ready to run: ``batchaot.Job.from_yaml("jobs/demo.yaml").run()``."""

    def __init__(self, spec: JobSpec):
        self.spec = spec

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "Job":
        from ..job import load_job
        return cls(load_job(os.fspath(path)))

    def run(self, address: str | None = None, workers: int | None = None,
            output: str | None = None, mode: str = "auto", progress=None,
            quarantine: str | None = None, history: str | None = None,
            now: str | dt.datetime | None = None,
            memory_budget: int | str | None = None) -> JobResult | CompileResult | Profile:
        """Run on an embedded local Ray (default), a cluster (`address`), or in-process.

        `mode`: "auto" runs small inputs in-process and the rest on Ray; "ray" or
        "in-process" force one. `progress`: a batchaot.runtime.progress reporter.
        `quarantine`: a folder for valid/ and invalid/ rows (overrides output.quarantine).
        `history`: a metrics history file to append the run to (default: the job's
        `history:`). `now` (else the job's `now:`, else the wall clock) fixes
        current_date/now()/freshness, and is recorded in the history. `memory_budget`
        (bytes, or a size such as "2GB"; else the job's `memory_budget:`): what unique and
        reference keep in memory in this process before they spill buckets to disk.
        """
        from ..compiler import clock
        from ..errors import SpecError
        from ..io.memory import use_process_pool
        from ..job import parse_size
        from ..runtime.progress import Quiet
        from .compile_job import run_compile
        from .driver import run_validate
        from .profile_job import run_profile_job

        use_process_pool()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self.spec.kind != "validate" and (quarantine is not None or history is not None):
            option = "quarantine" if quarantine is not None else "history"
            raise SpecError(f"job '{self.spec.name}' is a {self.spec.kind} job: --{option} is for validate jobs")
        if self.spec.kind == "compile":
            return run_compile(self.spec, address=address, workers=workers, output=output, mode=mode)
        if self.spec.kind == "profile":
            return run_profile_job(self.spec, address=address, workers=workers, output=output, mode=mode,
                                   progress=progress or Quiet())
        fixed = clock.parse(now, "now") if now is not None else self.spec.now
        budget = parse_size(memory_budget, "memory_budget") if memory_budget is not None else None
        return run_validate(self.spec, address=address, workers=workers, output=output, mode=mode,
                            progress=progress or Quiet(), quarantine=quarantine, history=history,
                            now=fixed, memory_budget=budget)


def __getattr__(name: str):
    import importlib
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
