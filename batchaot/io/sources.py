"""Data files → Arrow tables. The format comes from the extension unless given."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

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


def infer_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DataError(f"{path}: cannot tell the format from '{ext or 'no extension'}'; "
                        f"use one of {known}")
    return FORMATS[ext]


def csv_options(path: str, options: dict | None = None) -> dict:
    """pyarrow CSV reader options from a job's `source.csv` (delimiter, header, skip_rows,
    null_values); a .tsv file defaults to tabs."""
    options = options or {}
    delimiter = options.get("delimiter", "\t" if path.endswith(".tsv") else ",")
    header = options.get("header", True)
    read = pacsv.ReadOptions(skip_rows=int(options.get("skip_rows", 0)), autogenerate_column_names=not header)
    convert = pacsv.ConvertOptions(null_values=options["null_values"]) if "null_values" in options else None
    return dict(read_options=read, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=convert)


def read_table(path: str, fmt: str | None = None, csv: dict | None = None) -> pa.Table:
    """Read one data file; any failure is a DataError naming the file."""
    fmt = fmt or infer_format(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    with reading(path, fmt):
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "csv":
            return pacsv.read_csv(path, **csv_options(path, csv))
        if fmt == "ipc":
            return feather.read_table(path)
        if fmt == "jsonl":
            return pajson.read_json(path)
    raise DataError(f"{path}: unknown format '{fmt}'")


def iter_batches(path: str, fmt: str, columns: list[str] | None = None, csv: dict | None = None,
                 batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream a non-Parquet file batch by batch, so a file larger than memory goes through."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    with reading(path, fmt):
        if fmt == "csv":
            opts = csv_options(path, csv)
            if columns is not None:
                convert = opts["convert_options"] or pacsv.ConvertOptions()
                convert.include_columns = columns
                opts["convert_options"] = convert
            opts["read_options"].block_size = 64 << 20
            yield from pacsv.open_csv(path, **opts)
        elif fmt == "ipc":
            with pa.memory_map(path) as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    batch = reader.get_batch(i)
                    yield batch.select(columns) if columns is not None else batch
        else:
            table = read_table(path, fmt)
            yield from (table.select(columns) if columns is not None else table).to_batches(batch_rows)


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
    if fmt in ("csv", "ipc"):
        return next(iter_batches(path, fmt, csv=csv)).schema
    return read_table(path, fmt, csv=csv).schema


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
