"""Dataset checks across work units: collect partials, reduce buckets, finish.

Each unit's result carries one partial per check (a small *head* for a bucketed check
such as ``unique``), and a bucketed check's bucket piece lists come beside it: plain
lists in this process, Ray object references on a cluster, so the driver only ever
holds references to them (Ray returns objects under its inline limit, 100 KiB, to the
driver directly, so a small bucket does travel). After the last unit, every (check,
bucket) is finished on its own by one worker, round robin, and the check's outcome is
built from the merged head and the buckets' results — their counts and a sample of
keys, never every key.
"""
from __future__ import annotations

from typing import Callable

from ..checks import CheckOutcome, DatasetCheck
from ..engine.unit import UnitResult, buckets_of, check_part_name, write_check_rows

# (check index, bucket, one item per unit: a piece list or a reference to one)
BucketJob = tuple[int, int, list]
Reducer = Callable[[list[BucketJob]], dict]


class CheckGather:
    def __init__(self, checks: list[DatasetCheck], output: str | None):
        self.checks = checks
        self.output = output
        self.heads: list[list] = [[] for _ in checks]
        self.buckets: list[list[list]] = [[[] for _ in range(buckets_of(c))] for c in checks]

    def add(self, result: UnitResult, bucket_items: list) -> None:
        """One unit's partials and bucket items (as UnitRunner.run_split lays them out)."""
        if result.error or result.partials is None:
            return                        # a failed unit contributes nothing (the job fails)
        items = iter(bucket_items)
        for i, check in enumerate(self.checks):
            self.heads[i].append(result.partials[i])
            for bucket in self.buckets[i]:
                bucket.append(next(items))

    def add_side(self, check_index: int, head, bucket_items: list) -> None:
        """One side-input unit of a partitioned check (see ReferenceCheck.map_side)."""
        self.heads[check_index].append(head)
        for bucket, item in zip(self.buckets[check_index], bucket_items, strict=True):
            bucket.append(item)

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
        n = buckets_of(check)
        if n:
            return check.outcome(merged, [results[(i, b)] for b in range(n)])
        outcome = check.finish(merged)
        if self.output is not None:
            write_check_rows(self.output, check_part_name(i), outcome.violating)
            outcome.violating = None
        return outcome
