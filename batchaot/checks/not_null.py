"""`not_null: col` with optional `mostly` — the NULL rows of a column violate.

Passes when the fraction of non-NULL rows is at least `mostly` (default 1.0: no NULL at
all). NaN is a value, not NULL, as in SQL.

map counts a batch's NULLs from its Arrow metadata (null_count) and, only when there
are some, keeps their row numbers; the violating table (whose column values are all
NULL) is built when the outcome's ``violating`` is first read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..engine import columns
from ..spec import RuleSpec
from .base import (CheckBase, CheckOutcome, LazyOutcome, null_column, out_name, passes, piece, plain_type,
                   resolve_column, row_numbers, spec_error, violating_columns, violating_table)


@dataclass
class NotNullPartial:
    rows: int
    nulls: int
    pieces: list[tuple[str, np.ndarray, pa.DataType]]   # the NULL rows: source, row numbers, column type


class NotNullCheck(CheckBase):
    row_output = True                     # the NULL rows

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
        at = np.flatnonzero(columns.valid_bytes(col) == 0)
        numbers = row_numbers(rows, first_row, sub.num_rows)[at]
        return NotNullPartial(sub.num_rows, len(at), [(source, numbers, plain_type(col.type))])

    def merge(self, partials: list[NotNullPartial]) -> NotNullPartial:
        return NotNullPartial(sum(p.rows for p in partials), sum(p.nulls for p in partials),
                              [x for p in partials for x in p.pieces])

    def finish(self, partial: NotNullPartial) -> CheckOutcome:
        rows, nulls = partial.rows, partial.nulls
        present = (rows - nulls) / rows if rows else 1.0
        mostly = 1.0 if self.spec.mostly is None else self.spec.mostly
        details = {"null_rows": nulls, "null_fraction": round(1.0 - present, 12),
                   "non_null_fraction": round(present, 12), "mostly": mostly}
        fields = dict(passed=passes(nulls, rows, self.spec.mostly), violations=nulls, rows=rows,
                      value=round(present, 12), details=details)
        if not nulls:
            return CheckOutcome(**fields)
        return LazyOutcome(_NullRows(self.name, self.column, partial.pieces).table, **fields)


class _NullRows:
    """The NULL rows of a not_null check as violating rows (built when first read)."""

    def __init__(self, rule: str, column: str, pieces: list[tuple[str, np.ndarray, pa.DataType]]):
        self.rule, self.column, self.pieces = rule, column, pieces

    def table(self) -> pa.Table | None:
        pieces = sorted(((s, rows) for s, rows, _ in self.pieces if len(rows)), key=lambda x: (x[0], int(x[1][0])))
        types = {t for _, rows, t in self.pieces if len(rows)}
        if not pieces or len(types) > 1 or not _apart(pieces):   # rows of one batch held twice, or mixed types
            return violating_table(self.rule, [piece(s, rows, {self.column: pa.nulls(len(rows), t)})
                                               for s, rows, t in self.pieces])
        sources: dict[str, int] = {}
        for s, rows in pieces:
            sources[s] = sources.get(s, 0) + len(rows)
        rows = np.concatenate([rows for _, rows in pieces]) if len(pieces) > 1 else pieces[0][1]
        return violating_columns(self.rule, sources, rows,
                                 {out_name(self.column): null_column(len(rows), types.pop())})


def _apart(pieces: list[tuple[str, np.ndarray]]) -> bool:
    """Pieces (ascending rows each, in (source, first row) order) that cover apart rows."""
    return all(s != t or a[-1] < b[0] for (s, a), (t, b) in zip(pieces, pieces[1:]))
