"""Data files → Arrow tables. The format comes from the extension unless given."""
from __future__ import annotations

import os

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


def read_table(path: str, fmt: str | None = None) -> pa.Table:
    """Read one data file; any failure is a DataError naming the file."""
    fmt = fmt or infer_format(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "csv":
            opts = pacsv.ParseOptions(delimiter="\t") if path.endswith(".tsv") else None
            return pacsv.read_csv(path, parse_options=opts)
        if fmt == "ipc":
            return feather.read_table(path)
        if fmt == "jsonl":
            return pajson.read_json(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {_first_line(exc)}") from None
    raise DataError(f"{path}: unknown format '{fmt}'")


def read_schema(path: str, fmt: str | None = None) -> pa.Schema:
    """The schema of a data file, reading only its footer where the format has one."""
    fmt = fmt or infer_format(path)
    if fmt == "parquet" and os.path.exists(path):
        try:
            return pq.read_schema(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: cannot read as parquet: {_first_line(exc)}") from None
    return read_table(path, fmt).schema


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
