"""The violations layout: the one definition of a table of violating rows.

Every table of violating rows batchaot makes has this layout: ``Result.violations``,
``validate --output`` and ``submit --output`` (every ``violations/part-*.parquet``, row
rules' and dataset checks' alike), in this process or on a Ray worker:

    rule    string   the rule's name
    source  string   the file the row is in (``<table>`` for in-memory data)
    row     int64    the row's number within that source, from 0
    ...              the columns the rules show, in the rules' order, each once: a row
                     rule's columns (those its predicate reads) and a dataset check's own
                     columns (its key or column; not those of its ``where``); NULL in the
                     rows of a rule that does not show that column

A data column named ``rule``, ``source`` or ``row`` is shown as ``value_<name>``
(:func:`out_name`). Column types are those of the schema the rules were compiled
against, with dictionaries unwrapped to their value type (:func:`plain_type`), so the
layout depends on the rules and that schema only — never on which rules failed, how the
data was split into units, or how a file happened to be encoded — and every part of a
run has the same schema.

Parts are written atomically (:class:`PartWriter`, :func:`write_part`: a temporary name,
renamed when complete, with the one helper of :mod:`.sinks`), named by what produced them
(a unit's id, or a check and bucket), so a retried unit or bucket replaces its own part.

This module sits in io (a leaf) rather than in the runtime because the dataset checks
(below the runtime) build their violating rows in this layout too.
"""
from __future__ import annotations

import glob
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import arrays, memory, sinks

RULE, SOURCE, ROW = "rule", "source", "row"
KEYS = (RULE, SOURCE, ROW)
TABLE_SOURCE = "<table>"              # the source of in-memory data
PART_PREFIX = "part-"


# --- names and types -------------------------------------------------------------------

def out_name(column: str) -> str:
    """A data column's name in the layout (renamed when it is rule, source or row)."""
    return f"value_{column}" if column in KEYS else column


def plain_type(t: pa.DataType) -> pa.DataType:
    """A column's type in the layout: a dictionary's value type, any other type as is."""
    return t.value_type if pa.types.is_dictionary(t) else t


def layout(data: pa.Schema, columns: Iterable[str]) -> pa.Schema:
    """rule, source, row, then `columns` (data column names, in order, each once) with
    their types in `data` (the schema the rules were compiled against)."""
    fields = [pa.field(RULE, pa.string()), pa.field(SOURCE, pa.string()), pa.field(ROW, pa.int64())]
    for name in dict.fromkeys(columns):
        fields.append(pa.field(out_name(name), plain_type(data.field(name).type)))
    return pa.schema(fields)


def empty(schema: pa.Schema | None = None) -> pa.Table:
    """No violating rows (the three key columns when the rules' columns are unknown)."""
    return (schema or layout(pa.schema([]), [])).empty_table()


# --- building rows ---------------------------------------------------------------------

def rows(schema: pa.Schema, rule: str, source: str | pa.Array, row: np.ndarray | pa.Array,
         values: Mapping[str, pa.Array | pa.ChunkedArray]) -> pa.Table:
    """Violating rows of one rule in `schema`: `source` (one name, or one per row), row
    numbers, and the rule's columns' values by data column name (the others NULL)."""
    n = len(row)
    src = arrays.repeated(source, n) if isinstance(source, str) else source
    columns: list = [arrays.repeated(rule, n), _as(src, pa.string()),
                     _as(arrays.int64_array(row) if isinstance(row, np.ndarray) else row, pa.int64())]
    by_out = {out_name(k): v for k, v in values.items()}
    for f in list(schema)[len(KEYS):]:
        v = by_out.get(f.name)
        columns.append(null_column(n, f.type) if v is None else _as(v, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def null_column(n: int, t: pa.DataType) -> pa.Array:
    """n NULLs of type t; for fixed-width, string and binary types, views of one shared
    zero buffer (what a not_null check's column shows: it costs no memory per row)."""
    width = _zero_width(t)
    if width is None:
        return pa.nulls(n, t)
    zeros = pa.py_buffer(memory.shared_zeros(max((n + 1) * width, (n + 7) // 8), np.uint8))
    buffers = [zeros, zeros] if t.num_buffers == 2 else [zeros, zeros, zeros.slice(0, 0)]
    return pa.Array.from_buffers(t, n, buffers, null_count=n)


def _zero_width(t: pa.DataType) -> int | None:
    """Bytes per value (or per offset) of a type whose all-zero buffers are valid NULLs."""
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return 4
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return 8
    fixed = (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)
             or pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t))
    return t.bit_width // 8 if fixed else None


def shaped(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table of violating rows (rule, source, row and out-named columns, dictionary
    encoded or not, in any order, some missing) in exactly `schema`."""
    n = table.num_rows
    arrays = []
    for f in schema:
        arrays.append(_as(table.column(f.name), f.type) if f.name in table.column_names
                      else null_column(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _as(values, t: pa.DataType):
    """`values` in type `t`: dictionaries unwrapped, other types cast (a no-op when equal)."""
    if pa.types.is_dictionary(values.type) and not pa.types.is_dictionary(t):
        values = values.cast(values.type.value_type)
    return values if values.type == t else values.cast(t)


# --- part files --------------------------------------------------------------------------

def part_path(output: str, part_id: str, subfolder: str = sinks.VIOLATIONS) -> str:
    return os.path.join(output, subfolder, f"{PART_PREFIX}{part_id}.parquet")


def check_part_id(check_index: int, bucket: int | None = None) -> str:
    """Part id of a dataset check's violating rows (one per bucket if bucketed)."""
    return f"check{check_index:03d}" + ("" if bucket is None else f"-b{bucket:04d}")


class PartWriter:
    """violations/part-<id>.parquet in `schema`, written under a temporary name and renamed
    when done, so a retried unit replaces its own part and a killed one leaves no half file.

    Rows are buffered up to FLUSH_ROWS and written as one row group: one write per rule
    and batch would cost more than the rules themselves and leave readers tiny row groups.
    `output` None: nothing is written (``enabled`` is False). `subfolder`: violations/, or
    a quarantine's valid/ and invalid/ (io/quarantine.py), whose parts are written alike."""

    FLUSH_ROWS = 1 << 20

    def __init__(self, output: str | None, part_id: str, schema: pa.Schema | None = None,
                 subfolder: str = sinks.VIOLATIONS):
        self.enabled = output is not None
        self.schema = schema
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        if self.enabled:
            self.final = part_path(output, part_id, subfolder)
            self.tmp = sinks.temporary(self.final)

    def write(self, table: pa.Table) -> None:
        """Rows in the layout (shaped to the writer's schema, the first table's if none)."""
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            table = shaped(table, self.schema)
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
            # one chunk per column: the buffer holds a table per rule and batch, and the
            # writer's cost grows with the chunks it is handed, not only the rows
            self._writer.write_table(pa.concat_tables(self._buffer).combine_chunks())
        except OSError as exc:      # full disk, file-size limit, a folder in the way: exit 2
            raise sinks.write_error(self.final, exc) from None
        self._buffer, self._buffered = [], 0

    def commit(self) -> str | None:
        """The part's path, or None when no row was written (an earlier attempt's part of
        the same id is then removed: this attempt found no violation)."""
        if not self.enabled:
            return None
        self._flush()
        try:
            if self._writer is None:
                if os.path.lexists(self.final):
                    os.unlink(self.final)
                return None
            writer, self._writer = self._writer, None
            writer.close()
        except OSError as exc:
            raise sinks.write_error(self.final, exc) from None
        sinks.publish(self.tmp, self.final)
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
            if self.enabled:
                sinks.discard(self.tmp)


def write_part(output: str | None, part_id: str, table: pa.Table | None,
               schema: pa.Schema | None = None) -> int:
    """Violating rows as violations/part-<part_id>.parquet (atomic; a rerun replaces it, and
    removes it when it has no rows); returns how many rows."""
    writer = PartWriter(output, part_id, schema)
    try:
        if table is not None and table.num_rows and writer.enabled:
            writer.write(table if schema is None else shaped(table, schema))
        writer.commit()
    finally:
        writer.abort()
    return 0 if table is None else table.num_rows


def check_parts(output: str) -> list[str]:
    """The part files of dataset checks' violating rows (check_part_id)."""
    return sorted(glob.glob(os.path.join(output, sinks.VIOLATIONS, f"{PART_PREFIX}check*.parquet")))


def parts(output: str) -> list[str]:
    return sorted(glob.glob(os.path.join(output, sinks.VIOLATIONS, f"{PART_PREFIX}*.parquet")))


def read(output: str, schema: pa.Schema | None = None) -> pa.Table:
    """Every part of an output folder as one table (`schema`: the layout when none)."""
    found = parts(output)
    if not found:
        return empty(schema)
    return pa.concat_tables([pq.read_table(p) for p in found], promote_options="permissive")


def clear_temporaries(output: str, subfolders: Sequence[str] = (sinks.VIOLATIONS,)) -> None:
    """Half-written parts of killed workers (their retries wrote the real ones)."""
    for sub in subfolders:
        for path in glob.glob(os.path.join(output, sub, f"{PART_PREFIX}*{sinks.TEMPORARY}*")):
            sinks.discard(path)


def concat(tables: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    """Tables of violating rows as one table in `schema`."""
    shown = [shaped(t, schema) for t in tables if t is not None and t.num_rows]
    return pa.concat_tables(shown) if shown else schema.empty_table()
