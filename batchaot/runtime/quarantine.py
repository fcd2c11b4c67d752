"""Quarantine a run's rows: each unit's rows split into valid/ and invalid/ parts.

Which rows break which rule is known only after every dataset check has settled (a
duplicate key, a missing reference, is found across units), so the split is a second
pass over the units, after the first pass and the bucket reduces, one call per unit on
whichever worker (or this process) runs it. A unit's failures are read back from what
the first pass wrote (:func:`part_failures`): its own violations part (row rules) and
the rows of the dataset checks' parts in its range of its file — the very rows counted
as violations, so the split follows each rule's NULL semantics. The unit is then read
whole (every column, in the file's own Arrow schema) and split
(io/quarantine.py), its parts written atomically under the unit's id: a retried call
replaces them, so valid + invalid hold each input row once.

``validate`` (data held in memory) has its failures in its Result instead
(``Result.failure_pairs``), and splits in-memory tables as they are.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io import quarantine, violations
from ..io.quarantine import Failures, Rules
from ..io.sources import coalesce
from ..io.units import WorkUnit, read_unit


@dataclass(frozen=True)
class Quarantine:
    """Where a run splits its rows (the quarantine's staging folder) and its rules."""

    folder: str
    rules: Rules


@dataclass
class QuarantineResult:
    """What a unit's split sends back: the row counts, never the rows."""

    unit: str
    valid: int = 0
    invalid: int = 0
    error: str | None = None


def part_failures(output: str, unit: WorkUnit, rules: Rules) -> Failures:
    """The unit's (row within its file, rule) failures from the violations parts of `output`."""
    rows: list[np.ndarray] = []
    found: list[np.ndarray] = []

    def add(table: pa.Table) -> None:
        if table.num_rows:
            rows.append(table.column(violations.ROW).to_numpy())
            found.append(rules.indices(table.column(violations.RULE)))

    columns, names = [violations.RULE, violations.ROW], [violations.RULE]   # names: as dictionaries
    own = violations.part_path(output, unit.id)
    if os.path.exists(own):
        add(pq.read_table(own, columns=columns, read_dictionary=names))
    # a check's part is sorted by (source, row): row-group statistics skip all but this range
    where = (pc.field(violations.SOURCE) == unit.path) & (pc.field(violations.ROW) >= unit.first_row)
    if unit.rows >= 0:
        where = where & (pc.field(violations.ROW) < unit.first_row + unit.rows)
    for path in violations.check_parts(output):
        add(pq.read_table(path, columns=columns, filters=where, read_dictionary=names))
    return Failures.of(rows, found)


def split_batches(batches: Iterable[pa.RecordBatch], failures: Failures, rules: Rules, source: str,
                  first_row: int, writer: quarantine.Writer) -> tuple[int, int]:
    """Rows first_row, first_row+1, ... of `source` through `writer`; (valid, invalid) rows.
    `failures` are numbered within the source."""
    row = first_row
    for batch in batches:
        valid, invalid = quarantine.split(batch, failures.within(row, batch.num_rows), rules, source, row)
        writer.write(valid, invalid)
        row += batch.num_rows
    return writer.commit()


def split_unit(unit: WorkUnit, failures: Failures, spec: Quarantine, csv: dict | None = None,
               threads: int = 1) -> tuple[int, int]:
    """Read the unit whole and write its valid/ and invalid/ parts."""
    schema = _stored_schema(unit)
    writer = quarantine.Writer(spec.folder, unit.id, schema)
    try:
        return split_batches(read_unit(unit, csv=csv, threads=threads, as_stored=True), failures,
                             spec.rules, unit.path, unit.first_row, writer)
    finally:
        writer.abort()


def _stored_schema(unit: WorkUnit) -> pa.Schema | None:
    """A Parquet file's Arrow schema (every unit of the file writes its parts in it); None:
    the first batch's (text and IPC files are one unit each)."""
    if unit.format != "parquet":
        return None
    return pq.ParquetFile(unit.path).schema_arrow



def split_inputs(inputs: Sequence[WorkUnit | tuple[str, pa.Table]], pairs: pa.Table, spec: Quarantine,
                 threads: int = 1) -> dict:
    """``validate``'s split: each input (a file's unit, or an in-memory (source, table)) with
    its failures from a Result's (source, row, rule_index) pairs; the row counts."""
    counts = [0, 0]
    for k, item in enumerate(inputs):
        if isinstance(item, tuple):
            source, table = item
            writer = quarantine.Writer(spec.folder, f"{k:05d}", table.schema)
            try:
                found = split_batches(coalesce(table.to_batches()), Failures.of_source(pairs, source),
                                      spec.rules, source, 0, writer)
            finally:
                writer.abort()
        else:
            found = split_unit(item, Failures.of_source(pairs, item.path), spec, threads=threads)
        counts = [counts[0] + found[0], counts[1] + found[1]]
    return {"valid_rows": counts[0], "invalid_rows": counts[1]}
