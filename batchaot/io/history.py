"""The metrics history: an SQLite file that every run given `--history PATH` appends to.

SQLite (the standard library's ``sqlite3``) rather than DuckDB: no new dependency, and
its locking lets several runs append to one file at once — a writer waits for the other
(`busy_timeout`) instead of failing, as a second DuckDB process opening the same file
for writing would. Journal in WAL mode (readers never block the writer); every append is
one ``BEGIN IMMEDIATE`` transaction (the run and all its metrics, or nothing).

Schema (version :data:`SCHEMA_VERSION`, kept in ``schema_version``)::

    runs(id, job, series, rules_hash, sources, started, finished, rows, verdict, now, version)
    metrics(run_id → runs.id, rule, metric, value)       -- rule '' for the run's own metrics

``series`` names the runs a change/anomaly check compares with (the same job on the same
source). Times are ISO-8601 UTC text, so they sort as text. A file of another
application, or of a newer schema, is refused with one line saying what it is.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import HistoryError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x62616F74        # "baot": PRAGMA application_id marks the file as ours
BUSY_TIMEOUT_S = 60.0              # how long a run waits for another run's append to finish
RUN_LEVEL = ""                     # the `rule` of a run's own metrics (row_count, duration_s)

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL, written_by TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,             -- the job's name (validate: the rules file's name)
    series TEXT NOT NULL,          -- the runs change/anomaly checks compare with
    rules_hash TEXT NOT NULL,      -- sha256 of the rules as compiled
    sources TEXT NOT NULL,         -- JSON list of the inputs as given
    started TEXT NOT NULL,         -- ISO-8601 UTC
    finished TEXT NOT NULL,
    rows INTEGER NOT NULL,
    verdict TEXT NOT NULL,         -- pass | warn (only warn rules failed) | fail
    now TEXT,                      -- the run's fixed "now", when it had one
    version TEXT NOT NULL          -- batchaot version
);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    rule TEXT NOT NULL,            -- '' for the run's own metrics
    metric TEXT NOT NULL,          -- violations, null_rows, passed, value, row_count, avg(amount), ...
    value REAL,                    -- NULL: not defined (an aggregate over no rows)
    PRIMARY KEY (run_id, rule, metric)
);
CREATE INDEX metrics_by_name ON metrics (metric, rule);
CREATE INDEX runs_by_series ON runs (series, started);
"""


@dataclass(frozen=True)
class RunRecord:
    job: str
    series: str
    rules_hash: str
    sources: Sequence[str]
    started: str
    finished: str
    rows: int
    verdict: str
    now: str | None
    version: str


@dataclass(frozen=True)
class Point:
    """One past value of a metric: the run it comes from and when that run was."""

    run: int
    at: str
    value: float


def utc_text(when: dt.datetime | dt.date | str | None = None) -> str:
    """A time as sortable ISO-8601 UTC text (naive times are taken as UTC; a date is its
    midnight); None: the current time."""
    if when is None:
        when = dt.datetime.now(dt.timezone.utc)
    elif not isinstance(when, (dt.datetime, dt.date)):
        when = str(when)                  # numpy datetime64 and the like print as ISO-8601
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError:
            raise HistoryError(f"a run's now must be an ISO-8601 date or time (e.g. 2024-05-01T06:00:00), "
                               f"got '{when}'") from None
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


class History:
    """An open history file. `create`: make the file (and its folder) when missing."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True, version: str = "unknown"):
        self.path = os.fspath(path)
        self.version = version             # the batchaot writing: recorded in a new file
        if not os.path.exists(self.path):
            if not create:
                raise HistoryError(f"{self.path}: no history file there (runs given --history "
                                   "PATH create it)")
            folder = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{self.path}: cannot create its folder {folder}: {exc.strerror or exc}") from None
        elif os.path.isdir(self.path):
            raise HistoryError(f"{self.path}: is a folder; --history takes a database file path")
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot open the history database: {exc}") from None
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise HistoryError(f"{self.path}: {_explain(exc)}") from None
        except HistoryError:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- opening --------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Check (or, in an empty file, create) the schema, inside one write transaction
        so that two runs creating the same new file do not both create it."""
        app = self.db.execute("PRAGMA application_id").fetchone()[0]
        # in WAL mode NORMAL cannot corrupt the file; a power cut may lose the last appends
        self.db.execute("PRAGMA synchronous=NORMAL")
        if app not in (0, APPLICATION_ID):
            raise HistoryError(f"{self.path}: an SQLite database of another application "
                               f"(application_id {app:#x}), not a batchaot history; give another path")
        found = self._version()
        if found is not None:
            self._check(found)
            return
        self._use_wal()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            if version is None:
                self._create()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if version is not None:
            self._check(version)

    def _use_wal(self) -> None:
        """Switch the file to WAL (persistent: once, in the file). While another run creating
        the same new file holds its write lock, SQLite answers this "database is locked" at
        once, without the busy handler (its deadlock avoidance: we hold a read lock and want
        an exclusive one), so it is retried until BUSY_TIMEOUT_S like any other wait."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _version(self) -> int | None:
        """The file's schema version; None for an empty file; refuses a foreign one."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        if "schema_version" not in tables:
            raise HistoryError(f"{self.path}: an SQLite database without a schema_version table "
                               f"(tables: {', '.join(sorted(tables)[:5])}): not a batchaot history; "
                               "give another path")
        row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        if row is None or not isinstance(row[0], int):
            raise HistoryError(f"{self.path}: its schema_version table holds no version: "
                               "not a batchaot history (or a damaged one)")
        return row[0]

    def _check(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            writer = self.db.execute("SELECT written_by FROM schema_version ORDER BY version DESC").fetchone()
            raise HistoryError(f"{self.path}: a history of schema version {version} (written by batchaot "
                               f"{writer[0] if writer else '?'}); this batchaot reads up to version "
                               f"{SCHEMA_VERSION}: upgrade batchaot or give another path")
        if version < 1:
            raise HistoryError(f"{self.path}: schema version {version} is not one batchaot ever wrote")
        # versions 1..SCHEMA_VERSION: read as they are (a later schema migrates here)

    def _create(self) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)
        self.db.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION, self.version))
        self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    # -- writing -------------------------------------------------------------------------
    def append(self, run: RunRecord, metrics: Iterable[tuple[str, str, float | int | None]]) -> int:
        """Add a run and its (rule, metric, value) rows in one transaction; its id."""
        rows = [(rule, metric, _real(value)) for rule, metric, value in metrics]
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(
                    "INSERT INTO runs (job, series, rules_hash, sources, started, finished, rows, "
                    "verdict, now, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.job, run.series, run.rules_hash, json.dumps(list(run.sources)), run.started,
                     run.finished, run.rows, run.verdict, run.now, run.version))
                run_id = cur.lastrowid
                self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
                                    [(run_id, *r) for r in rows])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot record the run: {_explain(exc)}") from None
        return run_id

    # -- reading -------------------------------------------------------------------------
    def series(self, series: str, rule: str, metric: str, before: str, limit: int) -> list[Point]:
        """The `limit` latest finite values of (rule, metric) in runs of `series` that ran
        before `before` (their `now` if they had one, else their start), newest first."""
        rows = self.db.execute(
            "SELECT r.id, coalesce(r.now, r.started) AS at, m.value FROM runs r "
            "JOIN metrics m ON m.run_id = r.id "
            "WHERE r.series = ? AND m.rule = ? AND m.metric = ? AND m.value IS NOT NULL AND at < ? "
            "ORDER BY at DESC, r.id DESC", (series, rule, metric, before))
        found: list[Point] = []
        for run_id, at, value in rows:
            if math.isfinite(value):
                found.append(Point(run_id, at, value))
                if len(found) == limit:
                    break
        return found

    def runs(self, job: str | None = None, limit: int = 10) -> list[dict]:
        """The latest `limit` runs (of `job`), newest first, with their failing rules."""
        where, args = ("WHERE job = ?", (job,)) if job is not None else ("", ())
        cur = self.db.execute(f"SELECT * FROM runs {where} ORDER BY coalesce(now, started) DESC, id DESC "
                              "LIMIT ?", (*args, limit))
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, row)) for row in cur.fetchall()]
        for run in found:
            run["sources"] = json.loads(run["sources"])
            run["failing"] = [r[0] for r in self.db.execute(
                "SELECT rule FROM metrics WHERE run_id = ? AND metric = 'passed' AND value = 0 "
                "ORDER BY rule", (run["id"],))]
            duration = self.db.execute("SELECT value FROM metrics WHERE run_id = ? AND rule = '' AND "
                                       "metric = 'duration_s'", (run["id"],)).fetchone()
            run["duration_s"] = duration[0] if duration else None
        return found

    def trend(self, rule: str, metric: str, job: str | None = None, limit: int = 30) -> list[dict]:
        """The latest `limit` values of (rule, metric), oldest first: run, at, value."""
        where, args = ("AND r.job = ?", (job,)) if job is not None else ("", ())
        rows = self.db.execute(
            "SELECT r.id, coalesce(r.now, r.started) AS at, m.value FROM runs r JOIN metrics m "
            f"ON m.run_id = r.id WHERE m.rule = ? AND m.metric = ? {where} "
            "ORDER BY at DESC, r.id DESC LIMIT ?", (rule, metric, *args, limit)).fetchall()
        return [{"run": r, "at": at, "value": v} for r, at, v in reversed(rows)]

    def trail(self, run_id: int, metric: str, limit: int = 30) -> dict[str, list[float | None]]:
        """Per rule, `metric` in the `limit` latest runs of `run_id`'s series up to and with
        it, oldest first (None where a run lacks the value): a report's sparklines, which
        stay the same when the report is rebuilt after later runs."""
        row = self.db.execute("SELECT series, coalesce(now, started) FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return {}
        series, at = row
        runs = [r[0] for r in self.db.execute(
            "SELECT id FROM runs WHERE series = ? AND (coalesce(now, started) < ? OR "
            "(coalesce(now, started) = ? AND id <= ?)) ORDER BY coalesce(now, started) DESC, id DESC LIMIT ?",
            (series, at, at, run_id, limit))][::-1]
        position = {r: i for i, r in enumerate(runs)}
        found: dict[str, list[float | None]] = {}
        for r, rule, value in self.db.execute(
                f"SELECT run_id, rule, value FROM metrics WHERE metric = ? AND run_id IN "
                f"({', '.join('?' * len(runs))})", (metric, *runs)):
            found.setdefault(rule, [None] * len(runs))[position[r]] = value
        return found

    def rules(self, job: str | None = None, limit: int = 30) -> list[str]:
        """Names of the rules recorded in the latest `limit` runs (of `job`)."""
        where, args = ("WHERE job = ?", (job,)) if job is not None else ("", ())
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT rule FROM metrics WHERE rule != '' AND metric = 'violations' AND run_id IN "
            f"(SELECT id FROM runs {where} ORDER BY coalesce(now, started) DESC, id DESC LIMIT ?) "
            "ORDER BY rule", (*args, limit))]


def _real(value: float | int | bool | None) -> float | None:
    """A metric as SQLite REAL (NaN is stored as NULL by SQLite anyway)."""
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text or "file is encrypted" in text:
        return "not an SQLite database: not a batchaot history; give another path"
    if "locked" in text or "busy" in text:
        return (f"{text} (another run held the file for more than {BUSY_TIMEOUT_S:.0f} s; "
                "is it on a network file system? SQLite's locking needs a local one)")
    return text
