"""Quarantine: the input rows split into those that break no rule of severity error and
the others, and the per-row list of rules each row breaks.

A quarantine folder holds

    valid/part-<unit>.parquet     rows breaking no error rule, in the input's schema
    invalid/part-<unit>.parquet   the other rows, with three more columns:
        failed_rules  list<string>  every rule (error or warn) the row breaks, in rule order
        source        string        the file the row is in (``<table>`` for in-memory data)
        row           int64         its row number within that source, from 0

(a data column already called failed_rules, source or row keeps its name; the added one
is then ``batchaot_<name>``). A row "breaks" a rule exactly when it is counted in that
rule's violations, so the split follows each rule's NULL semantics (strict or not).

Failures arrive as (row, rule index) pairs — a row rule's violating rows, a dataset
check's violating rows — and become lists with numpy sorts and offsets, never a Python
loop per row. Parts are written like violation parts (:class:`violations.PartWriter`:
a temporary name renamed when complete, named by unit), so a retried unit replaces its
own parts and valid + invalid hold every input row exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrays
from .sinks import INVALID, VALID
from .violations import PartWriter, ROW, SOURCE

FAILED_RULES = "failed_rules"
ADDED = (FAILED_RULES, SOURCE, ROW)
RULE_INDEX = "rule_index"          # a pairs table's column: the rule's position in Rules.names


@dataclass(frozen=True)
class Rules:
    """The rules of a run in rule order: their names and which have severity error."""

    names: tuple[str, ...]
    errors: tuple[bool, ...]

    @classmethod
    def of(cls, specs: Sequence) -> "Rules":
        return cls(tuple(s.name for s in specs), tuple(s.severity == "error" for s in specs))

    def indices(self, rule: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Rule names (a violations table's `rule` column, dictionary-encoded or not) as
        indices into `names`."""
        chunks = rule.chunks if isinstance(rule, pa.ChunkedArray) else [rule]
        found = [self._indices(c) for c in chunks]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int32)

    def _indices(self, rule: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(rule.type):       # a few names, many rows: map the names only
            return self._indices(rule.dictionary)[rule.indices.to_numpy(zero_copy_only=False)]
        found = pc.index_in(rule, value_set=pa.array(self.names, pa.string()))
        if found.null_count:            # parts of another run's rules: a bug, never data
            raise ValueError(f"rules not in this run: {pc.unique(pc.filter(rule, pc.is_null(found)))}")
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32)


@dataclass
class Failures:
    """(row, rule index) pairs, sorted by row then rule, each pair once."""

    rows: np.ndarray            # int64
    rules: np.ndarray           # int32

    @classmethod
    def of(cls, rows: Sequence[np.ndarray], rules: Sequence[np.ndarray]) -> "Failures":
        r = np.concatenate([np.asarray(x, np.int64) for x in rows]) if len(rows) else np.zeros(0, np.int64)
        k = np.concatenate([np.asarray(x, np.int32) for x in rules]) if len(rules) else np.zeros(0, np.int32)
        order = np.lexsort((k, r))
        r, k = r[order], k[order]
        if len(r) > 1:
            keep = np.ones(len(r), dtype=bool)
            keep[1:] = (r[1:] != r[:-1]) | (k[1:] != k[:-1])
            r, k = r[keep], k[keep]
        return cls(r, k)

    @classmethod
    def of_source(cls, pairs: pa.Table, source: str) -> "Failures":
        """The failures of one source from a table of (source, row, rule_index) pairs."""
        mine = pairs.filter(pc.equal(pairs.column(SOURCE), source))
        return cls.of([mine.column(ROW).to_numpy()], [mine.column(RULE_INDEX).to_numpy()])

    def within(self, first: int, n: int) -> "Failures":
        """The pairs of rows first .. first+n-1, renumbered from 0."""
        lo, hi = np.searchsorted(self.rows, [first, first + n])
        return Failures(self.rows[lo:hi] - first, self.rules[lo:hi])


def failed_lists(failures: Failures, rows: np.ndarray, names: Sequence[str]) -> pa.ListArray:
    """The list of failed rule names of each of `rows` (ascending, each in `failures`)."""
    starts = np.searchsorted(failures.rows, rows, side="left")
    ends = np.searchsorted(failures.rows, rows, side="right")
    take = _ranges(starts, ends)
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(ends - starts, out=offsets[1:])
    values = pa.array(names, pa.string()).take(pa.array(failures.rules[take]))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ranges starts[i]..ends[i]-1, without a loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift


def pairs(sources: Sequence[pa.Array | pa.ChunkedArray], rows: Sequence[pa.Array | pa.ChunkedArray],
          rules: Sequence[np.ndarray]) -> pa.Table:
    """A table of (source, row, rule_index) failure pairs from pieces of them."""
    if not rules:
        return pa.table({SOURCE: pa.array([], pa.string()), ROW: pa.array([], pa.int64()),
                         RULE_INDEX: pa.array([], pa.int32())})
    return pa.table({SOURCE: pa.chunked_array([_chunks(s) for s in sources], pa.string()),
                     ROW: pa.chunked_array([_chunks(r) for r in rows], pa.int64()),
                     RULE_INDEX: pa.array(np.concatenate(rules).astype(np.int32))}).combine_chunks()


def _chunks(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values if values.type in (pa.string(), pa.int64()) else values.cast(
        pa.int64() if pa.types.is_integer(values.type) else pa.string())


def table_of_lists(pairs_table: pa.Table, names: Sequence[str]) -> pa.Table:
    """(source, row, failed_rules) of every row with a failure, by source then row."""
    sources = pc.unique(pairs_table.column(SOURCE)).sort() if pairs_table.num_rows else pa.array([], pa.string())
    parts = []
    for source in sources.to_pylist():          # a loop per file, never per row
        f = Failures.of_source(pairs_table, source)
        rows = np.unique(f.rows)
        parts.append(pa.table({SOURCE: arrays.repeated(source, len(rows)),
                               ROW: pa.array(rows, pa.int64()),
                               FAILED_RULES: failed_lists(f, rows, names)}))
    if not parts:
        return pa.table({SOURCE: pa.array([], pa.string()), ROW: pa.array([], pa.int64()),
                         FAILED_RULES: pa.array([], pa.list_(pa.string()))})
    return pa.concat_tables(parts)


def invalid_mask(failures: Failures, rules: Rules, n: int) -> np.ndarray:
    """Rows (0..n-1) that break a rule of severity error."""
    mask = np.zeros(n, dtype=bool)
    errors = np.asarray(rules.errors, dtype=bool)
    if len(failures.rows) and errors.any():
        mask[failures.rows[errors[failures.rules]]] = True
    return mask


def added_names(schema: pa.Schema) -> tuple[str, str, str]:
    """Names of the columns added to invalid rows (renamed when the data has them)."""
    return tuple(f"batchaot_{n}" if n in schema.names else n for n in ADDED)  # type: ignore[return-value]


def split(data: pa.RecordBatch | pa.Table, failures: Failures, rules: Rules, source: str | pa.Array,
          first_row: int) -> tuple[pa.Table, pa.Table]:
    """(valid, invalid) rows of `data`, whose row i is row first_row + i of `source`
    (`failures` numbered within `data`; `source` one name, or one per row)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    bad = invalid_mask(failures, rules, table.num_rows)
    valid = table.filter(pa.array(~bad)) if bad.any() else table
    at = np.flatnonzero(bad)
    invalid = table.filter(pa.array(bad)) if len(at) else table.slice(0, 0)
    lists = failed_lists(failures, at, rules.names)
    src = (arrays.repeated(source, len(at)) if isinstance(source, str)
           else source.take(pa.array(at)))
    rule_col, source_col, row_col = added_names(table.schema)
    invalid = (invalid.append_column(pa.field(rule_col, lists.type), lists)
               .append_column(pa.field(source_col, pa.string()), src)
               .append_column(pa.field(row_col, pa.int64()), pa.array(at + first_row, pa.int64())))
    return valid, invalid


def invalid_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of invalid rows of data in `schema`."""
    rule_col, source_col, row_col = added_names(schema)
    return (schema.append(pa.field(rule_col, pa.list_(pa.string())))
            .append(pa.field(source_col, pa.string())).append(pa.field(row_col, pa.int64())))


class Writer:
    """valid/ and invalid/ parts of one unit, each written atomically (violations.PartWriter),
    in the unit's input schema (invalid: plus the three columns)."""

    def __init__(self, folder: str | None, part_id: str, schema: pa.Schema | None = None):
        self.valid = PartWriter(folder, part_id, schema, subfolder=VALID)
        self.invalid = PartWriter(folder, part_id, None if schema is None else invalid_schema(schema),
                                  subfolder=INVALID)
        self.rows = [0, 0]

    def write(self, valid: pa.Table, invalid: pa.Table) -> None:
        for writer, table, k in ((self.valid, valid, 0), (self.invalid, invalid, 1)):
            if table.num_rows:
                writer.write(table)
                self.rows[k] += table.num_rows

    def commit(self) -> tuple[int, int]:
        """(valid rows, invalid rows); a part without rows is not left behind."""
        self.valid.commit()
        self.invalid.commit()
        return self.rows[0], self.rows[1]

    def abort(self) -> None:
        self.valid.abort()
        self.invalid.abort()
