"""Morsels: Parquet row groups decoded and checked on several threads, handed out in order.

A run in this process cuts each unit into morsels (runs of whole row groups of about
``UnitRunner.morsel_rows`` rows) and keeps a window of them in flight on a thread pool, as
DuckDB schedules its scans: each thread decodes its morsel and runs the rules on it with
an Executor of its own (the decoder and the kernels release the GIL). The feed spans the
units of the run, so the next unit's first morsels are decoded while this unit's last ones
finish: no thread idles at a unit's end. Morsels come back in row order, unit by unit; the
runner adds them up and writes them as before.
"""
from __future__ import annotations

import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, Sequence

import pyarrow as pa

from ..engine.run import Executor, RuleOutcome
from ..io.sources import merged
from ..io.units import WorkUnit

if TYPE_CHECKING:
    from .unit import UnitRunner

BATCH_ROWS = 1 << 20

# (batch, its active rules' outcomes, its violating rows or None) per batch of a morsel
Checked = list[tuple[pa.RecordBatch, list[RuleOutcome], list[pa.Table] | None]]


class MorselFeed:
    """The morsels of `units` (in this order), checked ahead by `executors` threads."""

    def __init__(self, runner: "UnitRunner", units: Sequence[WorkUnit], executors: list[Executor],
                 by_rule: bool = True):
        self.runner = runner
        self.by_rule = by_rule          # as UnitRunner.pieces(): False runs every rule or none
        self.order = {u.id: k for k, u in enumerate(units)}
        self.proven: dict[str, list[int]] = {}      # row groups proven per rule, per unit
        self.free: queue.SimpleQueue = queue.SimpleQueue()   # one Executor per thread at a time
        for ex in executors:
            self.free.put(ex)
        self.limit = 2 * len(executors)            # morsels decoded ahead, at most
        self.pool = ThreadPoolExecutor(len(executors), thread_name_prefix="batchaot-morsel")
        self.window: deque = deque()               # (unit id, morsel, active rules, future)
        self.pending = self._morsels(units)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def take(self, unit: WorkUnit) -> Iterator[tuple[WorkUnit, list[bool], Checked | None]]:
        """The unit's morsels in row order: (morsel, active rules, checked batches), None
        for a morsel that statistics prove (its rows are not read). Morsels left over from
        an earlier unit (one that failed) are dropped."""
        at = self.order[unit.id]
        while True:
            self._fill()
            if not self.window:
                return
            uid, morsel, active, done = self.window[0]
            if self.order[uid] > at:
                return
            self.window.popleft()
            if self.order[uid] < at:
                if done is not None:
                    done.cancel()
                continue
            yield morsel, active, None if done is None else done.result()

    def proven_in(self, unit: WorkUnit) -> list[int]:
        return self.proven.pop(unit.id, [0] * len(self.runner.programs))

    def _fill(self) -> None:
        while len(self.window) < self.limit:
            item = next(self.pending, None)
            if item is None:
                return
            self.window.append(item)

    def _morsels(self, units: Sequence[WorkUnit]) -> Iterator[tuple[str, WorkUnit, list[bool], Future | None]]:
        runner = self.runner
        for unit in units:
            proven = self.proven[unit.id] = [0] * len(runner.programs)
            first_row = unit.first_row
            pieces = runner.pieces(unit, self.by_rule, max_rows=runner.morsel_rows, proven=proven)
            while True:
                try:
                    item = next(pieces, None)
                except Exception as exc:    # the unit's error, raised when the unit is taken
                    yield unit.id, unit, [True] * len(runner.programs), _failed(exc)
                    break
                if item is None:
                    break
                morsel, active = item
                done = None if runner.proves_all(active) else \
                    self.pool.submit(self._check, unit.path, morsel, active, first_row)
                yield unit.id, morsel, active, done
                first_row += morsel.rows

    def _check(self, source: str, morsel: WorkUnit, active: list[bool], first_row: int) -> Checked:
        runner = self.runner
        executor = self.free.get()
        try:
            out = []
            for batch in as_one(list(runner.read(morsel, threads=1))):
                outcomes = runner.check(executor, batch, active)
                # the violating rows are gathered here too, off the thread that writes them
                rows = runner.violating(batch, outcomes, active, source, first_row) \
                    if runner.output is not None and runner.layout is not None else None
                out.append((batch, outcomes, rows))
                first_row += batch.num_rows
            return out
        finally:
            self.free.put(executor)


# Merging a morsel's row groups unifies their string dictionaries, which hashes every
# dictionary value: it pays for a status column (10M rows, 64K-row groups: 0.70 -> 0.51 s)
# and costs for an email column with a large dictionary per row group (3M rows, dictionary
# pages on every column: 1.7-1.9 s unmerged, 2.65 s merged).
DICTIONARY_VALUES_PER_ROW = 1 / 64


def as_one(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """A morsel's batches as one where that is cheap (each batch costs a fixed overhead
    under the GIL), as they are where their dictionaries would be expensive to unify."""
    rows = sum(b.num_rows for b in batches)
    values = sum(len(c.dictionary) for b in batches for c in b.columns if pa.types.is_dictionary(c.type))
    if len(batches) <= 1 or values > rows * DICTIONARY_VALUES_PER_ROW:
        return batches
    return list(merged(batches, BATCH_ROWS))


def _failed(exc: BaseException) -> Future:
    done: Future = Future()
    done.set_exception(exc)
    return done
