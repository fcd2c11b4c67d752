"""The Python API: validate data against rules, compile a rule."""
from __future__ import annotations

import glob
import os
import time
from typing import Any, Sequence

import pyarrow as pa

from .checks import DatasetCheck, build_check, run_checks
from .compiler import compile_rule
from .compiler.program import Program
from .engine.run import Executor
from .errors import DataError, RuleError
from .io import sinks, sources
from .result import TABLE_SOURCE, CheckResult, Result, RuleResult
from .spec import RuleSpec, load_rules, parse_rule

BATCH_ROWS = 1 << 20

DataLike = Any  # pa.Table | pa.RecordBatch | str | os.PathLike | list of paths
RulesLike = Any  # path to a rules YAML, list of rule dicts, or list of RuleSpec


def load_data(data: DataLike) -> pa.Table:
    """A Table from a Table, RecordBatch, path, glob or list of paths."""
    return _concat(load_sources(data))


def load_sources(data: DataLike) -> list[tuple[str, pa.Table]]:
    """(source, table) per input file, or one ("<table>", table) for in-memory data."""
    if isinstance(data, pa.Table):
        found = [(TABLE_SOURCE, data)]
    elif isinstance(data, pa.RecordBatch):
        found = [(TABLE_SOURCE, pa.Table.from_batches([data]))]
    elif isinstance(data, (str, os.PathLike, list, tuple)):
        found = _read_paths(_expand(data))
    else:
        raise DataError(f"cannot validate a {type(data).__name__}: pass a pyarrow Table, "
                        "RecordBatch, or a path to Parquet/CSV/Arrow/JSONL data")
    if sum(t.num_rows for _, t in found) == 0:
        raise DataError("the data has no rows: nothing to validate")
    return found


def _concat(found: list[tuple[str, pa.Table]]) -> pa.Table:
    return pa.concat_tables([t for _, t in found]) if len(found) > 1 else found[0][1]


def _expand(data) -> list[str]:
    items = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(p) for p in data]
    paths: list[str] = []
    for item in items:
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            raise DataError(f"{item}: no files match")
        paths += matches
    return paths


def _read_paths(paths: list[str]) -> list[tuple[str, pa.Table]]:
    tables = [sources.read_table(p) for p in paths]
    first = tables[0].schema
    for path, t in zip(paths[1:], tables[1:]):
        if not t.schema.equals(first):
            raise DataError(f"{path}: schema differs from {paths[0]}: {t.schema} vs {first}")
    return list(zip(paths, tables))


def load_rule_specs(rules: RulesLike) -> list[RuleSpec]:
    if isinstance(rules, (list, tuple)) and rules and all(isinstance(r, RuleSpec) for r in rules):
        return list(rules)
    return load_rules(rules)


def compile_rules(specs: Sequence[RuleSpec], schema: pa.Schema) -> list[Program | DatasetCheck]:
    """One entry per spec, in order: a Program for a row rule, a DatasetCheck otherwise."""
    return [compile_rule(spec.name, spec.body, schema, strict=spec.strict) if spec.is_row_rule
            else build_check(spec, schema) for spec in specs]


def validate(data: DataLike, rules: RulesLike, *, output: str | os.PathLike | None = None) -> Result:
    """Check `data` against `rules`; optionally write summary.json and violations to `output`."""
    if output is None:
        return _validate(data, rules)
    # the folder is this run's from here on (locked; its earlier results are replaced
    # only when this one is complete, or by a summary saying that it failed)
    with sinks.OutputRun(os.fspath(output)) as target:
        result = _validate(data, rules)
        write_result(result, target.staging)
        target.commit(result.to_dict())
    return result


def _validate(data: DataLike, rules: RulesLike) -> Result:
    started = time.perf_counter()
    specs = load_rule_specs(rules)
    found = load_sources(data)
    table = _concat(found)
    compiled = compile_rules(specs, table.schema)
    programs = [c for c in compiled if isinstance(c, Program)]
    checks = [c for c in compiled if not isinstance(c, Program)]
    outcomes = iter(Executor().evaluate(programs, table.to_batches(max_chunksize=BATCH_ROWS)))
    check_outcomes = iter(run_checks(checks, _batches(found)) if checks else [])
    results = [RuleResult(s, c, next(outcomes)) if isinstance(c, Program)
               else CheckResult(s, c, next(check_outcomes)) for s, c in zip(specs, compiled)]
    result = Result(results, rows=table.num_rows, data=table, sources=_starts(found))
    result.elapsed_s = time.perf_counter() - started
    return result


def _batches(found: list[tuple[str, pa.Table]]):
    """(batch, source, first row within the source) for dataset checks."""
    for source, table in found:
        first_row = 0
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            yield batch, source, first_row
            first_row += batch.num_rows


def _starts(found: list[tuple[str, pa.Table]]) -> list[tuple[str, int]]:
    starts, row = [], 0
    for source, table in found:
        starts.append((source, row))
        row += table.num_rows
    return starts


def write_result(result: Result, folder: str) -> None:
    """The violating rows as violations/part-00000.parquet in `folder` (a run's staging
    folder: sinks.OutputRun puts it in place with the summary)."""
    sinks.write_violations(folder, result.violations)


def compile(rule: str | dict | RuleSpec, schema: pa.Schema | pa.Table, *, name: str | None = None,
            strict: bool = False) -> Program:
    """Compile one row rule: SQL text, a rule dict, or a RuleSpec."""
    if isinstance(schema, (pa.Table, pa.RecordBatch)):
        schema = schema.schema
    if isinstance(rule, str):
        rule = RuleSpec(name=name or "rule", kind="check", body=rule, strict=strict)
    elif isinstance(rule, dict):
        rule = parse_rule(rule, 0, "<rule>")
    if not rule.is_row_rule:
        raise RuleError(rule.name, f"'{rule.kind}' is a dataset-level check, not a row rule: "
                        "run it with batchaot.validate(data, rules)")
    (program,) = compile_rules([rule], schema)
    return program
