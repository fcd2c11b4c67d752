"""The Python API: validate data against rules, compile a rule."""
from __future__ import annotations

import glob
import os
import time
from typing import Any, Sequence

import pyarrow as pa

from .compiler import compile_rule
from .compiler.program import Program
from .engine.run import Executor
from .errors import DataError, RuleError
from .io import sinks, sources
from .result import Result, RuleResult
from .spec import RuleSpec, load_rules, parse_rule

BATCH_ROWS = 1 << 20

DataLike = Any  # pa.Table | pa.RecordBatch | str | os.PathLike | list of paths
RulesLike = Any  # path to a rules YAML, list of rule dicts, or list of RuleSpec


def load_data(data: DataLike) -> pa.Table:
    """A Table from a Table, RecordBatch, path, glob or list of paths."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, (str, os.PathLike, list, tuple)):
        table = _read_paths(_expand(data))
    else:
        raise DataError(f"cannot validate a {type(data).__name__}: pass a pyarrow Table, "
                        "RecordBatch, or a path to Parquet/CSV/Arrow/JSONL data")
    if table.num_rows == 0:
        raise DataError("the data has no rows: nothing to validate")
    return table


def _expand(data) -> list[str]:
    items = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(p) for p in data]
    paths: list[str] = []
    for item in items:
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            raise DataError(f"{item}: no files match")
        paths += matches
    return paths


def _read_paths(paths: list[str]) -> pa.Table:
    tables = [sources.read_table(p) for p in paths]
    first = tables[0].schema
    for path, t in zip(paths[1:], tables[1:]):
        if not t.schema.equals(first):
            raise DataError(f"{path}: schema differs from {paths[0]}: {t.schema} vs {first}")
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def load_rule_specs(rules: RulesLike) -> list[RuleSpec]:
    if isinstance(rules, (list, tuple)) and rules and all(isinstance(r, RuleSpec) for r in rules):
        return list(rules)
    return load_rules(rules)


def compile_rules(specs: Sequence[RuleSpec], schema: pa.Schema) -> list[Program]:
    programs = []
    for spec in specs:
        if not spec.is_row_rule:
            raise RuleError(spec.name, f"'{spec.kind}' is a dataset-level check; this version "
                            "of batchaot runs row rules ('check:') only")
        programs.append(compile_rule(spec.name, spec.body, schema, strict=spec.strict))
    return programs


def validate(data: DataLike, rules: RulesLike, *, output: str | os.PathLike | None = None) -> Result:
    """Check `data` against `rules`; optionally write summary.json and violations to `output`."""
    started = time.perf_counter()
    if output is not None:
        sinks.prepare_output(os.fspath(output))
    specs = load_rule_specs(rules)
    table = load_data(data)
    programs = compile_rules(specs, table.schema)
    outcomes = Executor().evaluate(programs, table.to_batches(max_chunksize=BATCH_ROWS))
    result = Result([RuleResult(s, p, o) for s, p, o in zip(specs, programs, outcomes)],
                    rows=table.num_rows, data=table)
    result.elapsed_s = time.perf_counter() - started
    if output is not None:
        write_result(result, os.fspath(output))
    return result


def write_result(result: Result, output: str) -> None:
    sinks.write_violations(output, result.violations)
    sinks.write_summary(output, result.to_dict())


def compile(rule: str | dict | RuleSpec, schema: pa.Schema | pa.Table, *, name: str | None = None,
            strict: bool = False) -> Program:
    """Compile one row rule: SQL text, a rule dict, or a RuleSpec."""
    if isinstance(schema, (pa.Table, pa.RecordBatch)):
        schema = schema.schema
    if isinstance(rule, str):
        rule = RuleSpec(name=name or "rule", kind="check", body=rule, strict=strict)
    elif isinstance(rule, dict):
        rule = parse_rule(rule, 0, "<rule>")
    (program,) = compile_rules([rule], schema)
    return program
