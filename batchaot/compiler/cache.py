"""A content-addressed, on-disk cache of compiled Programs.

Key = rule name and text + strictness + the schema's column types + the compiler's
versions and code (compiler_fingerprint), so a rerun of a compile job, of a job or of
a validate with a rules file skips parse, lowering and optimization. A rule that reads
the clock (current_date, now()) holds its run's instant: it is compiled every time and
never stored (clock.watched); the instant in the key (found by the regex below) is a
second guard.
Entries are written to a temporary name and renamed: concurrent workers never see
half a file.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from typing import Sequence

import pyarrow as pa

from .._version import __version__
from . import clock
from .program import FORMAT_VERSION, Program

COMPILER_VERSION = "1"   # bump when lowering or optimization changes the bytecode


def cache_root() -> str:
    """Every cache of batchaot lives under here: ``$BATCHAOT_CACHE_DIR``, else ~/.cache/batchaot."""
    return os.environ.get("BATCHAOT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "batchaot")


class UnsafeCacheDir(OSError):
    """A cache folder that someone else could write: loading from it could run their code."""


def private_dir(path: str) -> str:
    """Create `path` (and missing parents) readable and writable by this user only, and
    refuse a folder that another user owns or that others may write into.

    What a cache holds is loaded and run (kernels, compiled rules), so the folder must
    be ours alone; a folder of ours that is too open is closed (chmod 0700).
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeCacheDir(f"batchaot's cache folder {path} belongs to another user; "
                             "set BATCHAOT_CACHE_DIR to a folder of your own")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def default_dir() -> str:
    return os.path.join(cache_root(), "programs")


def trusted_dir(path: str) -> bool:
    """Whether files under `path` may be loaded: ours, and nobody else may write there."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return owner_ok and not st.st_mode & 0o022


def _write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        try:
            fh = open(tmp, "wb")
        except FileNotFoundError:      # the first entry of its folder (not checked per write)
            private_dir(os.path.dirname(os.path.dirname(path)))
            private_dir(os.path.dirname(path))
            fh = open(tmp, "wb")
        with fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        pass   # a cache that cannot be written only costs time


def key(name: str, sql: str, strict: bool, schema: pa.Schema) -> str:
    return _digest(name.encode(), sql.encode(), str(strict).encode(), _schema_text(schema),
                   _instant(sql.encode()))


def file_key(content: bytes, schema: pa.Schema) -> str:
    """Key of a whole rules file's compiled rows: its bytes, the schema, the versions."""
    return _digest(b"file", content, _schema_text(schema), _instant(content))


# Rule text that reads the run's "now" compiles to that instant's constants: its entries
# are keyed by the instant too (a cached program never carries yesterday's date).
_CLOCK = re.compile(rb"current_date|current_timestamp|get_current_timestamp|transaction_timestamp"
                    rb"|\b(now|today)\s*\(", re.IGNORECASE)


def _instant(text: bytes) -> bytes:
    return clock.iso(clock.now()).encode() if _CLOCK.search(text) else b""


def _schema_text(schema: pa.Schema) -> bytes:
    return schema.to_string(show_schema_metadata=False).encode()


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> bytes:
    """A digest of the compiler's code: its Python modules, the C optimizer's library and
    its wrapper, and the versions of the parser (sqlglot) and of pyarrow (constant
    folding). Part of every key, so a changed compiler (a new release, a working copy
    being edited, an upgraded dependency) never loads what an older one compiled,
    whatever COMPILER_VERSION says."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    here = os.path.join(package, "compiler")
    files = sorted(os.path.join(here, f) for f in os.listdir(here) if f.endswith(".py"))
    files += sorted(os.path.join(package, f) for f in os.listdir(package)
                    if f.startswith("_native") or f == "native.py")
    return code_digest(files, ("sqlglot", "pyarrow"))


def code_digest(files: Sequence[str | os.PathLike], dists: Sequence[str], *extra: bytes) -> bytes:
    """A digest of these files' bytes, the installed versions of these distributions and
    `extra`: what a cache of compiled code (Programs here, kernels in engine/aot.py) is
    keyed by, so that edited or upgraded code never loads what older code compiled."""
    from importlib import metadata

    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            h.update(fh.read())
    for dist in dists:
        h.update(metadata.version(dist).encode())
    for part in extra:
        h.update(part)
    return h.digest()


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in (*parts, COMPILER_VERSION.encode(), str(FORMAT_VERSION).encode(), __version__.encode(),
                 compiler_fingerprint()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()


class ProgramCache:
    def __init__(self, folder: str | None = None):
        self.folder = folder or default_dir()
        self.hits = self.misses = 0

    def _path(self, k: str) -> str:
        return os.path.join(self.folder, k[:2], f"{k}.baot")

    def get(self, k: str) -> Program | None:
        if not trusted_dir(self.folder):
            self.misses += 1
            return None
        try:
            with open(self._path(k), "rb") as fh:
                program = Program.from_bytes(fh.read())
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return program

    def put(self, k: str, program: Program) -> None:
        _write_atomically(self._path(k), program.to_bytes())


class TableCache:
    """Arrow tables by key (a compile job's rows for one rules file)."""

    def __init__(self, folder: str | None = None):
        self.folder = folder or os.path.join(cache_root(), "files")

    def _path(self, k: str) -> str:
        return os.path.join(self.folder, k[:2], f"{k}.arrow")

    def get(self, k: str) -> pa.Table | None:
        if not trusted_dir(self.folder):
            return None
        try:
            with pa.memory_map(self._path(k)) as source:
                return pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid):
            return None

    def put(self, k: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        _write_atomically(self._path(k), sink.getvalue().to_pybytes())
