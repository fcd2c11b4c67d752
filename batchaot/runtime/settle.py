"""Dataset checks across work units: plan side inputs, gather partials, settle buckets.

Everything here reads what a check *declares* (batchaot/checks/base.py: ``partials``,
``side_input``, ``row_output``), never what it happens to have.

Each unit's result carries one partial per check (a small *head* for a check whose
partials are bucketed, such as ``unique``), and a bucketed check's bucket piece lists
come beside it: plain lists in this process, Ray object references on a cluster, so the
driver only ever holds references to them (Ray returns objects under its inline limit,
100 KiB, to the driver directly, so a small bucket does travel). After the last unit,
every (check, bucket) is finished on its own (:func:`reduce_bucket`, by one worker,
round robin), and the check's outcome is built from the merged head and the buckets'
results — their counts and a sample of keys, never every key.
"""
from __future__ import annotations

from typing import Callable

import pyarrow as pa

from ..checks.base import CheckOutcome, DatasetCheck, Partials, SideInput
from ..io import violations
from .spill import SpillStore, buckets_for, pieces_of, row_bytes, rows_bound

# A side input up to this many rows is read once into a state every worker shares; a
# larger one (or one of unknown size) is hash-partitioned like the checked rows.
SHARED_SIDE_ROWS = 10_000_000
SIDE_BUCKETS = 16

# (check index, bucket, one item per unit: a piece list or a reference to one)
BucketJob = tuple[int, int, list]
Reducer = Callable[[list[BucketJob]], dict]


def bucket_count(check: DatasetCheck) -> int:
    """How many buckets a check's partials are split into (0: merged whole). A check with
    bucketed partials always splits; one whose side input was partitioned splits into
    the same buckets as its side."""
    if check.partials is Partials.BUCKETED:
        return check.buckets
    if check.side_input is SideInput.SHARED_OR_PARTITIONED:
        return check.buckets            # 0 until partition() was called
    return 0


def shares_state(check: DatasetCheck) -> bool:
    """Whether the driver builds a state once for every worker (a side input, unpartitioned)."""
    return check.side_input is not SideInput.NONE and bucket_count(check) == 0


def plan_side_inputs(checks: list[DatasetCheck], shared_rows: int | None = None, checked_rows: int = 0,
                     budget: int | None = None) -> list[tuple[int, object]]:
    """Partition the side inputs that are large (or of unknown size) where the check allows
    it; their units, as (check index, unit), to be mapped with UnitRunner.run_side. The
    other side inputs stay shared (shared_state, built once). With a memory `budget`, the
    buckets are as many as keep one bucket of both sides (`checked_rows` and the side's)
    within a share of it (spill.py)."""
    limit = SHARED_SIDE_ROWS if shared_rows is None else shared_rows
    sides = []
    for i, check in enumerate(checks):
        if check.side_input is not SideInput.SHARED_OR_PARTITIONED:
            continue
        planned = check.side_units()          # footers only: the rows, when they tell
        if planned is None:
            continue                          # not plannable in units: shared
        side_rows = rows_bound(planned)
        if any(u.rows < 0 for u in planned) or side_rows > limit:
            both = side_rows + checked_rows
            check.partition(SIDE_BUCKETS if budget is None else buckets_for(both, row_bytes(check), budget, SIDE_BUCKETS))
            sides += [(i, unit) for unit in planned]
    return sides


def shared_states(checks: list[DatasetCheck]) -> list:
    """Per check, the state the driver builds once for every worker (None: none)."""
    return [check.shared_state() if shares_state(check) else None for check in checks]


def part_of(check: DatasetCheck, check_index: int, bucket: int | None, output: str | None,
            table: pa.Table | None, layout: pa.Schema | None) -> int:
    """A check's violating rows as its part file (one per bucket if bucketed)."""
    if not check.row_output:
        return 0
    return violations.write_part(output, violations.check_part_id(check_index, bucket), table, layout)


def reduce_bucket(check: DatasetCheck, check_index: int, bucket: int, piece_lists: list[list],
                  output: str | None, layout: pa.Schema | None = None):
    """Finish one bucket of a bucketed check from every unit's pieces of it; with an
    output folder, its violating rows go to a part file and only the counts and a sample
    of the keys come back."""
    result = check.finish_bucket([p for item in piece_lists for p in pieces_of(item)])
    if output is not None:
        if result.violating is not None:
            part_of(check, check_index, bucket, output, check.labelled(result.violating), layout)
        result.trim()              # counts and a sample travel back, not every key found
    return result


class CheckGather:
    """The driver's side of the checks over a run: heads and bucket items per unit, then
    :meth:`finish`. With a `store`, the bucket items are kept under its memory budget
    (pieces in this process spill to disk past it; Ray's references are never counted)."""

    def __init__(self, checks: list[DatasetCheck], output: str | None, layout: pa.Schema | None = None,
                 store: SpillStore | None = None):
        self.checks = checks
        self.output = output
        self.layout = layout
        self.store = store
        self.heads: list[list] = [[] for _ in checks]
        self.buckets: list[list[list]] = [[[] for _ in range(bucket_count(c))] for c in checks]

    def add(self, result, bucket_items: list) -> None:
        """One unit's partials and bucket items (as UnitRunner.run_split lays them out)."""
        if result.error or result.partials is None:
            return                        # a failed unit contributes nothing (the job fails)
        items = iter(bucket_items)
        for i, check in enumerate(self.checks):
            self.heads[i].append(result.partials[i])
            for b in range(len(self.buckets[i])):
                self._hold(i, b, next(items))

    def add_side(self, check_index: int, head, bucket_items: list) -> None:
        """One side-input unit of a partitioned check (see ReferenceCheck.map_side)."""
        self.heads[check_index].append(head)
        if len(bucket_items) != len(self.buckets[check_index]):
            raise ValueError(f"{len(bucket_items)} bucket items for {len(self.buckets[check_index])} buckets")
        for b, item in enumerate(bucket_items):
            self._hold(check_index, b, item)

    def _hold(self, check: int, bucket: int, item) -> None:
        if self.store is None:
            self.buckets[check][bucket].append(item)
        else:
            self.store.add(self.buckets, check, bucket, item)

    def jobs(self) -> list[BucketJob]:
        return [(i, b, items) for i, per_check in enumerate(self.buckets)
                for b, items in enumerate(per_check)]

    def finish(self, reduce: Reducer, note: Callable[[str], None] = lambda text: None) -> list[CheckOutcome]:
        """Reduce every bucket with `reduce`, then finish each check; violating rows go to
        the output's part files (the outcomes keep only the counts and details)."""
        jobs = self.jobs()
        if jobs:
            bucketed = sum(1 for b in self.buckets if b)
            note(f"settling {len(jobs)} buckets of {bucketed} dataset check(s)")
        results = reduce(jobs) if jobs else {}
        self.buckets = [[] for _ in self.checks]          # drop the references: free the store
        return [self._finish(i, check, results) for i, check in enumerate(self.checks)]

    def _finish(self, i: int, check: DatasetCheck, results: dict) -> CheckOutcome:
        merged = check.merge(self.heads[i])
        n = bucket_count(check)
        if n:
            return check.outcome(merged, [results[(i, b)] for b in range(n)])
        outcome = check.finish(merged)
        if self.output is not None and check.row_output:
            part_of(check, i, None, self.output, outcome.violating, self.layout)
            outcome.violating = None
        return outcome
