"""Profiling as dataset checks: one ColumnProfiler per column, run by the runtime.

A profiler is a dataset-level check (checks/base.py's interface: map → merge → finish,
partials merged where they meet), so `batchaot profile`, a `kind: profile` job in this
process and Ray workers run it with the very runner, placers and gathering that run
validation (batchaot/runtime); only what finish returns differs: a ColumnProfile.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ..checks.base import CheckBase, CheckOutcome
from ..spec import RuleSpec
from .state import ColumnProfile, ColumnState, finish_state, map_column, merge_states

KIND = "profile"


@dataclass
class ProfileOutcome(CheckOutcome):
    """A profiler's outcome: nothing to pass or fail, a column's profile."""

    column: ColumnProfile | None = field(default=None)


class ColumnProfiler(CheckBase):
    """Profiles one column. `order` ranks the sources (file paths in the order given), so
    monotonicity reads the files one after the other, as their concatenation would."""

    def __init__(self, column: str, schema: pa.Schema, order: dict[str, int] | None = None):
        super().__init__(RuleSpec(name=f"{KIND} {column}", kind=KIND, body=column), schema)
        self.column = column
        self.type = schema.field(column).type
        self.order = dict(order or {})
        self.out_columns = [column]

    def describe(self) -> str:
        return f"{KIND}({self.column})"

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> ColumnState:
        rank = self.order.get(source, len(self.order))
        return map_column(batch.column(batch.schema.get_field_index(self.column)), (rank, source, first_row))

    def merge(self, partials: list[ColumnState]) -> ColumnState:
        return merge_states(partials)

    def finish(self, partial: ColumnState) -> ProfileOutcome:
        profile = finish_state(self.column, self.type, partial)
        return ProfileOutcome(passed=True, violations=0, rows=partial.rows, column=profile)


def profilers(schema: pa.Schema, sources: list[str] | None = None) -> list[ColumnProfiler]:
    """A profiler per column of `schema` (a name the schema holds twice is profiled once:
    which copy a rule would mean is ambiguous anyway)."""
    order = {s: i for i, s in enumerate(sources or [])}
    names = [n for n in dict.fromkeys(schema.names) if schema.names.count(n) == 1]
    return [ColumnProfiler(n, schema, order) for n in names]
