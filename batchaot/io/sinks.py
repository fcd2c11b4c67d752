"""Writing results: summary.json and violations/part-*.parquet, atomically."""
from __future__ import annotations

import json
import os
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError


def prepare_output(path: str) -> None:
    """Create the output folder and prove it is writable before any work starts."""
    try:
        os.makedirs(os.path.join(path, "violations"), exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{path}: output folder is not writable: {exc.strerror or exc}") from None


def _atomic_write(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def write_summary(path: str, summary: dict) -> str:
    target = os.path.join(path, "summary.json")

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")

    _atomic_write(target, write)
    return target


def write_violations(path: str, table: pa.Table, part: str = "00000") -> str:
    target = os.path.join(path, "violations", f"part-{part}.parquet")
    _atomic_write(target, lambda tmp: pq.write_table(table, tmp))
    return target
