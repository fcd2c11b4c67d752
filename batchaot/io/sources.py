"""Data files → Arrow tables. The format comes from the extension unless given.

CSV and JSONL files may be compressed (``orders.csv.gz``, ``.bz2``, ``.zst``, ``.lz4``):
pyarrow decompresses them as a stream. Text formats are read in 64 MiB blocks, so a
single value of up to that size (a 10 MB string cell) reads as any other, and the column
types a CSV gets are the same whether ``validate`` reads it whole or ``submit`` streams it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..errors import DataError

FORMATS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv",
    ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
# Compressed text files pyarrow decompresses while reading (by the file's extension).
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
TEXT_FORMATS = ("csv", "jsonl")
BLOCK_BYTES = 64 << 20      # CSV/JSONL block: the longest row that can be read, and type inference's sample


def split_compression(path: str) -> tuple[str, str | None]:
    """(path without a compression extension, codec or None)."""
    stem, ext = os.path.splitext(path)
    codec = COMPRESSED.get(ext.lower())
    return (stem, codec) if codec else (path, None)


def infer_format(path: str) -> str:
    stem, codec = split_compression(path)
    ext = os.path.splitext(stem)[1].lower()
    if ext not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        shown = ext + os.path.splitext(path)[1] if codec else ext
        raise DataError(f"{path}: cannot tell the format from '{shown or 'no extension'}'; "
                        f"use one of {known} (CSV and JSONL may end in "
                        f"{', '.join(sorted(COMPRESSED))})")
    fmt = FORMATS[ext]
    if codec and fmt not in TEXT_FORMATS:
        raise DataError(f"{path}: a {codec}-compressed {fmt} file cannot be read as it is: "
                        f"decompress it ({fmt} files compress their own pages)")
    return fmt


def is_data_file(path: str) -> bool:
    """Whether a file found in a folder is one batchaot reads (by its extension)."""
    stem, codec = split_compression(path)
    fmt = FORMATS.get(os.path.splitext(stem)[1].lower())
    return fmt is not None and (codec is None or fmt in TEXT_FORMATS)


def csv_options(path: str, options: dict | None = None) -> dict:
    """pyarrow CSV reader options from a job's `source.csv` (delimiter, header, skip_rows,
    null_values); a .tsv file defaults to tabs. NULLs follow DuckDB's read_csv (the rules'
    semantics): an empty field, quoted or not, is NULL in every column type, and words such
    as NA or null are text; `null_values` replaces the empty string as the list of NULLs."""
    options = options or {}
    tsv = split_compression(path)[0].lower().endswith(".tsv")
    delimiter = options.get("delimiter", "\t" if tsv else ",")
    header = options.get("header", True)
    read = pacsv.ReadOptions(skip_rows=int(options.get("skip_rows", 0)), autogenerate_column_names=not header,
                             block_size=BLOCK_BYTES)
    # DuckDB's nullstr defaults to "" alone (pyarrow's list also has NA, null, nan, ...);
    # strings_can_be_null: pyarrow reads an empty string field as "" otherwise, DuckDB as
    # NULL; quoted values can be NULL too, as DuckDB's allow_quoted_nulls (default true).
    convert = pacsv.ConvertOptions(null_values=list(options.get("null_values", [""])),
                                   strings_can_be_null=True, quoted_strings_can_be_null=True)
    return dict(read_options=read, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=convert)


def read_table(path: str, fmt: str | None = None, csv: dict | None = None,
               columns: list[str] | None = None) -> pa.Table:
    """Read one data file (only `columns` where the format allows: None reads all); any
    failure is a DataError naming the file."""
    fmt = fmt or infer_format(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    with reading(path, fmt):
        if fmt == "parquet":
            return pq.read_table(path, columns=columns)
        if fmt == "csv":
            return pacsv.read_csv(path, **_csv_opts(path, csv, columns))
        if fmt == "ipc":
            return feather.read_table(path, columns=columns)
        if fmt == "jsonl":
            table = pajson.read_json(path, read_options=pajson.ReadOptions(block_size=BLOCK_BYTES))
            return _select(table, columns, path)
    raise DataError(f"{path}: unknown format '{fmt}'")


def _csv_opts(path: str, csv: dict | None, columns: list[str] | None) -> dict:
    opts = csv_options(path, csv)
    if columns:                  # an empty list would mean "all" to pyarrow
        # set on csv_options' own (fresh) object, so the NULL settings stay
        opts["convert_options"].include_columns = columns
    return opts


def _select(data, columns: list[str] | None, path: str):
    if columns is None:
        return data
    missing = [c for c in columns if c not in data.schema.names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} that the rules read")
    return data.select(columns)


def iter_batches(path: str, fmt: str, columns: list[str] | None = None, csv: dict | None = None,
                 batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream a non-Parquet file batch by batch, so a file larger than memory goes through.
    Many small record batches (an IPC file written row by row) come merged."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    with reading(path, fmt):
        if fmt == "csv":
            yield from coalesce(pacsv.open_csv(path, **_csv_opts(path, csv, columns)), batch_rows)
        elif fmt == "ipc":
            with pa.memory_map(path) as source:
                reader = pa.ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                yield from coalesce((plain_views(_select(b, columns, path)) for b in batches), batch_rows)
        else:
            table = read_table(path, fmt, columns=columns)
            yield from table.to_batches(batch_rows)


# A batch costs a fixed overhead to check (about 0.3 ms on the benchmark VM: columns
# bound, kernels looked up) and merging batches costs a copy of their rows; checking
# 16K-row batches as they come was faster than merging them, 4K-row ones slower.
SMALL_BATCH_ROWS = 1 << 13      # batches this large are checked as they come
COALESCE_ROWS = 1 << 16         # smaller ones are merged up to this many rows


def coalesce(batches, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Record batches, consecutive small ones merged (up to `batch_rows` rows): rules cost
    a fixed overhead per batch, which thousands of tiny batches would multiply."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows >= SMALL_BATCH_ROWS:
            if held:
                yield from merged(held, batch_rows)
                held, rows = [], 0
            yield batch
            continue
        held.append(batch)
        rows += batch.num_rows
        if rows >= COALESCE_ROWS:
            yield from merged(held, batch_rows)
            held, rows = [], 0
    if held:
        yield from merged(held, batch_rows)


def merged(batches: list[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches as one (or batches of `batch_rows` rows), in order; none for none."""
    if len(batches) <= 1:
        yield from batches
        return
    yield from pa.Table.from_batches(batches).combine_chunks().to_batches(batch_rows)


def rechunk(table: pa.Table, batch_rows: int = 1 << 20) -> pa.Table:
    """A table as the engines take it: view columns as plain ones (plain_views), and
    columns in many small chunks as one chunk each (one copy): evaluation works batch by
    batch, and 100,000 ten-row batches would take minutes."""
    table = plain_views(table)
    chunks = max((col.num_chunks for col in table.columns), default=0)
    if chunks <= 1 or table.num_rows // chunks >= SMALL_BATCH_ROWS:
        return table
    return table.combine_chunks()


def _plain_type(t: pa.DataType) -> pa.DataType | None:
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        value = _plain_type(t.value_type)
        return None if value is None else pa.dictionary(t.index_type, value, t.ordered)
    return None


def plain_views(data):
    """Columns (a table's or a batch's) as every kernel and pyarrow function reads them:
    string_view / binary_view cast once to string / binary (large_* past 2 GiB), and a
    dictionary whose dictionary holds a NULL without it, its rows NULL in the indices
    (SQL and DuckDB read such a row as NULL; the kernels read the indices' validity);
    other columns untouched (zero-copy)."""
    plain = [_plain_type(f.type) for f in data.schema]
    holes = [pa.types.is_dictionary(f.type) and _dictionary_nulls(col) for f, col in zip(data.schema, data.columns)]
    if not any(plain) and not any(holes):
        return data
    cols = []
    for col, t, hole in zip(data.columns, plain, holes):
        if hole:
            col = _nulls_in_indices(col)
        if t is not None and not pa.types.is_dictionary(t) and col.nbytes >= 1 << 31:
            t = pa.large_string() if pa.types.is_string(t) else pa.large_binary()
        cols.append(col if t is None else col.cast(t))
    names = data.schema.names
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(cols, names=names)
    return pa.Table.from_arrays(cols, names=names)


def _dictionary_nulls(col: pa.Array | pa.ChunkedArray) -> bool:
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    return any(c.dictionary.null_count for c in chunks)


def _nulls_in_indices(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([_nulls_in_indices(c) for c in col.chunks], col.type)
    if not col.dictionary.null_count:
        return col
    # encoded again from its values: the NULL leaves the dictionary (chunks whose
    # dictionaries hold a NULL cannot be unified) and its rows' indices become NULL
    again = col.dictionary_decode().dictionary_encode()
    return pa.DictionaryArray.from_arrays(again.indices.cast(col.indices.type), again.dictionary)


@dataclass
class Piece:
    """Consecutive rows of one source as `validate` holds them."""

    source: str
    first_row: int               # row number of the piece's first row within its source
    rows: int
    table: pa.Table | None       # None: Parquet row groups not decoded (see read_pieces)
    row_groups: int = 0          # how many row groups were not decoded


def read_pieces(path: str, columns: list[str] | None = None,
                skip: Callable[[pq.FileMetaData, pa.Schema, int], bool] | None = None) -> list[Piece]:
    """One file as `validate` reads it: only `columns` (None: all), and Parquet row groups
    for which skip(metadata, arrow schema, row group) is True not decoded at all (their
    pages are never read: row-group statistics proved every rule), as `submit` does."""
    fmt = infer_format(path)
    if fmt != "parquet" or skip is None:
        table = read_table(path, fmt, columns=columns)
        return [Piece(path, 0, table.num_rows, table)]
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    pieces: list[Piece] = []
    with reading(path, fmt):
        pf = pq.ParquetFile(path)
        meta, schema = pf.metadata, pf.schema_arrow
        row = 0
        run: list[int] = []
        run_skipped = None
        for rg in range(meta.num_row_groups):
            skipped = bool(skip(meta, schema, rg))
            if run and skipped != run_skipped:
                pieces.append(_piece(pf, path, run, run_skipped, row, columns))
                row += pieces[-1].rows
                run = []
            run.append(rg)
            run_skipped = skipped
        if run:
            pieces.append(_piece(pf, path, run, run_skipped, row, columns))
    return pieces


def _piece(pf: pq.ParquetFile, path: str, groups: list[int], skipped: bool, first_row: int,
           columns: list[str] | None) -> Piece:
    if skipped:
        rows = sum(pf.metadata.row_group(rg).num_rows for rg in groups)
        return Piece(path, first_row, rows, None, len(groups))
    table = pf.read_row_groups(groups, columns=columns)
    return Piece(path, first_row, table.num_rows, table)


@contextmanager
def reading(path: str, fmt: str) -> Iterator[None]:
    """Any failure while reading `path` becomes a DataError that names the file."""
    try:
        yield
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {_first_line(exc)}") from None


def read_schema(path: str, fmt: str | None = None, csv: dict | None = None) -> pa.Schema:
    """The schema of a data file, reading only its footer where the format has one."""
    fmt = fmt or infer_format(path)
    if fmt == "parquet" and os.path.exists(path):
        with reading(path, fmt):
            return pq.read_schema(path)
    if fmt == "ipc" and os.path.exists(path):
        with reading(path, fmt), pa.memory_map(path) as source:
            return pa.ipc.open_file(source).schema
    if fmt == "csv" and os.path.exists(path):
        with reading(path, fmt):
            return pacsv.open_csv(path, **csv_options(path, csv)).schema
    return read_table(path, fmt, csv=csv).schema


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def footer_null_counts(path: str, columns: list[str]) -> dict[str, int | None]:
    """NULLs per top-level column from a Parquet file's footer statistics, without reading
    rows: None for a column when some row group has no null count for it (or the file is
    not Parquet); 0 for a column the schema declares non-nullable."""
    out: dict[str, int | None] = {c: None for c in columns}
    if not columns or infer_format(path) != "parquet":
        return out
    with reading(path, "parquet"):
        meta = pq.read_metadata(path)
    arrow = meta.schema.to_arrow_schema()
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    for c in columns:
        if c in arrow.names and not arrow.field(c).nullable:
            out[c] = 0
            continue
        i = index.get(c)
        if i is None:
            continue
        total = 0
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(i).statistics
            if stats is None or not getattr(stats, "has_null_count", True) or stats.null_count is None:
                break
            total += stats.null_count
        else:
            out[c] = total
    return out
