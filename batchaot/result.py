"""Result of a validation: per-rule summary, violating rows, JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from .compiler.program import Program
from .engine.run import RuleOutcome
from .spec import RuleSpec

RESERVED = ("rule", "row")


@dataclass
class RuleResult:
    spec: RuleSpec
    program: Program
    outcome: RuleOutcome

    @property
    def failing_fraction(self) -> float:
        return self.outcome.violations / self.outcome.rows if self.outcome.rows else 0.0

    @property
    def passed(self) -> bool:
        if self.spec.mostly is not None:
            return 1.0 - self.failing_fraction >= self.spec.mostly
        return self.outcome.violations == 0

    def summary(self) -> dict:
        o = self.outcome
        return {
            "name": self.spec.name, "severity": self.spec.severity, "passed": self.passed,
            "violations": o.violations, "rows": o.rows, "null_rows": o.nulls,
            "failing_fraction": round(self.failing_fraction, 9), "kind": self.spec.kind,
            "check": self.spec.body, "strict": self.spec.strict, "mostly": self.spec.mostly,
            "zero_tick": o.zero_tick, "columns": self.program.column_names,
            "instructions": len(self.program.code),
        }


@dataclass
class Result:
    """What `batchaot.validate` returns.

    ``ok`` is False iff a rule of severity ``error`` failed. ``summary`` has one row per
    rule; ``violations`` has one row per failing (rule, row) with the rule's columns.
    """

    rules: list[RuleResult]
    rows: int
    data: pa.Table | None = field(default=None, repr=False)
    elapsed_s: float = 0.0
    engine: str = "vm"

    @property
    def ok(self) -> bool:
        return all(r.passed or r.spec.severity != "error" for r in self.rules)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "rules": [r.summary() for r in self.rules],
                "engine": self.engine, "elapsed_s": round(self.elapsed_s, 6)}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @cached_property
    def summary(self) -> pa.Table:
        rows = [r.summary() for r in self.rules]
        return pa.Table.from_pylist(rows) if rows else pa.table({})

    @cached_property
    def violations(self) -> pa.Table:
        """Violating rows, gathered from the data only now that they are asked for."""
        failing = [r for r in self.rules if r.outcome.violations]
        names: list[str] = []
        for r in failing:
            names += [c for c in r.program.column_names if c not in names]
        schema = pa.schema([("rule", pa.string()), ("row", pa.int64())]
                           + [(_out_name(c), self._type(c)) for c in names])
        if not failing:
            return schema.empty_table()
        parts = [self._rows_of(r, names, schema) for r in failing]
        return pa.concat_tables(parts)

    def _type(self, column: str) -> pa.DataType:
        t = self.data.schema.field(column).type
        return t.value_type if pa.types.is_dictionary(t) else t

    def _rows_of(self, r: RuleResult, names: list[str], schema: pa.Schema) -> pa.Table:
        ids = r.outcome.row_ids
        taken = self.data.select(r.program.column_names).take(pa.array(ids))
        arrays = [pa.array(np.full(len(ids), r.spec.name, dtype=object), pa.string()), pa.array(ids)]
        for c in names:
            if c in r.program.column_names:
                col = taken.column(c)
                arrays.append(col.cast(schema.field(_out_name(c)).type))
            else:
                arrays.append(pa.nulls(len(ids), schema.field(_out_name(c)).type))
        return pa.Table.from_arrays(arrays, schema=schema)


def _out_name(column: str) -> str:
    return f"value_{column}" if column in RESERVED else column
