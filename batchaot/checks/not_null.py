"""`not_null: col` with optional `mostly` — the NULL rows of a column violate.

Passes when the fraction of non-NULL rows is at least `mostly` (default 1.0: no NULL at
all). NaN is a value, not NULL, as in SQL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..spec import RuleSpec
from .base import CheckBase, CheckOutcome, Piece, passes, piece, resolve_column, row_numbers, spec_error, violating_table


@dataclass
class NotNullPartial:
    rows: int
    nulls: int
    pieces: list[Piece]          # the NULL rows: (source, table of row and the column)


class NotNullCheck(CheckBase):
    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        if not isinstance(spec.body, str):
            raise spec_error(spec, f"'not_null' takes one column name, e.g. not_null: amount; "
                             f"got {spec.body!r} (write one rule per column)")
        self.column = resolve_column(spec, spec.body, schema)
        self.out_columns = [self.column]

    def describe(self) -> str:
        mostly = f", mostly {self.spec.mostly}" if self.spec.mostly is not None else ""
        return f"not_null({self.column}{mostly})"

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> NotNullPartial:
        sub, rows = self.rows_of(batch, first_row)
        col = sub.column(0)
        if col.null_count == 0:
            return NotNullPartial(sub.num_rows, 0, [])
        at = np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))
        numbers = row_numbers(rows, first_row, sub.num_rows)[at]
        return NotNullPartial(sub.num_rows, len(at),
                              [piece(source, numbers, {self.column: col.take(pa.array(at))})])

    def merge(self, partials: list[NotNullPartial]) -> NotNullPartial:
        return NotNullPartial(sum(p.rows for p in partials), sum(p.nulls for p in partials),
                              [x for p in partials for x in p.pieces])

    def finish(self, partial: NotNullPartial) -> CheckOutcome:
        rows, nulls = partial.rows, partial.nulls
        present = (rows - nulls) / rows if rows else 1.0
        mostly = 1.0 if self.spec.mostly is None else self.spec.mostly
        details = {"null_rows": nulls, "null_fraction": round(1.0 - present, 12),
                   "non_null_fraction": round(present, 12), "mostly": mostly}
        return CheckOutcome(passed=passes(nulls, rows, self.spec.mostly), violations=nulls, rows=rows,
                            value=round(present, 12), details=details,
                            violating=violating_table(self.name, partial.pieces))
