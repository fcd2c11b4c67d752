"""Writing results: the output folder a run owns, summary.json, atomic writes.

The violations parts themselves are laid out and written by :mod:`.violations`.

A run owns its output folder (:class:`OutputRun`): it locks the folder against a
concurrent run, writes every part into a fresh staging folder of its own, and only when
it is done swaps that in for the previous run's results and writes summary.json last.
So whenever a summary.json exists, it describes exactly the parts beside it; a run that
fails leaves a summary.json saying so (and no parts), never a mix of two runs.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import stat
from contextlib import contextmanager
from typing import Iterator

from ..errors import OutputError

SUMMARY = "summary.json"
VIOLATIONS = "violations"
REPORT = "report.html"
VALID, INVALID = "valid", "invalid"          # a quarantine's folders (io/quarantine.py)
PART_FOLDERS = (VIOLATIONS, VALID, INVALID)  # folders of part files that each run replaces
LOCK = ".batchaot.lock"
STAGING_PREFIX = ".batchaot-run-"
TRASH_PREFIX = ".batchaot-old-"
# What a run of batchaot puts in its output folder; the next run replaces all of it.
RESULT_ENTRIES = (SUMMARY, VIOLATIONS, REPORT, "compiled.parquet", VALID, INVALID)


def write_error(path: str, exc: OSError) -> OutputError:
    """An OSError while writing `path`, as one line for the user, naming the file where
    the run would have put it (not its staging folder)."""
    text = str(exc)
    if exc.errno == errno.EFBIG or "[errno 27]" in text:      # pyarrow's OSError has no errno
        reason = "file too large: the file-size limit (ulimit -f) was reached"
    elif exc.errno == errno.ENOSPC or "[errno 28]" in text:
        reason = "no space left on device"
    else:
        reason = exc.strerror or (text.strip().splitlines() or [type(exc).__name__])[0]
    shown = re.sub(rf"{re.escape(os.sep)}{re.escape(STAGING_PREFIX)}[^{re.escape(os.sep)}]+", "", path)
    return OutputError(f"{shown}: cannot write: {reason}")


def ignore_file_size_signal() -> None:
    """A write past RLIMIT_FSIZE sends SIGXFSZ, which kills the process by default; ignored,
    the write fails with EFBIG instead and the run ends with an error naming the file.
    Only for processes batchaot owns (the CLI, Ray workers): never called by the library."""
    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except (ValueError, OSError):     # not the main thread: leave it as it is
            pass


class OutputRun:
    """One run's hold on an output folder, from before any work starts to its summary.

    ``open()`` creates the folder, refuses it if another batchaot run holds it (an fcntl
    lock on ``.batchaot.lock``, released by the kernel if that run dies) or if it holds
    entries batchaot would have to overwrite but did not write, and makes the staging
    folder ``.batchaot-run-<id>/`` (with `folders`: ``violations/``, or a quarantine's
    ``valid/`` and ``invalid/``) where this run writes everything: ``self.staging`` is the
    folder to hand to workers.
    ``commit(summary)`` puts the staged results in place of the previous ones, summary
    last; ``fail(message)`` drops them and leaves a summary saying the run failed.
    """

    def __init__(self, path: str, folders: tuple[str, ...] = (VIOLATIONS,), **fields):
        self.path = os.fspath(path)
        self.folders = folders
        self.fields = fields            # said again by a failure summary (e.g. the job's name)
        self.staging = os.path.join(self.path, f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        self._lock: int | None = None
        self.done = False

    # -- start -------------------------------------------------------------------------

    def open(self) -> "OutputRun":
        try:
            os.makedirs(self.path, exist_ok=True)
            self._take_lock()
        except OSError as exc:
            raise OutputError(f"{self.path}: output folder is not writable: {exc.strerror or exc}") from None
        try:
            self._check_entries()
            self._remove_leftovers()
            for folder in self.folders:
                os.makedirs(os.path.join(self.staging, folder))
        except BaseException as exc:
            self.done = True            # refused before it started: the folder stays as it is
            self.close()
            if isinstance(exc, OSError):
                raise OutputError(f"{self.path}: output folder is not writable: {exc.strerror or exc}") from None
            raise
        return self

    def _take_lock(self) -> None:
        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(f"output {self.path} is in use by another batchaot run (pid {holder})") from None
        except OSError as exc:
            # a file system without locks (some network mounts): run unlocked rather than never
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd

    def _check_entries(self) -> None:
        """Entries of the folder that the swap would replace must be batchaot's own kind, so
        a mistaken --output never deletes a user's files; violations/ (valid/, invalid/)
        must be writable, since its old parts are removed at the end (checked now, before
        any work)."""
        for name in RESULT_ENTRIES:
            entry = os.path.join(self.path, name)
            if name not in PART_FOLDERS and os.path.lexists(entry) and not stat.S_ISREG(os.lstat(entry).st_mode):
                raise OutputError(f"{entry}: is not a file that batchaot wrote; remove it or choose "
                                  "another output folder")
        for name in PART_FOLDERS:
            self._check_parts(os.path.join(self.path, name), name)

    def _check_parts(self, folder: str, name: str) -> None:
        if not os.path.lexists(folder):
            return
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise OutputError(f"{folder}: is not a folder; remove it or choose another output folder")
        for entry_name in sorted(os.listdir(folder)):
            entry = os.path.join(folder, entry_name)
            if not entry_name.startswith("part-") or not stat.S_ISREG(os.lstat(entry).st_mode):
                kind = "a folder" if os.path.isdir(entry) else "a file"
                raise OutputError(f"{entry}: {kind} that batchaot did not write, in the {name} "
                                  "folder that each run replaces; remove it or choose another output folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{folder}: is not writable (a run replaces the parts in it)")

    def _remove_leftovers(self) -> None:
        """Staging and trash folders of earlier runs that died before they finished (this
        run holds the lock, so no live run owns them)."""
        for name in os.listdir(self.path):
            if name.startswith((STAGING_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(os.path.join(self.path, name), ignore_errors=True)

    # -- end ---------------------------------------------------------------------------

    def commit(self, summary: dict, entries: tuple[str, ...] | None = None) -> str:
        """Replace the previous results with this run's staged `entries` (default: its
        folders), then write summary.json. The old summary goes first: a folder caught half-way has no summary,
        never one that describes other parts. Returns the summary's path."""
        trash = self._trash()
        entries = self.folders if entries is None else entries
        try:
            _write_json(os.path.join(self.staging, SUMMARY), summary)
            self._unpublish(trash)
            for name in entries:
                os.replace(os.path.join(self.staging, name), os.path.join(self.path, name))
            os.replace(os.path.join(self.staging, SUMMARY), os.path.join(self.path, SUMMARY))
        except OSError as exc:
            raise write_error(self.path, exc) from None
        finally:
            self._sweep(trash)
        self.done = True
        return os.path.join(self.path, SUMMARY)

    def fail(self, message: str, **fields) -> None:
        """The run failed: drop its staged parts and the previous results, and leave a
        summary that says so (best effort: the failure may be that nothing can be written)."""
        trash = self._trash()
        try:
            self._unpublish(trash)
            _write_json(os.path.join(self.path, SUMMARY),
                        {"ok": False, "failed": True, "error": message, **self.fields, **fields,
                         "output": self.path})
        except (OSError, OutputError):
            pass
        finally:
            self._sweep(trash)
            self.done = True

    def close(self) -> None:
        """Release the folder; a run that neither committed nor failed is failed here."""
        if self._lock is None:
            return
        try:
            if not self.done:
                self.fail("the run stopped before it finished")
            shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> "OutputRun":
        return self.open()

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None and not self.done:
            self.fail(failure_message(exc))
        self.close()

    def _trash(self) -> str:
        return os.path.join(self.path, TRASH_PREFIX + os.path.basename(self.staging)[len(STAGING_PREFIX):])

    def _unpublish(self, trash: str) -> None:
        """Move the previous results out of sight: summary first, then the rest."""
        os.makedirs(trash, exist_ok=True)
        for name in RESULT_ENTRIES:
            source = os.path.join(self.path, name)
            if os.path.lexists(source):
                os.replace(source, os.path.join(trash, name))

    def _sweep(self, trash: str) -> None:
        """Drop the previous results and whatever is left of the staging folder (a worker
        that is still writing into it then fails: its folder is gone)."""
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)


class Outputs:
    """A run's output folder and its quarantine folder, each held as an OutputRun (one
    hold, with violations/, valid/ and invalid/, when they are the same folder); either
    may be None. ``with Outputs(out, quarantine) as held:`` then ``held.commit(summary)``."""

    def __init__(self, output: str | None, quarantine: str | None, **fields):
        same = output is not None and quarantine is not None and \
            os.path.abspath(output) == os.path.abspath(quarantine)
        folders = (VIOLATIONS, VALID, INVALID) if same else (VIOLATIONS,)
        self.output = None if output is None else OutputRun(output, folders, **fields)
        self.quarantine = self.output if same else \
            None if quarantine is None else OutputRun(quarantine, (VALID, INVALID), **fields)
        self._held = [r for r in (self.output, self.quarantine) if r is not None]
        if same:
            self._held = self._held[:1]

    @property
    def staging(self) -> str | None:
        return None if self.output is None else self.output.staging

    @property
    def quarantine_staging(self) -> str | None:
        return None if self.quarantine is None else self.quarantine.staging

    def commit(self, summary: dict, extra: tuple[str, ...] = ()) -> None:
        """The quarantine first, then the output folder (whose summary a reader waits for),
        with the `extra` entries staged beside its folders (report.html)."""
        for run in reversed(self._held):
            run.commit(summary, run.folders + extra if run is self.output else None)

    def __enter__(self) -> "Outputs":
        opened: list[OutputRun] = []
        try:
            for run in self._held:
                opened.append(run.open())
        except BaseException:
            for run in opened:
                run.done = True         # refused before it started: leave it as it was
                run.close()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        for run in reversed(self._held):
            run.__exit__(kind, exc, tb)


def failure_message(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- atomic writes: THE temp-then-rename helper of every result file ----------------------
#
# A result file (summary.json, a violations part) is written under temporary(path), in
# the same folder, and renamed into place when it is complete, so a reader (or a retried
# Ray call writing the same part) never sees half a file. (compiler/cache.py and the
# kernel cache in engine/fused/loader.py write their caches the same way with helpers of their
# own: the compiler and the engine import nothing from io's output side.)

TEMPORARY = ".tmp-"


def temporary(path: str) -> str:
    """Where `path` is written before it is renamed into place (one per process)."""
    return f"{path}{TEMPORARY}{os.getpid()}"


def publish(tmp: str, path: str) -> None:
    """Rename a complete temporary file into place (an OSError names `path`)."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise write_error(path, exc) from None


def discard(tmp: str) -> None:
    """Remove a temporary file that will not be published (best effort)."""
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    except OSError:
        pass


@contextmanager
def atomic(path: str) -> Iterator[str]:
    """``with atomic(path) as tmp: write(tmp)``: `path` appears whole or not at all; an
    OSError while writing becomes an OutputError naming `path`."""
    tmp = temporary(path)
    try:
        yield tmp
    except OSError as exc:
        discard(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        discard(tmp)
        raise
    publish(tmp, path)


def _write_json(path: str, doc: dict) -> None:
    with atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def write_summary(path: str, summary: dict) -> str:
    target = os.path.join(path, SUMMARY)
    _write_json(target, summary)
    return target
