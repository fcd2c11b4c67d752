"""The kernel cache on disk: write a kernel's source, compile it, load numba's cache
files for it only when they verify.

``cache=True`` cannot cache exec'd code, so each kernel's source goes to
``<cache root>/kernels/bk_<key>.py`` (``$BATCHAOT_CACHE_DIR``, else ``~/.cache/batchaot``;
the folder is this user's alone, 0700), written to a temporary file and hard-linked into
place so concurrent processes never see a partial file. The source that runs is the
text generated in this process (compiled with ``compile()``, never read back, no .pyc);
the file anchors numba's cache, whose index and data files (pickles) are loaded only
when their SHA-256 hashes equal the manifest ``bk_<key>.manifest.json`` written after
they were compiled, and are deleted and rebuilt otherwise. Kernels are compiled for one
explicit signature (read-only inputs), so the cache serves the next process and every
Ray worker on the machine. :data:`STATS` counts memory hits (cache.py), disk (numba
cache) hits, compiles, sources written and cache entries rejected.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import types
from collections import Counter
from pathlib import Path
from typing import Callable

from numba import njit

from ...compiler.cache import cache_root, private_dir, trusted_dir

STATS: Counter = Counter()     # memory_hits, disk_hits, compiles, sources_written, cache_rejected


def cache_dir() -> Path:
    """Where kernel sources, numba's cache files for them and their manifests live
    (``<cache root>/kernels``, a folder only this user can write); read on every use."""
    return Path(cache_root()) / "kernels"


def _source_path(key: str) -> Path:
    return cache_dir() / f"bk_{key}.py"


def _manifest_path(key: str) -> Path:
    return cache_dir() / f"bk_{key}.manifest.json"


def on_disk(key: str) -> bool:
    """Whether a verified compiled kernel for `key` is (probably) on disk: its manifest is."""
    return _manifest_path(key).exists()


def _module_name(key: str) -> str:
    return f"batchaot_kernel_{key}"


def unload(key: str) -> None:
    """Forget the module of kernel `key` (its source and numba's files stay on disk)."""
    sys.modules.pop(_module_name(key), None)


def load(key: str, text: str) -> tuple[Callable, Path]:
    """The compiled kernel `text` (its source) and the file that anchors it: machine code
    from the disk cache if it verifies, else compiled now.

    What runs is always `text`, generated in this process: the file on disk only
    anchors numba's cache (its index is stamped with the file's content), and no .pyc
    is read. numba's own cache files (pickles) are loaded only when their hashes match
    the manifest this process's user wrote after compiling them; anything else in their
    place is deleted and the kernel recompiled.
    """
    path = _source_path(key)
    try:
        private_dir(str(path.parent))
        try:
            current = path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            _write_atomic(path, text, replace=path.exists())
            STATS["sources_written"] += 1
    except OSError as exc:
        raise OSError(f"batchaot cannot use its kernel cache {path.parent}: {exc}; "
                      "set BATCHAOT_CACHE_DIR to a folder of your own") from exc
    module = types.ModuleType(_module_name(key))
    module.__file__ = str(path)
    exec(compile(text, str(path), "exec"), module.__dict__)   # noqa: S102 - our own generated text
    sys.modules[module.__name__] = module     # numba's cached environment re-imports it by name
    fn = njit(cache=True, nogil=True)(module.kernel)
    manifest = _manifest_path(key)
    if not _verify_numba_files(fn, manifest):
        STATS["cache_rejected"] += 1
    fn.compile(module.SIGNATURE)
    fn.disable_compile()    # as @njit(signature) does: one signature, never a silent second
    hits, misses = sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values())
    STATS["disk_hits"] += hits
    STATS["compiles"] += misses
    if misses:
        _write_manifest(fn, manifest)
    return fn, path


def _numba_files(fn) -> list[Path]:
    """numba's cache files (index and data) of dispatcher `fn`, wherever numba keeps them
    (beside the source, or under NUMBA_CACHE_DIR)."""
    cache_file = fn._cache._cache_file
    folder = Path(cache_file._cache_path)
    base = cache_file._index_name[:-len(".nbi")]
    return sorted(p for p in folder.glob(f"{base}.*") if p.suffix in (".nbi", ".nbc"))


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify_numba_files(fn, manifest: Path) -> bool:
    """True if numba's cache files for `fn` are exactly those the manifest records (or
    there are none); otherwise delete them, so that numba compiles afresh."""
    files = _numba_files(fn)
    if not files:
        return True
    try:
        recorded = json.loads(manifest.read_text()) if trusted_dir(str(manifest.parent)) else None
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict) and recorded == {p.name: _digest_file(p) for p in files}:
        return True
    for p in files:
        try:
            p.unlink()
        except OSError as exc:
            raise OSError(f"batchaot cannot remove the unverified kernel cache file {p}: {exc}") from exc
    return False


def _write_manifest(fn, manifest: Path) -> None:
    """Record the hashes of the cache files numba just wrote (atomically: a reader never
    sees half a manifest). A cache that cannot be written only costs time."""
    try:
        record = {p.name: _digest_file(p) for p in _numba_files(fn)}
        fd, tmp = tempfile.mkstemp(dir=manifest.parent, prefix=".bk_", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, manifest)
    except OSError:
        pass


def _write_atomic(path: Path, text: str, replace: bool) -> None:
    """Publish `text` at `path` whole; a concurrent writer of the same key wins harmlessly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bk_", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if replace:                      # a damaged or foreign file: overwrite it
            os.replace(tmp, path)
            return
        try:
            # link() fails if the name exists, so the first writer's file (and the
            # content numba's cache index was stamped with) is never touched again
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:                  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
