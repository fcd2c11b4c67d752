"""Planning: data files → work units, reading nothing but Parquet footers.

A work unit is (file, row groups) for Parquet and a whole file otherwise. Units carry
their first row's number within the file, so violations report the row number a user
can find in that file, whichever worker checked it.
"""
from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from . import sources

UNIT_ROWS = 1 << 21          # about 2M rows per unit: big enough to amortize, small enough to balance


@dataclass(frozen=True)
class WorkUnit:
    id: str                          # stable: file index + first row group, e.g. "0003-0012"
    path: str
    format: str
    row_groups: tuple[int, ...] | None   # Parquet row groups, None = the whole file
    first_row: int                   # row number (within the file) of the unit's first row
    rows: int                        # -1 if unknown before reading (non-Parquet)
    bytes: int


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Globs and folders → sorted data files; an unmatched pattern is an error."""
    paths: list[str] = []
    for item in patterns:
        if os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(item, "**", "*"), recursive=True)
                           if os.path.isfile(p) and sources.is_data_file(p))
        elif glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
        else:
            found = [item]
        if not found:
            raise DataError(f"{item}: no files match")
        paths += found
    return paths


def plan(paths: Sequence[str], fmt: str | None = None, unit_rows: int | None = None) -> list[WorkUnit]:
    unit_rows = unit_rows or UNIT_ROWS
    units: list[WorkUnit] = []
    for index, path in enumerate(paths):
        kind = fmt or sources.infer_format(path)
        if kind == "parquet":
            units += _parquet_units(index, path, unit_rows)
        else:
            size = _size(path)
            units.append(WorkUnit(f"{index:04d}-0000", path, kind, None, 0, -1, size))
    return units


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parquet_units(index: int, path: str, unit_rows: int) -> Iterator[WorkUnit]:
    try:
        meta = parquet_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
    group: list[int] = []
    rows = nbytes = first = row = 0
    for rg in range(meta.num_row_groups):
        info = meta.row_group(rg)
        if group and rows + info.num_rows > unit_rows:
            yield WorkUnit(f"{index:04d}-{group[0]:04d}", path, "parquet", tuple(group), first, rows, nbytes)
            group, rows, nbytes, first = [], 0, 0, row
        group.append(rg)
        rows += info.num_rows
        nbytes += info.total_byte_size
        row += info.num_rows
    if group:
        yield WorkUnit(f"{index:04d}-{group[0]:04d}", path, "parquet", tuple(group), first, rows, nbytes)
    elif meta.num_row_groups == 0:
        # a file without row groups holds no rows: still a unit, so that it is checked
        # (row rules pass on 0 rows, a row_count rule sees them) as an empty CSV is
        yield WorkUnit(f"{index:04d}-0000", path, "parquet", (), 0, 0, 0)


def read_unit(unit: WorkUnit, columns: list[str] | None = None, csv: dict | None = None,
              batch_rows: int = 1 << 20, threads: int = 1, as_stored: bool = False) -> Iterator[pa.RecordBatch]:
    """The unit's rows as record batches, streaming, reading only `columns` where it can;
    Parquet columns are decoded on Arrow's threads when `threads` > 1. String columns
    stored with dictionary pages come as Arrow dictionaries, unless `as_stored` (rows
    copied out, as a quarantine does, keep the file's own Arrow schema)."""
    if unit.format != "parquet":
        yield from sources.iter_batches(unit.path, unit.format, columns, csv, batch_rows)
        return
    if not unit.row_groups:
        return
    with sources.reading(unit.path, "parquet"):
        meta = parquet_metadata(unit.path)
        pf = pq.ParquetFile(unit.path, metadata=meta,
                            read_dictionary=None if as_stored else _dictionary_columns(meta, columns))
        missing = [c for c in columns or () if c not in pf.schema_arrow.names]
        if missing:
            raise DataError(f"{unit.path}: missing column(s) {', '.join(missing)} that the rules read")
        # a dictionary column comes one batch per row group: thousands of tiny row groups
        # are merged back into batches (dictionaries unified) before any rule runs
        yield from sources.coalesce(pf.iter_batches(batch_size=batch_rows, row_groups=list(unit.row_groups),
                                                    columns=columns, use_threads=threads > 1), batch_rows)


def parquet_metadata(path: str) -> pq.FileMetaData:
    """The file's footer, parsed once per version of the file: a unit read in many
    pieces (on several threads) does not parse it again for each."""
    st = os.stat(path)
    return _footer(path, st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=256)
def _footer(path: str, size: int, mtime_ns: int, inode: int) -> pq.FileMetaData:
    return pq.read_metadata(path)


def _dictionary_columns(meta: pq.FileMetaData, columns: list[str] | None) -> list[str]:
    """String columns stored with dictionary pages: read them as Arrow dictionaries, so
    no string is materialized and string rules run once per distinct value."""
    if meta.num_row_groups == 0:
        return []
    schema = meta.schema.to_arrow_schema()
    rg = meta.row_group(0)
    out = []
    for j in range(rg.num_columns):
        chunk = rg.column(j)
        name = chunk.path_in_schema
        if columns is not None and name not in columns or name not in schema.names:
            continue
        t = schema.field(name).type
        if (pa.types.is_string(t) or pa.types.is_large_string(t)) and chunk.has_dictionary_page:
            out.append(name)
    return out
