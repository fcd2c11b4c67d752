"""A content-addressed, on-disk cache of compiled Programs.

Key = rule text + strictness + the schema's column types + compiler versions, so a
rerun of a compile job (or of a validate job) skips parse, lowering and optimization.
Entries are written to a temporary name and renamed: concurrent workers never see
half a file.
"""
from __future__ import annotations

import hashlib
import os

import pyarrow as pa

from .._version import __version__
from .program import FORMAT_VERSION, Program

COMPILER_VERSION = "1"   # bump when lowering or optimization changes the bytecode


def default_dir() -> str:
    root = os.environ.get("BATCHAOT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "batchaot")
    return os.path.join(root, "programs")


def key(name: str, sql: str, strict: bool, schema: pa.Schema) -> str:
    h = hashlib.sha256()
    for part in (name, sql, str(strict), schema.to_string(show_schema_metadata=False),
                 COMPILER_VERSION, str(FORMAT_VERSION), __version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class ProgramCache:
    def __init__(self, folder: str | None = None):
        self.folder = folder or default_dir()
        self.hits = self.misses = 0

    def _path(self, k: str) -> str:
        return os.path.join(self.folder, k[:2], f"{k}.baot")

    def get(self, k: str) -> Program | None:
        try:
            with open(self._path(k), "rb") as fh:
                program = Program.from_bytes(fh.read())
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return program

    def put(self, k: str, program: Program) -> None:
        path = self._path(k)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}"
            with open(tmp, "wb") as fh:
                fh.write(program.to_bytes())
            os.replace(tmp, path)
        except OSError:
            pass   # a cache that cannot be written only costs time
