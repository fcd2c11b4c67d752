"""The run's "now": one instant, fixed when a run starts (or by ``--now`` / ``now:``).

``current_date``, ``now()`` and freshness checks all read it, so every rule of a run sees
the same instant and a run with a fixed ``--now`` is reproducible. The compiler turns it
into literal constants (they travel in a program's constant table, never in kernel
source), so a rule that uses it is constant-folded like any other.

"now" is an instant in UTC; a naive timestamp (without a time zone) is read as UTC.
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from ..errors import SpecError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_NOW: ContextVar[dt.datetime | None] = ContextVar("batchaot_now", default=None)
_WATCH: ContextVar[list | None] = ContextVar("batchaot_clock_watch", default=None)


def wall() -> dt.datetime:
    """The wall clock, in UTC, to the microsecond."""
    return dt.datetime.now(dt.timezone.utc)


def now() -> dt.datetime:
    """The fixed "now" of the run being compiled, else the wall clock."""
    seen = _WATCH.get()
    if seen is not None:
        seen.append(True)
    return _NOW.get() or wall()


@contextmanager
def watched() -> Iterator[list]:
    """Within the block, each now() call is noted in the list yielded: what was compiled
    there read the clock (and holds this instant), so it is not kept in a cache. Blocks
    nest: an outer one sees the reads of the inner ones too."""
    outer, seen = _WATCH.get(), []
    token = _WATCH.set(seen)
    try:
        yield seen
    finally:
        _WATCH.reset(token)
        if seen and outer is not None:
            outer.extend(seen)


@contextmanager
def fixed(instant: dt.datetime | None) -> Iterator[dt.datetime]:
    """Within the block, `now()` is `instant` (the wall clock read once when None)."""
    chosen = as_utc(instant) if instant is not None else wall()
    token = _NOW.set(chosen)
    try:
        yield chosen
    finally:
        _NOW.reset(token)


def as_utc(instant: dt.datetime | dt.date) -> dt.datetime:
    """An aware UTC datetime; a naive one (or a date, at midnight) is read as UTC."""
    if not isinstance(instant, dt.datetime):
        instant = dt.datetime(instant.year, instant.month, instant.day)
    if instant.tzinfo is None:
        return instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(dt.timezone.utc)


def parse(text: str | dt.datetime | dt.date, where: str = "--now") -> dt.datetime:
    """A user's "now": ISO 8601 text (`2024-06-01T12:00:00Z`, `2024-06-01 12:00+02:00`,
    `2024-06-01`), or a datetime/date (YAML reads unquoted timestamps as such)."""
    if isinstance(text, (dt.datetime, dt.date)):
        return as_utc(text)
    if not isinstance(text, str):
        raise SpecError(f"{where}: expected a timestamp such as 2024-06-01T12:00:00Z, got {text!r}")
    try:
        return as_utc(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        raise SpecError(f"{where}: cannot read {text!r} as a timestamp; write it as ISO 8601, "
                        "e.g. 2024-06-01T12:00:00Z or 2024-06-01") from None


def micros(instant: dt.datetime) -> int:
    """Microseconds since 1970-01-01 UTC (exact: no float)."""
    delta = as_utc(instant) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def days(instant: dt.datetime) -> int:
    """Days since 1970-01-01 of the instant's UTC date."""
    return (as_utc(instant).date() - _EPOCH.date()).days


def iso(instant: dt.datetime) -> str:
    return as_utc(instant).isoformat().replace("+00:00", "Z")
