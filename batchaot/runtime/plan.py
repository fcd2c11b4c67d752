"""A compiled plan, and running it: over data held in memory (`validate`) or over work
units whose calls a placer runs (`submit`: in this process, or Ray actors).

``Plan`` is what every run needs: the rules compiled against one schema (Programs for
row rules, dataset checks), and the violations layout they write (io/violations.py).

:func:`validate` holds the data (UnitRunner.hold), evaluates every rule at once and
keeps the violating rows as row numbers until ``Result.violations`` asks for them.

:class:`UnitsRun` runs a plan over work units in three phases — side inputs of
partitioned checks, the units, the bucket reduces — whose calls a *placer* makes: an
:class:`InProcess` placer calls a UnitRunner here; ``distributed/`` provides one that
calls the same UnitRunner methods on Ray actors. Results come back keyed by unit id and
are merged by key, so a unit that Ray runs twice counts once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Protocol, Sequence

import pyarrow as pa

from ..checks import run_checks
from ..compiler import compile_rules
from ..compiler.program import Program
from ..engine.run import Executor, RuleOutcome
from ..errors import DataError, RuleError
from ..io import sinks, sources, violations
from ..io.quarantine import Rules
from ..io.units import WorkUnit, expand_paths, plan as plan_units
from ..io.violations import TABLE_SOURCE
from ..result import CheckResult, JobResult, Result, RuleResult, shown_columns
from ..spec import RuleSpec
from .progress import Quiet
from .quarantine import Quarantine, QuarantineResult
from .settle import BucketJob, CheckGather, plan_side_inputs, reduce_bucket
from .spill import SpillStore, default_budget, plan_buckets, rows_bound
from .unit import COUNT_FIELDS, Held, UnitResult, UnitRunner, engine_name, engines_used


@dataclass
class Plan:
    """Rules compiled against `schema`, in the rules' order, and their violations layout."""

    specs: list[RuleSpec]
    compiled: list                   # per spec: a Program (row rule) or a dataset check
    schema: pa.Schema
    layout: pa.Schema

    @classmethod
    def compile(cls, specs: Sequence[RuleSpec], schema: pa.Schema, cached: bool = False) -> "Plan":
        """`cached`: row rules through the on-disk program cache (rules a user keeps in a
        file and runs again; not rules made up in passing)."""
        compiled = compile_rules(specs, schema, cached=cached)
        return cls(list(specs), compiled, schema, violations.layout(schema, shown_columns(compiled)))

    @classmethod
    def of_checks(cls, checks: Sequence, schema: pa.Schema) -> "Plan":
        """A plan of dataset checks built already (profilers, say): no row rule to compile."""
        checks = list(checks)
        return cls([c.spec for c in checks], checks, schema, violations.layout(schema, shown_columns(checks)))

    @property
    def programs(self) -> list[Program]:
        return [c for c in self.compiled if isinstance(c, Program)]

    @property
    def checks(self) -> list:
        return [c for c in self.compiled if not isinstance(c, Program)]

    def results(self, outcomes: dict[str, RuleOutcome], check_outcomes: list) -> list:
        """Per rule, in the rules' order: a RuleResult or a CheckResult."""
        found = iter(check_outcomes)
        results = [RuleResult(s, c, outcomes[c.name]) if isinstance(c, Program) else CheckResult(s, c, next(found))
                   for s, c in zip(self.specs, self.compiled)]
        # checks of another rule's count (change of violations(rule)) once all have run
        counts = {r.spec.name: r.outcome.violations for r in results}
        for r in results:
            if isinstance(r, CheckResult) and r.check.reads_results:
                r.check.settle(r.outcome, counts)
        return results


# --- validate: the data held in memory -------------------------------------------------

def validate(plan: Plan, inputs: Sequence[WorkUnit | tuple[str, pa.Table]],
             read: dict[str, pa.Table] | None = None, engine: str = "auto") -> Result:
    """Check `inputs` (work units of files, or in-memory (source, table)) against `plan`,
    holding what is read; `read`: files read already (by path)."""
    # every core: Parquet files in morsels (decoded and checked on each thread), tables
    # in row ranges of each batch
    threads = os.cpu_count() or 1
    runner = UnitRunner(plan.programs, None, checks=plan.checks, layout=plan.layout,
                        threads=threads, executor=Executor(engine=engine, threads=threads))
    held = runner.hold(inputs, read)
    try:
        outcomes = runner.evaluate_held(held)
    except DataError as exc:        # a value no rule can read: name the file when there is one
        sources_read = {s for s, _, _ in held.starts}
        only = next(iter(sources_read)) if len(sources_read) == 1 else TABLE_SOURCE
        raise DataError(f"{only}: {exc}" if only != TABLE_SOURCE else str(exc)) from None
    finally:
        runner.close()
    check_outcomes = run_checks(plan.checks, held.check_batches()) if plan.checks else []
    result = Result(plan.results({o.name: o for o in outcomes}, check_outcomes), rows=held.rows,
                    data=_table(held, plan), sources=held.starts or [(TABLE_SOURCE, 0, 0)],
                    row_groups_skipped=held.row_groups_skipped, layout=plan.layout,
                    engine=engine_name(engines_used(runner.engine_stats())))
    return result


def _table(held: Held, plan: Plan) -> pa.Table:
    """The held batches as one table (files whose columns came dictionary-encoded in some
    and plain in others: as plain values)."""
    if not held.batches:
        names = list(dict.fromkeys(c for p in plan.programs for c in p.column_names))
        return pa.schema([plan.schema.field(n) for n in names]).empty_table()
    schemas = {b.schema for b in held.batches}
    if len(schemas) == 1:
        return pa.Table.from_batches(held.batches)
    tables = []
    for batch in held.batches:
        table = pa.Table.from_batches([batch])
        plain = pa.schema([pa.field(f.name, violations.plain_type(f.type)) for f in batch.schema])
        tables.append(table.cast(plain))
    return pa.concat_tables(tables, promote_options="permissive")


# --- submit: work units through a placer -------------------------------------------------

class Placer(Protocol):
    """Where a run's calls execute: run_sides → UnitRunner.run_side per (check, unit),
    run_units → UnitRunner.run_split per unit, reduce → settle.reduce_bucket per bucket,
    quarantine → UnitRunner.quarantine per unit."""

    def run_sides(self, jobs: list[tuple[int, WorkUnit]], on_side: Callable[[int, object, list], None]) -> None: ...

    def run_units(self, units: Sequence[WorkUnit], on_result: Callable[[UnitResult, list], None]) -> None: ...

    def reduce(self, jobs: list[BucketJob]) -> dict: ...

    def quarantine(self, units: Sequence[WorkUnit], on_split: Callable[[QuarantineResult], None]) -> None: ...


class InProcess:
    """The placer of a run in this process: one UnitRunner, called in order."""

    def __init__(self, runner: UnitRunner):
        self.runner = runner

    def run_sides(self, jobs, on_side) -> None:
        for i, unit in jobs:
            on_side(i, *self.runner.run_side(i, unit))

    def run_units(self, units, on_result) -> None:
        for result in self.runner.run_all(units):
            on_result(*result)

    def reduce(self, jobs: list[BucketJob]) -> dict:
        r = self.runner
        return {(i, b): reduce_bucket(r.checks[i], i, b, items, r.output, r.layout) for i, b, items in jobs}

    def quarantine(self, units, on_split) -> None:
        for unit in units:
            on_split(self.runner.quarantine(unit))


def plan_job_units(paths: Sequence[str], fmt: str | None, on_error: str,
                   expanded: bool = False) -> tuple[list[WorkUnit], list[str]]:
    """Units of every readable file; unreadable ones become errors (or stop the run).
    `expanded`: `paths` are files already (io.units.expand_paths), not globs or folders
    (a file name with glob characters in it is a name, not a pattern)."""
    units: list[WorkUnit] = []
    errors: list[str] = []
    for index, path in enumerate(list(paths) if expanded else expand_paths(list(paths))):
        try:
            found = plan_units([path], fmt)
        except DataError as exc:
            if on_error == "stop":
                raise DataError(f"{exc} (on_error: stop)") from None
            errors.append(str(exc))
            continue
        units += [_renumber(u, index) for u in found]
    return units, errors


def _renumber(unit: WorkUnit, index: int) -> WorkUnit:
    """Unit ids carry the file's index in the whole job, not in a one-file plan."""
    return replace(unit, id=f"{index:04d}-{unit.id.split('-', 1)[1]}")


SCHEMA_TRIES = 32     # files whose schema is tried before a rule that binds to none is an error


def compile_for_units(specs: Sequence[RuleSpec], units: list[WorkUnit], csv: dict | None) -> Plan:
    """The rules bound to the schema of the first file that has what they read. Under
    schema drift, a file that lacks a column (or holds it in another type) fails its own
    unit, naming the file and the column, under `on_error` like any unreadable file,
    whether it comes first or last; only a rule that binds to no file is an error here.
    Row rules go through the program cache (a job's rules are run again and again)."""
    first_error: Exception | None = None
    formats = {u.path: u.format for u in units}
    for path in list(formats)[:SCHEMA_TRIES]:
        try:
            return Plan.compile(specs, sources.read_schema(path, formats[path], csv), cached=True)
        except (RuleError, DataError) as exc:
            first_error = first_error or exc
    raise first_error


class UnitsRun:
    """One run of a plan over work units: build it, then :meth:`execute` with a placer
    (made after the constructor: the side inputs are planned here, and a placer that
    ships checks to other processes must ship them partitioned or not). `quarantine`:
    the folder (a staging folder) where a last phase splits every unit's rows. `budget`:
    the bytes the bucketed checks' pieces may hold in this process before they spill to
    disk (default: spill.default_budget); the checks get buckets enough for the units'
    rows under it."""

    def __init__(self, plan: Plan, units: list[WorkUnit], output: str | None, *, csv: dict | None = None,
                 engine: str = "auto", on_error: str = "continue", errors: list[str] | None = None,
                 progress=None, quarantine: str | None = None, budget: int | None = None):
        self.plan, self.units, self.output = plan, units, output
        self.split_to = None if quarantine is None else Quarantine(quarantine, Rules.of(plan.specs))
        self.split: dict[str, QuarantineResult] = {}
        self.csv, self.engine, self.on_error = csv, engine, on_error
        self.errors = list(errors or [])
        self.progress = progress or Quiet()
        budget = default_budget() if budget is None else budget
        rows = rows_bound(units)
        plan_buckets(plan.checks, rows, budget)
        self.sides = plan_side_inputs(plan.checks, checked_rows=rows, budget=budget)
        self.store = SpillStore(budget, output)
        self.merged: dict[str, UnitResult] = {}
        self.counts = {p.name: RuleOutcome(p.name, zero_tick=p.zero_tick) for p in plan.programs}
        self.proven = {p.name: 0 for p in plan.programs}
        self.engines: dict[str, int] = {}
        self.gather = CheckGather(plan.checks, output, plan.layout, self.store)
        self.check_outcomes: list = []

    def runner(self, threads: int = 1) -> UnitRunner:
        """A UnitRunner for this run (what a worker actor builds from the same arguments)."""
        return UnitRunner(self.plan.programs, self.output, self.csv, checks=self.plan.checks,
                          threads=threads, layout=self.plan.layout, engine=self.engine, split_to=self.split_to)

    @property
    def known_rows(self) -> int:
        return sum(u.rows for u in self.units if u.rows >= 0)

    def execute(self, place: Placer, label: str, attach: list | None = None) -> None:
        """Sides, units and bucket reduces, each call made by `place`."""
        progress = self.progress
        progress.start(len(self.units), self.known_rows, label)
        try:
            if attach is not None:
                progress.attach(attach)
            if self.sides:
                progress.note(f"partitioning {len(self.sides)} unit(s) of referenced data by key hash")
            place.run_sides(self.sides, self.gather.add_side)
            place.run_units(self.units, self._on_result)
            if self.store.spills:
                progress.note(f"{self.store.spilled / (1 << 20):,.0f} MB of dataset-check buckets "
                              f"spilled to disk (memory budget {self.store.budget / (1 << 20):,.0f} MB)")
            self.check_outcomes = self.gather.finish(place.reduce, progress.note)
            if self.split_to is not None:
                # every failure is known only now: the split is a pass of its own
                done = [u for u in self.units if u.id in self.merged and not self.merged[u.id].error]
                progress.note(f"splitting the rows of {len(done)} unit(s) into valid/ and invalid/")
                place.quarantine(done, self._on_split)
        finally:
            self.store.close()
            progress.finish()
        if self.output is not None:
            violations.clear_temporaries(self.output)
        if self.split_to is not None:
            violations.clear_temporaries(self.split_to.folder, (sinks.VALID, sinks.INVALID))

    def _on_split(self, res: QuarantineResult) -> None:
        if res.unit in self.split:          # at-least-once delivery: count each unit once
            return
        self.split[res.unit] = res
        if res.error:
            self.errors.append(res.error)

    @property
    def quarantined(self) -> dict | None:
        """Rows written to valid/ and invalid/ (None without a quarantine)."""
        if self.split_to is None:
            return None
        return {"valid_rows": sum(r.valid for r in self.split.values()),
                "invalid_rows": sum(r.invalid for r in self.split.values())}

    def _on_result(self, res: UnitResult, buckets: list) -> None:
        if res.unit in self.merged:          # at-least-once delivery: count each unit once
            return
        self.merged[res.unit] = res
        if res.error:
            self.errors.append(res.error)
            if self.on_error == "stop":
                raise DataError(f"{res.error} (on_error: stop)")
        else:
            self._add(res)
            self.gather.add(res, buckets)
        self.progress.advance(res.rows, sum(1 for o in self.counts.values() if o.violations), res.error)

    def _add(self, res: UnitResult) -> None:
        cols = res.counts.to_pydict()
        for i, name in enumerate(cols["rule"]):
            o = self.counts[name]
            for f in COUNT_FIELDS:
                setattr(o, f, getattr(o, f) + cols[f][i])
            self.proven[name] += cols["row_groups_proven"][i]
        for engine, batches in res.engines.items():
            self.engines[engine] = self.engines.get(engine, 0) + batches

    def result(self, **fields) -> JobResult:
        """The run as a JobResult (`fields`: job_name, mode, workers, output, ...). With
        errors (files or units that could not be read), a dataset check saw part of the
        data only: its answer (no duplicates, a row count, ...) is not one about the
        dataset, so it fails and says why, rather than pass on what happened to be read."""
        for outcome in self.check_outcomes:
            if self.errors:
                outcome.passed = False
                outcome.details["incomplete"] = (f"{len(self.errors)} file(s) or unit(s) could not be read "
                                                 "(see errors): computed over the rest of the data only")
        merged = self.merged.values()
        return JobResult(rules=self.plan.results(self.counts, self.check_outcomes),
                         rows=sum(r.rows for r in merged), data=None, units=len(self.units),
                         files=sorted({u.path for u in self.units}), errors=self.errors,
                         row_groups_skipped=sum(r.row_groups_skipped for r in merged),
                         row_groups_proven=self.proven, engine=engine_name(self.engines),
                         layout=self.plan.layout, spilled_bytes=self.store.spilled, **fields)
