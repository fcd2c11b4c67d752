"""Validate one work unit: read it, run the programs, write its violations part file.

This is what a worker does, with or without Ray: a :class:`UnitRunner` is built from
plain arguments (program bytes, output folder), so a restarted Ray actor rebuilds it
exactly, and the in-process path runs the very same code.

Dataset-level checks ride along: the runner calls each check's ``map`` on every batch
it reads and returns the unit's merged partial. A check with buckets (``unique``) is
split into a small *head*, which travels with the counts, and one piece list per
bucket, which a driver keeps apart (on Ray: one object each) until ``reduce_bucket``
finishes that bucket wherever it runs. The checks are duck-typed objects of
batchaot.checks (this layer does not import that one).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..compiler.program import Program
from ..errors import BatchaotError, DataError, OutputError
from ..io.sinks import write_error
from ..io.sources import reading
from ..io.units import WorkUnit, read_unit
from .run import Executor, RuleOutcome
from .stats import row_group_proofs

COUNT_FIELDS = ("rows", "violations", "nulls", "overflows")


@dataclass
class UnitResult:
    """What a worker sends back: a few numbers, never the data."""

    unit: str
    path: str
    rows: int
    counts: pa.RecordBatch | None        # rule, rows, violations, nulls, overflows
    part: str | None                     # violations part file, if any row failed
    error: str | None = None
    seconds: float = 0.0
    row_groups_skipped: int = 0          # row groups whose statistics proved every rule
    partials: list | None = None         # per dataset check: its partial (a head if bucketed)


def counts_batch(names: list[str], outcomes: list[RuleOutcome], proven: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "rule": names,
        **{f: pa.array([getattr(o, f) for o in outcomes], pa.int64()) for f in COUNT_FIELDS},
        "row_groups_proven": pa.array(proven, pa.int64())})


def violation_schema(data: pa.Schema, columns: list[str]) -> pa.Schema:
    """rule, source, row, then every column any rule reads (values of the failing rows)."""
    fields = [pa.field("rule", pa.string()), pa.field("source", pa.string()), pa.field("row", pa.int64())]
    for name in columns:
        t = data.field(name).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        fields.append(pa.field(f"value_{name}" if name in ("rule", "source", "row") else name, t))
    return pa.schema(fields)


def violation_rows(batch: pa.RecordBatch, schema: pa.Schema, rule: str, rule_columns: list[str],
                   local_rows: np.ndarray, first_row: int, source: str) -> pa.Table:
    """The failing rows of one rule in one batch, shaped to `schema` (other rules' columns NULL)."""
    n = len(local_rows)
    taken = batch.take(pa.array(local_rows))
    arrays = [pa.array([rule] * n, pa.string()), pa.array([source] * n, pa.string()),
              pa.array(local_rows + first_row, pa.int64())]
    for f in list(schema)[3:]:
        name = f.name[len("value_"):] if f.name.startswith("value_") else f.name
        if name in rule_columns:
            arrays.append(taken.column(name).cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _unit_error(unit: WorkUnit, exc: Exception) -> str:
    if isinstance(exc, BatchaotError):         # named after the file, once
        return str(exc) if str(exc).startswith(unit.path) else f"{unit.path}: {exc}"
    lines = str(exc).strip().splitlines()
    return f"{unit.path}: {type(exc).__name__}: {lines[0] if lines else ''}"


def buckets_of(check) -> int:
    """How many buckets a check's partial is split into (0: it travels whole)."""
    return getattr(check, "buckets", 0) if hasattr(check, "split") else 0


class UnitRunner:
    def __init__(self, program_blobs: list[bytes], output: str | None, csv: dict | None = None,
                 use_statistics: bool = True, executor: Executor | None = None,
                 checks: list | None = None, threads: int = 1):
        self.csv = csv
        self.threads = threads          # a Ray worker has one CPU; in-process runs use them all
        self.use_statistics = use_statistics
        self.programs = [Program.from_bytes(b) for b in program_blobs]
        self.names = [p.name for p in self.programs]
        self.checks = list(checks or [])
        self.output = output
        self.executor = executor or Executor(threads=threads)
        self.columns = list(dict.fromkeys([c for p in self.programs for c in p.column_names]
                                          + [c for k in self.checks for c in k.columns]))
        self.skipped = 0
        self.proven = [0] * len(self.programs)

    def run(self, unit: WorkUnit) -> UnitResult:
        started = time.perf_counter()
        self.skipped, self.proven = 0, [0] * len(self.programs)
        try:
            rows, totals, part, partials = self._validate(unit)
        except (OutputError, MemoryError):
            raise           # not the unit's fault: the whole run cannot write, or has no memory
        except (BatchaotError, pa.ArrowException) as exc:
            # the same unit error in this process as on a Ray worker (whose failures the
            # pool turns into unit errors), never a traceback in one and an error in the other
            return UnitResult(unit.id, unit.path, 0, None, None, error=_unit_error(unit, exc),
                              seconds=time.perf_counter() - started)
        return UnitResult(unit.id, unit.path, rows, counts_batch(self.names, totals, self.proven),
                          part, seconds=time.perf_counter() - started, row_groups_skipped=self.skipped,
                          partials=partials)

    def run_split(self, unit: WorkUnit) -> tuple[UnitResult, list[list]]:
        """run(), with bucketed checks' partials split: the result carries their heads, and
        the bucket piece lists come apart (check by check, bucket by bucket; empty lists
        when the unit failed), so a driver never needs to hold them all at once."""
        result = self.run(unit)
        buckets: list[list] = []
        for i, check in enumerate(self.checks):
            n = buckets_of(check)
            if not n:
                continue
            if result.partials is None:
                buckets += [[] for _ in range(n)]
                continue
            result.partials[i], parts = check.split(result.partials[i])
            buckets += parts
        return result, buckets

    def run_side(self, check_index: int, unit: WorkUnit) -> tuple[object, list[list]]:
        """(head, buckets) of one unit of a check's side input (a referenced dataset)."""
        check = self.checks[check_index]
        try:
            parts = [check.map_side(batch) for batch in read_unit(unit, columns=check.side_columns,
                                                                        threads=self.threads)]
        except pa.ArrowException as exc:
            raise DataError(_unit_error(unit, exc)) from None
        return check.split(check.merge(parts))

    def _validate(self, unit: WorkUnit) -> tuple[int, list[RuleOutcome], str | None, list | None]:
        totals = [RuleOutcome(n) for n in self.names]
        sink = _PartWriter(self.output, unit.id)
        found: list[list] = [[] for _ in self.checks]
        offset = 0
        try:
            for piece, active in self._pieces(unit):
                if not any(active) and not self.checks:   # statistics prove every rule: skip the read
                    self.skipped += len(piece.row_groups)
                    for total in totals:
                        total.rows += piece.rows
                    offset += piece.rows
                    continue
                programs = [p for p, on in zip(self.programs, active) if on]
                for batch in read_unit(piece, columns=self.columns or None, csv=self.csv,
                                       threads=self.threads):
                    self._check_columns(batch, unit)
                    first_row = unit.first_row + offset
                    if programs:
                        self._evaluate(batch, programs, active, totals, sink, unit, first_row)
                    else:
                        for total in totals:
                            total.rows += batch.num_rows
                    for check, parts in zip(self.checks, found):
                        parts.append(check.map(batch, unit.path, first_row))
                    offset += batch.num_rows
            partials = [c.merge(p) for c, p in zip(self.checks, found)] if self.checks else None
            return offset, totals, sink.commit(), partials
        finally:
            sink.abort()

    def _pieces(self, unit: WorkUnit) -> Iterator[tuple[WorkUnit, list[bool]]]:
        """The unit row group by row group, with the rules its statistics leave to run."""
        everything = [True] * len(self.programs)
        if unit.format != "parquet" or not self.use_statistics:
            yield unit, everything
            return
        with reading(unit.path, "parquet"):
            pf = pq.ParquetFile(unit.path)
            meta, schema = pf.metadata, pf.schema_arrow
        run: list[int] = []            # consecutive row groups that need the same rules
        active: list[bool] | None = None
        for rg in unit.row_groups:
            proofs = row_group_proofs(meta, schema, self.programs, rg)
            for i, proven in enumerate(proofs):
                self.proven[i] += proven
            needed = [not p for p in proofs]
            if run and needed != active:
                yield _piece(unit, run, meta), active
                run = []
            run.append(rg)
            active = needed
        if run:
            yield _piece(unit, run, meta), active

    def _evaluate(self, batch: pa.RecordBatch, programs: list[Program], active: list[bool],
                  totals: list[RuleOutcome], sink: "_PartWriter", unit: WorkUnit, first_row: int) -> None:
        outcomes = [RuleOutcome(p.name) for p in programs]
        self.executor.evaluate_batch(programs, batch, 0, outcomes)
        results = iter(outcomes)
        for total, on, prog in zip(totals, active, self.programs):
            total.rows += batch.num_rows
            if not on:
                continue
            o = next(results)
            total.violations += o.violations
            total.nulls += o.nulls
            total.overflows += o.overflows
            if o.violations and sink.enabled:
                schema = sink.schema or violation_schema(batch.schema, self.columns)
                sink.write(violation_rows(batch, schema, prog.name, prog.column_names,
                                          o.row_ids, first_row, unit.path))

    def _check_columns(self, batch: pa.RecordBatch, unit: WorkUnit) -> None:
        missing = [c for c in self.columns if batch.schema.get_field_index(c) < 0]
        if missing:
            raise DataError(f"{unit.path}: missing column(s) {', '.join(missing)} that the rules read")


def check_part_name(check_index: int, bucket: int | None = None) -> str:
    """Part-file id of a dataset check's violating rows (one per bucket if bucketed)."""
    return f"check{check_index:03d}" + ("" if bucket is None else f"-b{bucket:04d}")


def write_check_rows(output: str | None, part_id: str, table: pa.Table | None) -> int:
    """A check's violating rows as violations/part-<part_id>.parquet (atomic; a rerun
    replaces it); returns how many rows."""
    sink = _PartWriter(output, part_id)
    try:
        if table is not None and table.num_rows and sink.enabled:
            sink.write(table)
        sink.commit()
    finally:
        sink.abort()
    return 0 if table is None else table.num_rows


def reduce_bucket(check, check_index: int, bucket: int, piece_lists: list[list], output: str | None):
    """Finish one bucket of a bucketed check from every unit's pieces of it; with an
    output folder, its violating rows go to a part file and only the counts and a sample
    of the keys come back."""
    result = check.finish_bucket([p for pieces in piece_lists for p in pieces])
    if output is not None:
        if result.violating is not None:
            write_check_rows(output, check_part_name(check_index, bucket), check.labelled(result.violating))
        result.trim()              # counts and a sample travel back, not every key found
    return result


def _piece(unit: WorkUnit, row_groups: list[int], meta: pq.FileMetaData) -> WorkUnit:
    rows = sum(meta.row_group(rg).num_rows for rg in row_groups)
    return replace(unit, row_groups=tuple(row_groups), rows=rows)


class _PartWriter:
    """violations/part-<unit>.parquet, written under a temporary name and renamed when done,
    so a retried unit replaces its own part and a killed one leaves no half file.

    Rows are buffered up to FLUSH_ROWS and written as one row group: one write per rule
    and batch would cost more than the rules themselves and leave readers tiny row groups."""

    FLUSH_ROWS = 1 << 20

    def __init__(self, output: str | None, unit_id: str):
        self.enabled = output is not None
        self.schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        if self.enabled:
            folder = os.path.join(output, "violations")
            self.final = os.path.join(folder, f"part-{unit_id}.parquet")
            self.tmp = f"{self.final}.tmp-{os.getpid()}"

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        try:
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.tmp, self.schema)
            self._writer.write_table(pa.concat_tables(self._buffer))
        except OSError as exc:      # full disk, file-size limit, a folder in the way: exit 2
            raise write_error(self.final, exc) from None
        self._buffer, self._buffered = [], 0

    def commit(self) -> str | None:
        if not self.enabled:
            return None
        self._flush()
        try:
            if self._writer is None:
                if os.path.lexists(self.final):   # an earlier attempt found violations; this one did not
                    os.unlink(self.final)
                return None
            self._writer.close()
            self._writer = None
            os.replace(self.tmp, self.final)
        except OSError as exc:
            raise write_error(self.final, exc) from None
        return self.final

    def abort(self) -> None:
        self._buffer, self._buffered = [], 0
        try:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                writer.close()
        except OSError:
            pass                        # the error that brought us here says it better
        finally:
            if self.enabled and os.path.lexists(self.tmp):
                try:
                    os.unlink(self.tmp)
                except OSError:
                    pass
