"""The schema gate: a run's schema checks (checks/schema.py) against every input file's
schema and footer, before any row is read.

Each file's columns and types are checked, and its NULLs in columns declared not
nullable where the footer's statistics say (the rest are counted while reading). A
failing schema check of severity error stops the run here: the result lists the schema
checks' findings (the files that disagree, named) and every other rule as not run. A
failing one of severity warn lets the run go on; its findings reach the plan's check,
which reports them with the NULLs it counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import pyarrow as pa

from ..checks.schema import SchemaCheck, SchemaPartial
from ..errors import DataError
from ..io import sources
from ..io.units import WorkUnit
from ..result import CheckResult, NotRunResult
from ..spec import RuleSpec

NullCounts = Callable[[str, list[str]], dict]    # (file, columns) → NULLs per column (None: unknown)


@dataclass
class Findings:
    """What the gate found per schema check (by rule name), and why the run stops, if it does."""

    checks: dict[str, SchemaCheck] = field(default_factory=dict)
    stop: str | None = None

    def apply(self, compiled: Sequence) -> None:
        """Hand the findings to the plan's schema checks (which finish the run's answer)."""
        for c in compiled:
            if isinstance(c, SchemaCheck) and c.name in self.checks:
                gate = self.checks[c.name]
                c.found, c.footer_nulls, c.null_files = gate.found, gate.footer_nulls, gate.null_files

    def results(self, specs: Sequence[RuleSpec]) -> list:
        """Per rule, for a run stopped here: the schema checks' results, the rest not run."""
        out = []
        for spec in specs:
            check = self.checks.get(spec.name) if spec.kind == "schema" else None
            if check is not None:
                out.append(CheckResult(spec, check, check.finish(SchemaPartial())))
            else:
                out.append(NotRunResult(spec, self.stop or ""))
        return out


def check(specs: Sequence[RuleSpec], files: Sequence[tuple[str, pa.Schema]],
          null_counts: NullCounts = sources.footer_null_counts) -> Findings:
    """Run the schema checks of `specs` over (file, schema) pairs."""
    findings = Findings()
    schema_specs = [s for s in specs if s.kind == "schema"]
    if not schema_specs or not files:
        return findings
    for spec in schema_specs:
        gate = SchemaCheck(spec, files[0][1])
        for path, schema in files:
            gate.found[path] = gate.problems(schema)
            present = [c for c in gate.not_null if c in schema.names]
            for column, n in null_counts(path, present).items():
                if n:
                    gate.footer_nulls[column] = gate.footer_nulls.get(column, 0) + n
                    gate.null_files.setdefault(path, []).append(column)
        findings.checks[spec.name] = gate
        said = {p: problems + [f"column '{c}' has NULLs (nullable: false)" for c in gate.null_files.get(p, [])]
                for p, problems in gate.found.items()}
        bad = [p for p, problems in said.items() if problems]
        if bad and spec.severity == "error" and findings.stop is None:
            first = said[bad[0]][0]
            findings.stop = (f"schema check '{spec.name}' failed before any row was read: {bad[0]}: {first}"
                             + (f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""))
    return findings


def file_schemas(units: Sequence[WorkUnit], specs: Sequence[RuleSpec],
                 csv: dict | None = None) -> list[tuple[str, pa.Schema]]:
    """(file, schema) of every file of `units` (footers only), read only when a rule is a
    schema check. A file whose schema cannot be read is left to its units, which fail under
    `on_error` like any unreadable file."""
    if not any(s.kind == "schema" for s in specs):
        return []
    out = []
    for path, fmt in dict.fromkeys((u.path, u.format) for u in units):
        try:
            out.append((path, sources.read_schema(path, fmt, csv)))
        except DataError:
            continue
    return out


def table_nulls(tables: dict[str, pa.Table]) -> NullCounts:
    """NULL counts of inputs already in memory (text files read whole, in-memory tables)."""
    def counts(path: str, columns: list[str]) -> dict:
        if path in tables:
            return {c: tables[path].column(c).null_count for c in columns}
        return sources.footer_null_counts(path, columns)
    return counts
