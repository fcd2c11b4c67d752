"""Run the compiled rules over one work unit: read it, evaluate, write or hold its rows.

A :class:`UnitRunner` is what every run uses, with or without Ray: ``submit`` calls
:meth:`UnitRunner.run` per unit (in this process, or in a Ray worker actor), which
writes the unit's violating rows to ``violations/part-<unit>.parquet`` and returns a few
numbers; ``validate`` calls :meth:`UnitRunner.hold`, which reads the same pieces the
same way (the same columns, the same row groups skipped by statistics) but keeps the
batches in memory, so the violating rows are taken only when ``Result.violations`` is
read. A runner is built from plain arguments (program bytes, checks, output folder), so
a restarted Ray actor rebuilds it exactly.

Dataset-level checks ride along: the runner calls each check's ``map`` on every batch
it reads and returns the unit's merged partial. A check whose partials are bucketed
(:mod:`batchaot.checks.base`: its class declares ``partials = BUCKETED``) is split into
a small *head*, which travels with the counts, and one piece list per bucket, which a
driver keeps apart (on Ray: one object each) until ``settle.reduce_bucket`` finishes
that bucket wherever it runs.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..compiler.program import Program
from ..engine import aot
from ..engine.run import Executor, RuleOutcome
from ..engine.stats import RowGroupProver
from ..errors import BatchaotError, DataError, OutputError
from ..io import arrays, violations
from ..io.prefetch import prefetch
from ..io.sources import reading, rechunk
from ..io.units import WorkUnit, parquet_metadata, read_unit
from .morsels import BATCH_ROWS, Checked, MorselFeed, as_one
from .quarantine import Quarantine, QuarantineResult, part_failures, split_unit
from .settle import bucket_count

COUNT_FIELDS = ("rows", "violations", "nulls", "overflows")
MORSEL_ROWS = 1 << 19     # rows a thread decodes and checks at once (whole row groups)


@dataclass
class UnitResult:
    """What a worker sends back: a few numbers, never the data."""

    unit: str
    path: str
    rows: int
    counts: pa.RecordBatch | None        # rule, rows, violations, nulls, overflows, row_groups_proven
    part: str | None                     # violations part file, if any row failed
    error: str | None = None
    seconds: float = 0.0
    row_groups_skipped: int = 0          # row groups whose statistics proved every rule
    partials: list | None = None         # per dataset check: its partial (a head if bucketed)
    engines: dict = field(default_factory=dict)   # batches each engine ran: {"vm": n, "fused": m}


@dataclass
class Held:
    """What :meth:`UnitRunner.hold` read: the batches (one table's, in order) and where
    each piece of them comes from."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    starts: list[tuple[str, int, int]] = field(default_factory=list)  # (source, held row, its row in source)
    spans: list[tuple[int, int, str, int]] = field(default_factory=list)  # (first batch, batches, source, first row)
    rows: int = 0                        # rows of every unit, read or proven
    unread: int = 0                      # rows of row groups proven by statistics, not read
    row_groups_skipped: int = 0
    outcomes: list[RuleOutcome] | None = None   # every rule's, when evaluated while read

    @property
    def held_rows(self) -> int:
        return sum(b.num_rows for b in self.batches)

    def check_batches(self) -> Iterator[tuple[pa.RecordBatch, str, int]]:
        """(batch, source, first row within the source) for dataset checks."""
        for first, count, source, row in self.spans:
            for batch in self.batches[first:first + count]:
                yield batch, source, row
                row += batch.num_rows


def counts_batch(names: list[str], outcomes: list[RuleOutcome], proven: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "rule": names,
        **{f: pa.array([getattr(o, f) for o in outcomes], pa.int64()) for f in COUNT_FIELDS},
        "row_groups_proven": pa.array(proven, pa.int64())})


def engines_used(stats: Counter | dict) -> dict:
    """{"vm": batches, "fused": batches} from an Executor's stats (engines that ran)."""
    return {e: int(stats.get(f"{e}_batches", 0)) for e in ("vm", "fused") if stats.get(f"{e}_batches")}


def engine_name(engines: dict) -> str:
    """What a summary's "engine" says: the engines that evaluated batches ("vm", "fused",
    "vm+fused"), or "none" when no batch needed evaluating (zero-tick rules, no rows)."""
    return "+".join(e for e in ("vm", "fused") if engines.get(e)) or "none"


def unit_error(unit: WorkUnit | str, exc: Exception) -> str:
    path = unit if isinstance(unit, str) else unit.path
    if isinstance(exc, BatchaotError):         # named after the file, once
        return str(exc) if str(exc).startswith(path) else f"{path}: {exc}"
    lines = str(exc).strip().splitlines()
    return f"{path}: {type(exc).__name__}: {lines[0] if lines else ''}"


class UnitRunner:
    """`program_blobs`: the row rules (Program bytes, or Programs); `checks`: dataset
    checks; `output`: the folder whose violations/ gets the parts (None: no parts);
    `layout`: the violations schema (io/violations.py; None: from the first batch's
    schema); `engine`: the Executor's ("auto", "vm" or "fused"); `split_to`: where
    :meth:`quarantine` splits a unit's rows (None: no quarantine)."""

    morsel_rows = MORSEL_ROWS

    def __init__(self, program_blobs: Sequence[bytes | Program], output: str | None, csv: dict | None = None,
                 use_statistics: bool = True, executor: Executor | None = None,
                 checks: list | None = None, threads: int = 1, layout: pa.Schema | None = None,
                 engine: str = "auto", split_to: Quarantine | None = None):
        self.csv = csv
        self.split_to = split_to
        self.threads = threads          # a Ray worker has one CPU; in-process runs use them all
        self.use_statistics = use_statistics
        self.programs = [b if isinstance(b, Program) else Program.from_bytes(b) for b in program_blobs]
        self.names = [p.name for p in self.programs]
        self.checks = list(checks or [])
        self.output = output
        self.layout = layout
        self.executor = executor or Executor(engine=engine, threads=threads)
        self.columns = list(dict.fromkeys([c for p in self.programs for c in p.column_names]
                                          + [c for k in self.checks for c in k.columns]))
        self.skipped = 0
        self.proven = [0] * len(self.programs)
        self._executors: list[Executor] = []      # the morsel threads' (threads > 1)
        self._feed: MorselFeed | None = None      # run_all()'s, across its units

    # -- submit: one unit, its part written --------------------------------------------
    def run(self, unit: WorkUnit) -> UnitResult:
        started = time.perf_counter()
        self._kernels_for([unit.rows])
        self.skipped, self.proven = 0, [0] * len(self.programs)
        before = self.engine_stats()
        try:
            rows, totals, part, partials = self._validate(unit)
        except (OutputError, MemoryError):
            raise           # not the unit's fault: the whole run cannot write, or has no memory
        except (BatchaotError, pa.ArrowException) as exc:
            # the same unit error in this process as on a Ray worker (whose failures the
            # Actors placer turns into unit errors), never a traceback in one and an error in the other
            return UnitResult(unit.id, unit.path, 0, None, None, error=unit_error(unit, exc),
                              seconds=time.perf_counter() - started)
        return UnitResult(unit.id, unit.path, rows, counts_batch(self.names, totals, self.proven),
                          part, seconds=time.perf_counter() - started, row_groups_skipped=self.skipped,
                          partials=partials, engines=engines_used(self.engine_stats() - before))

    def close(self) -> None:
        """Stop the Executors' threads (the runner's and its morsel threads')."""
        for ex in [self.executor, *self._executors]:
            ex.close()

    def engine_stats(self) -> Counter:
        total = Counter(self.executor.stats)
        for ex in self._executors:
            total.update(ex.stats)
        return total

    def run_all(self, units: Sequence[WorkUnit]) -> Iterator[tuple[UnitResult, list[list]]]:
        """run_split() of each unit, in order. On several threads, the morsels of the
        Parquet units stream through one MorselFeed: the next unit is decoded and checked
        while this one's last morsels finish."""
        self._kernels_for([u.rows for u in units])
        parquet = [u for u in units if u.format == "parquet"]
        if self.threads > 1 and parquet:
            self._feed = MorselFeed(self, parquet, self._morsel_executors())
        try:
            for unit in units:
                yield self.run_split(unit)
        finally:
            if self._feed is not None:
                self._feed.close()
                self._feed = None

    def run_split(self, unit: WorkUnit) -> tuple[UnitResult, list[list]]:
        """run(), with bucketed checks' partials split: the result carries their heads, and
        the bucket piece lists come apart (check by check, bucket by bucket; empty lists
        when the unit failed), so a driver never needs to hold them all at once."""
        result = self.run(unit)
        buckets: list[list] = []
        for i, check in enumerate(self.checks):
            n = bucket_count(check)
            if not n:
                continue
            if result.partials is None:
                buckets += [[] for _ in range(n)]
                continue
            result.partials[i], parts = check.split(result.partials[i])
            buckets += parts
        return result, buckets

    def run_side(self, check_index: int, unit: WorkUnit) -> tuple[object, list[list]]:
        """(head, buckets) of one unit of a check's partitioned side input (a referenced
        dataset: the check declares side_input = SHARED_OR_PARTITIONED)."""
        check = self.checks[check_index]
        try:
            parts = [check.map_side(batch) for batch in read_unit(unit, columns=check.side_columns,
                                                                        threads=self.threads)]
        except pa.ArrowException as exc:
            raise DataError(unit_error(unit, exc)) from None
        return check.split(check.merge(parts))

    def _validate(self, unit: WorkUnit) -> tuple[int, list[RuleOutcome], str | None, list | None]:
        totals = [RuleOutcome(n) for n in self.names]
        sink = violations.PartWriter(self.output, unit.id, self.layout)
        found: list[list] = [[] for _ in self.checks]
        offset = 0
        try:
            for piece, active, checked in self._checked(unit):
                if checked is None:         # statistics prove every rule: the rows are not read
                    self.skipped += len(piece.row_groups)
                    for total in totals:
                        total.rows += piece.rows
                    offset += piece.rows
                    continue
                for batch, outcomes, rows in checked:
                    first_row = unit.first_row + offset
                    if rows is None and sink.enabled:
                        rows = self.violating(batch, outcomes, active, unit.path, first_row)
                    self._tally(batch, outcomes, active, totals)
                    for table in rows or ():
                        sink.write(table)
                    for check, parts in zip(self.checks, found):
                        parts.append(check.map(batch, unit.path, first_row))
                    offset += batch.num_rows
            partials = [c.merge(p) for c, p in zip(self.checks, found)] if self.checks else None
            return offset, totals, sink.commit(), partials
        finally:
            sink.abort()

    def _checked(self, unit: WorkUnit) -> Iterator[tuple[WorkUnit, list[bool], Checked | None]]:
        """A unit's pieces, checked, in row order: (piece, rules to run, [(batch, its
        rules' outcomes, its violating rows or None)]), None for a piece whose statistics
        prove every rule (and no dataset check needs its rows). Parquet on several
        threads: morsels through a MorselFeed (run_all()'s, or one for this unit);
        otherwise one stream, read ahead on a thread while this one checks."""
        if self.threads > 1 and unit.format == "parquet":
            feed = self._feed or MorselFeed(self, [unit], self._morsel_executors())
            try:
                yield from feed.take(unit)
                self.proven = feed.proven_in(unit)
            finally:
                if feed is not self._feed:
                    feed.close()
            return
        for piece, active, batch in prefetch(self._stream(unit)):
            yield piece, active, None if batch is None else [(batch, self.check(self.executor, batch, active), None)]

    def _stream(self, unit: WorkUnit) -> Iterator[tuple[WorkUnit, list[bool], pa.RecordBatch | None]]:
        """Parquet in morsels merged into one batch each where that is cheap, as the morsel
        threads read them: every batch costs a fixed overhead per rule (its violating rows
        gathered and written), which row groups of 64K rows would pay many times over."""
        morsels = unit.format == "parquet"
        for piece, active in self.pieces(unit, max_rows=self.morsel_rows if morsels else None):
            if self.proves_all(active):
                yield piece, active, None
                continue
            for batch in as_one(list(self.read(piece))) if morsels else self.read(piece):
                yield piece, active, batch

    @staticmethod
    def _kernels_for(rows: list[int]) -> None:
        """Load Numba before a run that would take the process past the rows the
        ahead-of-time kernels are for (engine/aot.py, keep_ahead): every executor of the
        run, morsel threads included, then runs JIT kernels, which release the GIL. Rows
        not known before reading (-1: CSV, JSONL) are left to the Executor's count."""
        aot.keep_ahead(sum(max(r, 0) for r in rows), count=False)

    def _morsel_executors(self) -> list[Executor]:
        """One thread more than `threads`: a morsel thread now and then waits (for the GIL
        between JIT kernels, for a read), and the spare one keeps the cores busy (10M rows,
        2 cores: 0.72 s with 2 threads, 0.58 s with 3, 0.62 s with 4)."""
        if not self._executors:
            self._executors = [Executor(engine=self.executor.engine, threads=1) for _ in range(self.threads + 1)]
        return self._executors

    def proves_all(self, active: list[bool]) -> bool:
        return not any(active) and not self.checks

    def check(self, executor: Executor, batch: pa.RecordBatch, active: list[bool]) -> list[RuleOutcome]:
        """The outcomes of the rules `active` leaves to run, on this batch (row ids from 0)."""
        programs = [p for p, on in zip(self.programs, active) if on]
        outcomes = [RuleOutcome(p.name) for p in programs]
        if programs:
            executor.evaluate_batch(programs, batch, 0, outcomes)
        return outcomes

    def _tally(self, batch: pa.RecordBatch, outcomes: list[RuleOutcome], active: list[bool],
               totals: list[RuleOutcome]) -> None:
        """Add a batch's outcomes to the unit's totals."""
        results = iter(outcomes)
        for total, on in zip(totals, active):
            total.rows += batch.num_rows
            if on:
                o = next(results)
                total.violations += o.violations
                total.nulls += o.nulls
                total.overflows += o.overflows

    def violating(self, batch: pa.RecordBatch, outcomes: list[RuleOutcome], active: list[bool],
                   source: str, first_row: int) -> list[pa.Table]:
        """The batch's violating rows, one table per failing rule, in the violations layout."""
        if self.layout is None:
            self.layout = violations.layout(batch.schema, self.columns)
        tables = []
        for o, prog in zip(outcomes, [p for p, on in zip(self.programs, active) if on]):
            if o.violations:
                ids = o.row_ids
                taken = batch.select(prog.column_names).take(arrays.int64_array(ids))
                tables.append(violations.rows(self.layout, prog.name, source, ids + first_row,
                                              dict(zip(taken.schema.names, taken.columns))))
        return tables

    # -- quarantine: a unit's rows split, once the dataset checks have settled -----------
    def quarantine(self, unit: WorkUnit) -> QuarantineResult:
        """Write the unit's valid/ and invalid/ parts (runtime/quarantine.py), from the
        violations parts this run wrote; returns the row counts."""
        if self.split_to is None or self.output is None:
            raise ValueError("quarantine needs a quarantine folder and the run's output folder")
        try:
            failures = part_failures(self.output, unit, self.split_to.rules)
            valid, invalid = split_unit(unit, failures, self.split_to, self.csv, self.threads)
        except (OutputError, MemoryError):
            raise
        except (BatchaotError, pa.ArrowException) as exc:
            return QuarantineResult(unit.id, error=unit_error(unit, exc))
        return QuarantineResult(unit.id, valid, invalid)

    # -- validate: the units held in memory -------------------------------------------
    def hold(self, inputs: Sequence[WorkUnit | tuple[str, pa.Table]],
             read: dict[str, pa.Table] | None = None) -> Held:
        """Read every input as run() does — a unit (its Parquet row groups that statistics
        prove for every rule are not decoded, when no dataset check needs the rows) or an
        in-memory (source, table) — and keep the batches. `read`: files read already
        (by path), used instead of reading them again."""
        held = Held()
        read = read or {}
        self.skipped, self.proven = 0, [0] * len(self.programs)
        self._kernels_for([i[1].num_rows if isinstance(i, tuple) else i.rows for i in inputs])
        files = [i for i in inputs if not isinstance(i, tuple) and i.format == "parquet" and i.path not in read]
        if self.threads > 1 and files and len(files) == len(inputs):
            return self._hold_morsels(held, files)
        for item in inputs:
            if isinstance(item, tuple):
                source, table = item
                self._keep(held, source, 0, rechunk(table).to_batches(max_chunksize=BATCH_ROWS))
                held.rows += table.num_rows
                continue
            offset = 0                  # rows of the unit so far, read or proven
            for piece, active in self.pieces(item, by_rule=False):
                if self.proves_all(active):
                    held.row_groups_skipped += len(piece.row_groups)
                    held.unread += piece.rows
                    offset += piece.rows
                    continue
                if item.path in read:
                    table = read[item.path]
                    batches = rechunk(table.select(self.columns) if self.columns else table) \
                        .to_batches(max_chunksize=BATCH_ROWS)
                else:
                    batches = list(self.read(piece))
                self._keep(held, item.path, item.first_row + offset, batches)
                offset += sum(b.num_rows for b in batches)
            held.rows += offset
        return held

    def _hold_morsels(self, held: Held, units: list[WorkUnit]) -> Held:
        """hold() of Parquet units on several threads: each morsel is decoded and its rules
        evaluated on one thread (MorselFeed), the batches kept and the outcomes added up
        at their rows of the held table, so evaluate_held() has nothing left to run."""
        held.outcomes = [RuleOutcome(p.name, zero_tick=p.zero_tick) for p in self.programs]
        feed = MorselFeed(self, units, self._morsel_executors(), by_rule=False)
        try:
            for unit in units:
                try:
                    held.rows += self._hold_unit(held, unit, feed.take(unit))
                except DataError as exc:         # a value no rule can read: name the file
                    raise DataError(unit_error(unit, exc)) from None
                self.proven = [a + b for a, b in zip(self.proven, feed.proven_in(unit))]
        finally:
            feed.close()
        return held

    def _hold_unit(self, held: Held, unit: WorkUnit, morsels) -> int:
        """Keep one unit's checked morsels; returns its rows (read or proven)."""
        offset = 0
        for morsel, _, checked in morsels:
            if checked is None:
                held.row_groups_skipped += len(morsel.row_groups)
                held.unread += morsel.rows
            else:
                at = held.held_rows
                for batch, outcomes, _ in checked:
                    for total, o in zip(held.outcomes, outcomes):
                        total.absorb(o, at)
                    at += batch.num_rows
                self._keep(held, unit.path, unit.first_row + offset, [b for b, _, _ in checked])
            offset += morsel.rows
        return offset

    def _keep(self, held: Held, source: str, first_row: int, batches: list[pa.RecordBatch]) -> None:
        at = held.held_rows
        held.spans.append((len(held.batches), len(batches), source, first_row))
        held.starts.append((source, at, first_row))
        held.batches += batches

    def evaluate_held(self, held: Held) -> list[RuleOutcome]:
        """Every rule over the held batches at once (row ids: rows of the held table);
        rows proven by statistics count as passing."""
        outcomes = held.outcomes if held.outcomes is not None else self.executor.evaluate(self.programs, held.batches)
        for outcome in outcomes:
            outcome.rows += held.unread
        return outcomes

    # -- reading ------------------------------------------------------------------------
    def read(self, piece: WorkUnit, threads: int | None = None) -> Iterator[pa.RecordBatch]:
        for batch in read_unit(piece, columns=self.columns or None, csv=self.csv,
                               threads=threads or self.threads):
            self._check_columns(batch, piece)
            yield batch

    def pieces(self, unit: WorkUnit, by_rule: bool = True, max_rows: int | None = None,
               proven: list[int] | None = None) -> Iterator[tuple[WorkUnit, list[bool]]]:
        """The unit in runs of consecutive row groups, with the rules its statistics leave
        to run: one run per set of rules (`by_rule`, so that run() evaluates only those),
        or only split where every rule is proven (hold(): the rows it reads are all
        evaluated at once, and every read has a cost of its own); runs of at most about
        `max_rows` rows (whole row groups) when given. Row groups proven per rule are
        added to `proven` (default: this unit's, self.proven)."""
        proven = self.proven if proven is None else proven
        everything = [True] * len(self.programs)
        prove = self.use_statistics and (by_rule or not self.checks)
        if unit.format != "parquet" or not (prove or max_rows):
            yield unit, everything
            return
        with reading(unit.path, "parquet"):
            meta = parquet_metadata(unit.path)
            prover = RowGroupProver(meta, pq.ParquetFile(unit.path, metadata=meta).schema_arrow,
                                    self.programs) if prove else None
        run: list[int] = []            # consecutive row groups that need the same rules
        rows = 0
        active: list[bool] | None = None
        for rg in unit.row_groups:
            needed = everything
            if prove:
                proofs = prover.proofs(rg)
                for i, holds in enumerate(proofs):
                    proven[i] += holds
                needed = [not p for p in proofs]
                if not by_rule:
                    needed = everything if any(needed) else needed
            if run and (needed != active or (max_rows and rows >= max_rows)):
                yield _piece(unit, run, meta), active
                run, rows = [], 0
            run.append(rg)
            rows += meta.row_group(rg).num_rows
            active = needed
        if run:
            yield _piece(unit, run, meta), active

    def _check_columns(self, batch: pa.RecordBatch, unit: WorkUnit) -> None:
        missing = [c for c in self.columns if batch.schema.get_field_index(c) < 0]
        if missing:
            raise DataError(f"{unit.path}: missing column(s) {', '.join(missing)} that the rules read")


def _piece(unit: WorkUnit, row_groups: list[int], meta: pq.FileMetaData) -> WorkUnit:
    rows = sum(meta.row_group(rg).num_rows for rg in row_groups)
    return replace(unit, row_groups=tuple(row_groups), rows=rows)
