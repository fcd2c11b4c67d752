"""Result of a validation: per-rule summary, violating rows, JSON."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._version import __version__
from .checks.base import CheckOutcome, build_violating
from .compiler.program import Program
from .engine.run import RuleOutcome
from .errors import DataError
from .io import quarantine as quarantine_rows
from .io import sources as data_sources
from .io import violations
from .io.violations import TABLE_SOURCE
from .spec import RuleSpec


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
            "overflow_rows": o.overflows,
            "failing_fraction": round(self.failing_fraction, 9), "kind": self.spec.kind,
            "check": self.spec.body, "strict": self.spec.strict, "mostly": self.spec.mostly,
            "zero_tick": o.zero_tick, "columns": self.program.column_names,
            "instructions": len(self.program.code), "value": None, "details": None,
            "description": self.spec.description, "where": str(self.spec.where),
        }


@dataclass
class CheckResult:
    """A dataset-level check's result; its summary has the keys of a row rule's, plus
    ``value`` (the computed number) and ``details`` (duplicates, missing keys, ...)."""

    spec: RuleSpec
    check: object                   # the DatasetCheck that ran
    outcome: CheckOutcome

    @property
    def passed(self) -> bool:
        return self.outcome.passed

    @property
    def failing_fraction(self) -> float:
        return self.outcome.violations / self.outcome.rows if self.outcome.rows else 0.0

    def summary(self) -> dict:
        o = self.outcome
        return {
            "name": self.spec.name, "severity": self.spec.severity, "passed": o.passed,
            "violations": o.violations, "rows": o.rows,
            "null_rows": o.details.get("null_rows", o.details.get("null_key_rows", 0)),
            "failing_fraction": round(self.failing_fraction, 9), "kind": self.spec.kind,
            "check": self.check.describe(), "strict": self.spec.strict, "mostly": self.spec.mostly,
            "zero_tick": False, "columns": list(self.check.columns),
            "instructions": self.check.size[1], "value": _finite(o.value),
            "details": o.details if _finite(o.value) == o.value else {**o.details, "value": str(o.value)},
            "description": self.spec.description, "where": str(self.spec.where),
        }


@dataclass
class NotRunResult:
    """A rule the run did not evaluate: it stopped first (a failing schema check)."""

    spec: RuleSpec
    reason: str

    passed = None                   # neither passed nor failed

    def summary(self) -> dict:
        body = self.spec.body if self.spec.is_row_rule else f"{self.spec.kind}: {json.dumps(self.spec.body, default=str)}"
        return {
            "name": self.spec.name, "severity": self.spec.severity, "passed": None,
            "violations": 0, "rows": 0, "null_rows": 0, "failing_fraction": 0.0, "kind": self.spec.kind,
            "check": body, "strict": self.spec.strict, "mostly": self.spec.mostly, "zero_tick": False,
            "columns": [], "instructions": 0, "value": None, "details": None,
            "description": self.spec.description, "where": str(self.spec.where), "reason": self.reason,
        }


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value):
    """NaN/inf are not JSON: the summary's value is then null and details say which."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass
class Result:
    """What `batchaot.validate` returns.

    ``ok`` is False iff a rule of severity ``error`` failed. ``summary`` has one row per
    rule; ``violations`` has one row per failing (rule, row), in the one violations layout
    (io/violations.py: rule, source, row, the rules' columns) that ``--output`` writes too.
    """

    rules: list[RuleResult | CheckResult | NotRunResult]
    rows: int
    data: pa.Table | None = field(default=None, repr=False)
    elapsed_s: float = 0.0
    engine: str = "none"             # the engines that evaluated batches: vm, fused, vm+fused, none
    # (source, row of `data` where it starts[, its row within the source, default 0]):
    # row rules report rows within their source
    sources: list[tuple] = field(default_factory=lambda: [(TABLE_SOURCE, 0)])
    row_groups_skipped: int = 0      # Parquet row groups not decoded: statistics proved every rule
    layout: pa.Schema | None = field(default=None, repr=False)   # of violations (None: from data)
    now: str | None = None           # the run's "now" (ISO, UTC): current_date, now(), freshness
    started_at: str | None = None    # when the run started (ISO, UTC)
    rules_hash: str | None = None    # spec.rules_digest of the rules' files
    stopped: str | None = None       # why the run stopped before reading rows (a schema check)
    quarantined: dict | None = None  # with a quarantine folder: its path and row counts
    history: dict | None = None      # {path, run}: where --history recorded this run

    @property
    def ok(self) -> bool:
        return all(r.passed or r.spec.severity != "error" for r in self.rules)

    @property
    def verdict(self) -> str:
        """pass, warn (only warn-severity rules failed) or fail."""
        if not self.ok:
            return "fail"
        return "pass" if all(r.passed for r in self.rules) else "warn"

    def metrics(self) -> list[tuple[str, str, float | int | None]]:
        """(rule, metric, value) rows for a metrics history: the run's row count and
        duration (rule ''), and per rule its violations, NULL rows, pass/fail and computed
        value; a dataset check's value also under its metric's own name (avg(amount))."""
        found = {("", "row_count"): self.rows, ("", "duration_s"): self.elapsed_s}
        for r in self.rules:
            s = r.summary()
            name = s["name"]
            found.update({(name, "violations"): s["violations"], (name, "null_rows"): s["null_rows"],
                          (name, "passed"): int(bool(s["passed"]))})
            value = r.outcome.value if isinstance(r, CheckResult) else None
            if _number(value):
                found[(name, "value")] = value
                metric = r.check.metric_name
                if metric is not None and r.outcome.details.get("incomplete") is None:
                    found[("", metric)] = value
        return [(rule, metric, value) for (rule, metric), value in found.items()]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        doc = {"ok": self.ok, "rows": self.rows, "rules": [r.summary() for r in self.rules],
               "engine": self.engine, "elapsed_s": round(self.elapsed_s, 6),
               "row_groups_skipped": self.row_groups_skipped, "now": self.now,
               "exit_code": self.exit_code, "version": __version__, "started_at": self.started_at,
               "rules_hash": self.rules_hash, "sources": self.source_names(), "stopped": self.stopped}
        if self.quarantined is not None:
            doc["quarantine"] = dict(self.quarantined)
        if self.history is not None:
            doc["history"] = self.history
        return doc

    def source_names(self) -> list[str]:
        """The files (or "<table>") the run read, in order."""
        return list(dict.fromkeys(s[0] for s in self.sources))

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @cached_property
    def summary(self) -> pa.Table:
        """One row per rule; a dataset check's details are a JSON string here."""
        rows = [r.summary() for r in self.rules]
        for row in rows:
            row["details"] = None if row["details"] is None else json.dumps(row["details"])
            if isinstance(row["value"], int) and not -2**63 <= row["value"] < 2**63:
                row["value"] = float(row["value"])
        return pa.Table.from_pylist(rows) if rows else pa.table({})

    @property
    def violations_layout(self) -> pa.Schema:
        if self.layout is None:
            self.layout = violations.layout(self.data.schema if self.data is not None else pa.schema([]),
                                            shown_columns([_compiled(r) for r in self.rules]))
        return self.layout

    @cached_property
    def violations(self) -> pa.Table:
        """Violating rows, gathered only now that they are asked for."""
        schema = self.violations_layout
        build_violating([r.outcome for r in self.rules if isinstance(r, CheckResult)])
        parts = [self._rows_of(r, schema) if isinstance(r, RuleResult) else r.outcome.violating
                 for r in self.rules if _has_rows(r)]
        return violations.concat(parts, schema)

    @property
    def rule_set(self) -> quarantine_rows.Rules:
        """The rules' names in order and which have severity error."""
        return quarantine_rows.Rules.of([r.spec for r in self.rules])

    def failure_pairs(self) -> pa.Table:
        """(source, row, rule_index) of every rule each row breaks: a row rule's violating
        rows and a dataset check's listed rows (rule_index: position in the rules)."""
        found: tuple[list, list, list] = ([], [], [])
        for k, r in enumerate(self.rules):
            if isinstance(r, RuleResult):
                if not r.outcome.violations:
                    continue
                source, row = self._locate(r.outcome.row_ids)
            else:
                table = r.outcome.violating
                if table is None or not table.num_rows:
                    continue
                source, row = table.column(violations.SOURCE), table.column(violations.ROW)
            found[0].append(source)
            found[1].append(row)
            found[2].append(np.full(len(row), k, dtype=np.int32))
        return quarantine_rows.pairs(*found)

    def failed_rules(self) -> pa.Table:
        """One row per row that breaks a rule (error or warn): source, row, failed_rules
        (the rules' names, in rule order), sorted by source and row."""
        return quarantine_rows.table_of_lists(self.failure_pairs(), self.rule_set.names)

    def quarantine(self) -> tuple[pa.Table, pa.Table]:
        """(valid, invalid): the input rows that break no rule of severity error, in the
        input's schema, and the others with failed_rules, source and row (io/quarantine.py).
        In-memory input is split as held; files are read again, whole."""
        pairs, rules = self.failure_pairs(), self.rule_set
        split = [quarantine_rows.split(table, quarantine_rows.Failures.of_source(pairs, source), rules, source, 0)
                 for source, table in self._inputs()]
        valid = pa.concat_tables([v for v, _ in split], promote_options="permissive")
        invalid = pa.concat_tables([i for _, i in split], promote_options="permissive")
        return valid, invalid

    def _inputs(self) -> list[tuple[str, pa.Table]]:
        """(source, every row and column of it)."""
        names = list(dict.fromkeys(s[0] for s in self.sources))
        if names == [TABLE_SOURCE]:
            if self.data is None:
                raise DataError("this result holds no rows to split: its input was not a table in memory")
            return [(TABLE_SOURCE, self.data)]
        return [(name, data_sources.read_table(name)) for name in names if name != TABLE_SOURCE]

    def _rows_of(self, r: RuleResult, schema: pa.Schema) -> pa.Table:
        ids = r.outcome.row_ids
        taken = _take(self.data.select(r.program.column_names), ids)
        source, row = self._locate(ids)
        return violations.rows(schema, r.spec.name, source, row, dict(zip(taken.column_names, taken.columns)))

    def _locate(self, ids: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """Rows of `data` as (source, row within that source)."""
        starts = np.array([s[1] for s in self.sources], dtype=np.int64)
        firsts = np.array([s[2] if len(s) > 2 else 0 for s in self.sources], dtype=np.int64)
        which = np.searchsorted(starts, ids, side="right") - 1
        names = pa.array([s[0] for s in self.sources], pa.string())
        return names.take(pa.array(which)), pa.array(ids - starts[which] + firsts[which])


@dataclass
class JobResult(Result):
    """A `submit` run's Result: its violating rows live in part files rather than in memory."""

    output: str | None = None
    job_name: str = ""
    mode: str = "in-process"
    workers: int = 1
    units: int = 0
    files: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    row_groups_proven: dict = field(default_factory=dict)   # rule → row groups proven TRUE
    spilled_bytes: int = 0           # dataset-check buckets written to disk under the memory budget

    @property
    def ok(self) -> bool:
        """Unchecked data never passes: a file that could not be read fails the run."""
        return super().ok and not self.errors

    def to_dict(self) -> dict:
        doc = super().to_dict()
        doc.update(job=self.job_name, mode=self.mode, workers=self.workers, units=self.units,
                   files=len(self.files), errors=self.errors, output=self.output,
                   row_groups_skipped=self.row_groups_skipped, sources=list(self.files))
        if self.spilled_bytes:
            doc["spilled_bytes"] = self.spilled_bytes
        for rule in doc["rules"]:
            rule["row_groups_proven"] = self.row_groups_proven.get(rule["name"], 0)
        return doc

    @property
    def violations(self) -> pa.Table:  # type: ignore[override]
        return violations.read(self.output or "", self.layout)

    def failure_pairs(self) -> pa.Table:
        """As Result's, from the violation parts of the output folder."""
        found: tuple[list, list, list] = ([], [], [])
        rules = self.rule_set
        for path in violations.parts(self.output or ""):
            t = pq.read_table(path, columns=list(violations.KEYS))
            found[0].append(t.column(violations.SOURCE))
            found[1].append(t.column(violations.ROW))
            found[2].append(rules.indices(t.column(violations.RULE)))
        return quarantine_rows.pairs(*found)

    def quarantine(self) -> tuple[pa.Table, pa.Table]:
        """A job's rows are not held: run it with a quarantine folder (output.quarantine,
        --quarantine) and read valid/ and invalid/ there."""
        raise DataError("a job's rows are split into a quarantine folder: give the job "
                        "'output: {quarantine: DIR}' (or --quarantine DIR) and read DIR/valid, DIR/invalid")


def _take(table: pa.Table, ids: np.ndarray) -> pa.Table:
    """Rows `ids` (ascending) of a table, batch by batch: Arrow takes from a chunked column
    by concatenating its chunks first, which for dictionary columns read row group by
    row group means unifying every dictionary."""
    batches = table.to_batches()
    if len(batches) <= 1:
        return table.take(pa.array(ids))
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    cuts = np.searchsorted(ids, starts)
    parts = [b.take(pa.array(ids[cuts[k]:cuts[k + 1]] - starts[k])) for k, b in enumerate(batches)
             if cuts[k + 1] > cuts[k]]
    return pa.Table.from_batches(parts, schema=table.schema) if parts else table.schema.empty_table()


def shown_columns(compiled: list) -> list[str]:
    """The data columns the violations layout shows, in rule order: a row rule's columns,
    and a dataset check's own columns when it lists violating rows."""
    names: list[str] = []
    for c in compiled:
        if isinstance(c, Program):
            names += c.column_names
        elif c.row_output:
            names += list(c.out_columns)
    return list(dict.fromkeys(names))


def _compiled(r: RuleResult | CheckResult):
    return r.program if isinstance(r, RuleResult) else r.check


def _has_rows(r: RuleResult | CheckResult | NotRunResult) -> bool:
    if isinstance(r, NotRunResult):
        return False
    if isinstance(r, RuleResult):
        return r.outcome.violations > 0
    return r.outcome.violating is not None and r.outcome.violating.num_rows > 0
