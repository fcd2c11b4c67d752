"""The driver of a validate job: plan units, run them (in-process or on Ray), merge.

The driver never reads data: it lists files, reads Parquet footers to plan, compiles
the rules once, and sends Program bytes to the workers. Results come back keyed by
unit id and are merged by key, so a unit that Ray runs twice counts once.
"""
from __future__ import annotations

import glob
import os
import tempfile
import time
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.parquet as pq

from ..api import compile_rules
from ..engine.run import RuleOutcome
from ..compiler.program import Program
from ..engine.unit import COUNT_FIELDS, UnitResult, UnitRunner, reduce_bucket
from ..errors import DataError, RuleError
from ..io import sinks, sources
from ..io.units import WorkUnit, expand_paths, plan
from ..job import JobSpec
from ..result import CheckResult, Result, RuleResult
from .gather import CheckGather
from .progress import Quiet

# Without --address, below these sizes a job runs in this process, on all its cores:
# measured on 2 cores with 12M rows (benchmarks/results/submit-12000000-rows-2cores.json)
# in-process took 0.95 s and an already running local Ray with 2 workers 1.85 s (actor
# start-up and Numba initialization per worker, one thread each), plus 3.6 s to start
# Ray — so a local Ray only pays for data far larger than that, or on a cluster
# (--address), where it always runs.
IN_PROCESS_ROWS = 64_000_000
IN_PROCESS_BYTES = 4 << 30
# A referenced dataset up to this many rows is read once into a key set every worker
# shares; a larger one (or one of unknown size) is hash-partitioned like the checked rows.
SHARED_REFERENCE_ROWS = 10_000_000
REFERENCE_BUCKETS = 16


@dataclass
class JobResult(Result):
    """A Result whose violating rows live in part files rather than in memory."""

    output: str | None = None
    job_name: str = ""
    mode: str = "in-process"
    workers: int = 1
    units: int = 0
    files: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    row_groups_skipped: int = 0
    row_groups_proven: dict = field(default_factory=dict)   # rule → row groups proven TRUE

    @property
    def ok(self) -> bool:
        """Unchecked data never passes: a file that could not be read fails the run."""
        return super().ok and not self.errors

    def to_dict(self) -> dict:
        doc = super().to_dict()
        doc.update(job=self.job_name, mode=self.mode, workers=self.workers, units=self.units,
                   files=len(self.files), errors=self.errors, output=self.output,
                   row_groups_skipped=self.row_groups_skipped)
        for rule in doc["rules"]:
            rule["row_groups_proven"] = self.row_groups_proven.get(rule["name"], 0)
        return doc

    @property
    def violations(self) -> pa.Table:  # type: ignore[override]
        parts = sorted(glob.glob(os.path.join(self.output or "", "violations", "part-*.parquet")))
        if not parts:
            return pa.table({"rule": pa.array([], pa.string()), "source": pa.array([], pa.string()),
                             "row": pa.array([], pa.int64())})
        # row rules' and checks' parts have different columns: missing ones are NULL
        return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")


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
    units, errors = _plan(job)
    if not units:
        raise DataError(f"job '{job.name}': no readable input" + (f": {errors[0]}" if errors else ""))
    compiled = _compile(job, units)
    programs = [c for c in compiled if isinstance(c, Program)]
    checks = [c for c in compiled if not isinstance(c, Program)]
    sides = _partition_references(checks)
    blobs = [p.to_bytes() for p in programs]
    mode = _mode(mode, address, units)
    merged: dict[str, UnitResult] = {}
    counts = {p.name: RuleOutcome(p.name, zero_tick=p.zero_tick) for p in programs}
    proven = {p.name: 0 for p in programs}
    gather = CheckGather(checks, out)

    def on_result(res: UnitResult, buckets: list) -> None:
        if res.unit in merged:          # at-least-once delivery: count each unit once
            return
        merged[res.unit] = res
        if res.error:
            errors.append(res.error)
            if job.on_error == "stop":
                raise DataError(f"{res.error} (on_error: stop)")
        else:
            _add(counts, proven, res.counts)
            gather.add(res, buckets)
        progress.advance(res.rows, sum(1 for o in counts.values() if o.violations), res.error)

    known_rows = sum(u.rows for u in units if u.rows >= 0)
    used_workers = 1
    try:
        if mode == "in-process":
            progress.start(len(units), known_rows, "in-process")
            runner = UnitRunner(blobs, out, job.source.csv, checks=checks, threads=os.cpu_count() or 1)
            check_outcomes = _run_here(runner, units, sides, gather, on_result, progress)
        else:
            from . import pool
            cluster = pool.Cluster(address, workers or job.workers)
            used_workers = min(cluster.workers, len(units))
            try:
                progress.start(len(units), known_rows, f"ray, {used_workers} worker{'s' * (used_workers > 1)}")
                workers_pool = pool.WorkerPool(used_workers, blobs, checks, out, job.source.csv)
                try:
                    check_outcomes = _run_on_ray(workers_pool, units, sides, checks, gather, on_result, progress)
                finally:
                    workers_pool.close()
            finally:
                cluster.close()
    finally:
        progress.finish()
    _clear_temporaries(out)
    return JobResult(rules=_results(job, compiled, counts, check_outcomes, len(errors)),
                     rows=sum(r.rows for r in merged.values()), data=None, output=out, mode=mode,
                     workers=used_workers, units=len(units), job_name=job.name,
                     files=sorted({u.path for u in units}), errors=errors,
                     row_groups_skipped=sum(r.row_groups_skipped for r in merged.values()),
                     row_groups_proven=proven)


def _run_here(runner: UnitRunner, units: list[WorkUnit], sides: list, gather: CheckGather,
              on_result, progress) -> list:
    """Sides, units and bucket reduces in this process; the checks' outcomes."""
    _note_sides(progress, sides)
    for i, unit in sides:
        gather.add_side(i, *runner.run_side(i, unit))
    for unit in units:
        on_result(*runner.run_split(unit))
    return gather.finish(lambda jobs: _reduce_here(runner.checks, jobs, runner.output), progress.note)


def _run_on_ray(workers_pool, units: list[WorkUnit], sides: list, checks: list, gather: CheckGather,
                on_result, progress) -> list:
    """The same three phases on the pool's actors."""
    progress.attach(workers_pool.actors)
    _note_sides(progress, sides)
    workers_pool.run_sides(sides, checks, gather.add_side)
    workers_pool.run_units(units, on_result)
    return gather.finish(workers_pool.reduce, progress.note)


def _partition_references(checks: list) -> list[tuple[int, WorkUnit]]:
    """Partition the reference checks whose referenced dataset is large (or of unknown
    size); their side-input units, as (check index, unit)."""
    sides = []
    for i, check in enumerate(checks):
        if not hasattr(check, "partition") or "://" in check.dataset:
            continue
        planned = check.side_units()          # footers only: the rows, when they tell
        if any(u.rows < 0 for u in planned) or sum(u.rows for u in planned) > SHARED_REFERENCE_ROWS:
            check.partition(REFERENCE_BUCKETS)
            sides += [(i, unit) for unit in planned]
    return sides


def _note_sides(progress, sides: list) -> None:
    if sides:
        progress.note(f"partitioning {len(sides)} unit(s) of referenced data by key hash")


def _reduce_here(checks: list, jobs: list, out: str) -> dict:
    return {(i, b): reduce_bucket(checks[i], i, b, items, out) for i, b, items in jobs}


def _results(job: JobSpec, compiled: list, counts: dict[str, RuleOutcome],
             check_outcomes: list, errors: int) -> list:
    """Per rule, in the job's order: a RuleResult or a CheckResult. With `errors` (files
    or units that could not be read), a dataset check saw part of the data only: its
    answer (no duplicates, a row count, ...) is not one about the dataset, so it fails
    and says why, rather than pass on what happened to be read."""
    for outcome in check_outcomes:
        if errors:
            outcome.passed = False
            outcome.details["incomplete"] = (f"{errors} file(s) or unit(s) could not be read (see errors): "
                                             "computed over the rest of the data only")
    found = iter(check_outcomes)
    return [RuleResult(s, c, counts[c.name]) if isinstance(c, Program) else CheckResult(s, c, next(found))
            for s, c in zip(job.rules, compiled)]


def _plan(job: JobSpec) -> tuple[list[WorkUnit], list[str]]:
    """Units of every readable file; unreadable ones become errors (or stop the job)."""
    units: list[WorkUnit] = []
    errors: list[str] = []
    for index, path in enumerate(expand_paths(list(job.source.paths))):
        try:
            found = plan([path], job.source.format)
        except DataError as exc:
            if job.on_error == "stop":
                raise DataError(f"{exc} (on_error: stop)") from None
            errors.append(str(exc))
            continue
        units += [_renumber(u, index) for u in found]
    return units, errors


def _renumber(unit: WorkUnit, index: int) -> WorkUnit:
    """Unit ids carry the file's index in the whole job, not in a one-file plan."""
    return replace(unit, id=f"{index:04d}-{unit.id.split('-', 1)[1]}")


SCHEMA_TRIES = 32     # files whose schema is tried before a rule that binds to none is an error


def _compile(job: JobSpec, units: list[WorkUnit]) -> list:
    """The rules bound to the schema of the first file that has what they read. Under
    schema drift, a file that lacks a column (or holds it in another type) fails its own
    unit, naming the file and the column, under `on_error` like any unreadable file,
    whether it comes first or last; only a rule that binds to no file is an error here."""
    first_error: Exception | None = None
    formats = {u.path: u.format for u in units}
    for path in list(formats)[:SCHEMA_TRIES]:
        try:
            return compile_rules(list(job.rules), sources.read_schema(path, formats[path], job.source.csv))
        except (RuleError, DataError) as exc:
            first_error = first_error or exc
    raise first_error


def _mode(mode: str, address: str | None, units: list[WorkUnit]) -> str:
    if mode in ("in-process", "ray"):
        return mode
    if address is not None:
        return "ray"
    rows = sum(u.rows for u in units if u.rows >= 0)
    size = sum(u.bytes for u in units)
    small = rows < IN_PROCESS_ROWS and (all(u.rows >= 0 for u in units) or size < IN_PROCESS_BYTES)
    return "in-process" if small or len(units) == 1 else "ray"


def _add(counts: dict[str, RuleOutcome], proven: dict[str, int], batch: pa.RecordBatch) -> None:
    cols = batch.to_pydict()
    for i, name in enumerate(cols["rule"]):
        o = counts[name]
        for f in COUNT_FIELDS:
            setattr(o, f, getattr(o, f) + cols[f][i])
        proven[name] += cols["row_groups_proven"][i]


def _clear_temporaries(out: str) -> None:
    """Half-written parts of killed workers (their retries wrote the real ones)."""
    for path in glob.glob(os.path.join(out, "violations", "part-*.tmp-*")):
        os.unlink(path)
