"""`row_count: {between: [lo, hi]}` (or `{equals: n}`): how many rows the dataset has.

The bounds may also sit next to `row_count` in the rule, like an aggregate's; `where:`
counts only the rows where it is TRUE.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..spec import RuleSpec
from .base import Bounds, CheckBase, CheckOutcome, no_mostly, spec_error

EXAMPLE = "row_count: {between: [1000, null]}"


@dataclass
class RowCountPartial:
    rows: int


class RowCountCheck(CheckBase):
    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        no_mostly(spec)
        self.bounds = Bounds.parse(spec, _bounds_options(spec), EXAMPLE)

    def describe(self) -> str:
        return f"row_count {self.bounds.describe()}"

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> RowCountPartial:
        picked = self.filter.select(batch)
        return RowCountPartial(batch.num_rows if picked is None else len(picked))

    def merge(self, partials: list[RowCountPartial]) -> RowCountPartial:
        return RowCountPartial(sum(p.rows for p in partials))

    def finish(self, partial: RowCountPartial) -> CheckOutcome:
        passed = self.bounds.holds(partial.rows)
        details = {"row_count": partial.rows, "expected": self.bounds.describe()}
        if not passed:
            details["note"] = "a dataset-level fact: no single row violates it, so no violating rows are listed"
        return CheckOutcome(passed=passed, violations=0, rows=partial.rows, value=partial.rows,
                            details=details)


def _bounds_options(spec: RuleSpec) -> dict:
    body = spec.body
    inline = {k: v for k, v in spec.options.items() if k in ("between", "equals")}
    if body is None or body is True:
        return inline
    if not isinstance(body, dict):
        raise spec_error(spec, f"'row_count' takes {{between: [lo, hi]}} or {{equals: n}}, e.g. {EXAMPLE}; got {body!r}")
    unknown = [k for k in body if k not in ("between", "equals")]
    if unknown:
        raise spec_error(spec, f"unknown row_count field '{unknown[0]}'; use between or equals")
    if inline:
        raise spec_error(spec, "give the bounds inside row_count: {...} or next to it, not both")
    return dict(body)
