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
from .engine.stats import row_group_proofs
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
    paths = _paths(data)
    if paths is None:
        return [(TABLE_SOURCE, _table(data))]
    _check_schemas(paths, [sources.read_schema(p) for p in paths])
    return [(p, sources.read_table(p)) for p in paths]


def _paths(data: DataLike) -> list[str] | None:
    """The files to read, or None for in-memory data."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return None
    if isinstance(data, (str, os.PathLike, list, tuple)):
        return _expand(data)
    raise DataError(f"cannot validate a {type(data).__name__}: pass a pyarrow Table, "
                    "RecordBatch, or a path to Parquet/CSV/Arrow/JSONL data")


def _table(data: pa.Table | pa.RecordBatch) -> pa.Table:
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    return sources.rechunk(table)


def _concat(found: list[tuple[str, pa.Table]]) -> pa.Table:
    return pa.concat_tables([t for _, t in found]) if len(found) > 1 else found[0][1]


def _expand(data) -> list[str]:
    items = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(p) for p in data]
    if not items:
        raise DataError("no data given: pass a path, a glob or a pyarrow Table")
    paths: list[str] = []
    for item in items:
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            raise DataError(f"{item}: no files match")
        paths += matches
    return paths


def _check_schemas(paths: list[str], schemas: list[pa.Schema]) -> pa.Schema:
    """The files' one schema; a file whose columns differ from the first's is named, with
    the first column that differs (validate reads files as one table)."""
    first = schemas[0]
    for path, schema in zip(paths[1:], schemas[1:]):
        if schema.equals(first):
            continue
        for f in first:
            if f.name not in schema.names:
                why = f"it has no column '{f.name}'"
                break
            if schema.field(f.name).type != f.type:
                why = f"column '{f.name}' is {schema.field(f.name).type} there, {f.type} here"
                break
        else:
            extra = [n for n in schema.names if n not in first.names]
            why = f"it has extra column(s) {', '.join(extra)}" if extra else "its columns are in another order"
        raise DataError(f"{path}: schema differs from {paths[0]}: {why} "
                        "(validate reads its files as one table; `submit` checks files one by one)")
    return first


def load_rule_specs(rules: RulesLike) -> list[RuleSpec]:
    if isinstance(rules, (list, tuple)) and rules and all(isinstance(r, RuleSpec) for r in rules):
        return list(rules)
    return load_rules(rules)


def compile_rules(specs: Sequence[RuleSpec], schema: pa.Schema) -> list[Program | DatasetCheck]:
    """One entry per spec, in order: a Program for a row rule, a DatasetCheck otherwise."""
    return [compile_rule(spec.name, spec.body, schema, strict=spec.strict) if spec.is_row_rule
            else _build_check(spec, schema) for spec in specs]


def _build_check(spec: RuleSpec, schema: pa.Schema) -> DatasetCheck:
    try:
        return build_check(spec, schema)
    except KeyError:                 # pyarrow's schema.field() of a name the data holds twice
        twice = sorted({n for n in schema.names if schema.names.count(n) > 1})
        if not twice:
            raise
        raise RuleError(spec.name, f"column(s) {', '.join(twice)} appear more than once in the data: "
                        "which one the check means is ambiguous; rename the copies") from None


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
    paths = _paths(data)
    if paths is None:
        table = _table(data)
        schema = table.schema
        compiled = compile_rules(specs, schema)
        pieces = [sources.Piece(TABLE_SOURCE, 0, table.num_rows, table)]
    else:
        # text and IPC files are read whole now (their schema comes from reading them);
        # Parquet files only once the rules say which row groups and columns are needed
        early = {p: sources.read_table(p) for p in paths if sources.infer_format(p) != "parquet"}
        schema = _check_schemas(paths, [early[p].schema if p in early else sources.read_schema(p)
                                        for p in paths])
        compiled = compile_rules(specs, schema)
        pieces = _read_pieces(paths, compiled, early)
    programs = [c for c in compiled if isinstance(c, Program)]
    checks = [c for c in compiled if not isinstance(c, Program)]
    held = [p for p in pieces if p.table is not None]
    table = pa.concat_tables([p.table for p in held]) if held else _empty(compiled, schema)
    try:
        outcomes = Executor().evaluate(programs, table.to_batches(max_chunksize=BATCH_ROWS))
    except DataError as exc:        # a value no rule can read: name the file when there is one
        raise DataError(f"{held[0].source}: {exc}" if len({p.source for p in held}) == 1
                        and held[0].source != TABLE_SOURCE else str(exc)) from None
    # row groups whose statistics proved every rule were not read: their rows pass
    unread = sum(p.rows for p in pieces if p.table is None)
    for outcome in outcomes:
        outcome.rows += unread
    outcomes = iter(outcomes)
    check_outcomes = iter(run_checks(checks, _batches(held)) if checks else [])
    results = [RuleResult(s, c, next(outcomes)) if isinstance(c, Program)
               else CheckResult(s, c, next(check_outcomes)) for s, c in zip(specs, compiled)]
    result = Result(results, rows=sum(p.rows for p in pieces), data=table, sources=_starts(held),
                    row_groups_skipped=sum(p.row_groups for p in pieces))
    result.elapsed_s = time.perf_counter() - started
    return result


def _read_pieces(paths: list[str], compiled: list, early: dict[str, pa.Table]) -> list[sources.Piece]:
    """The files as `submit` reads them: Parquet only in the columns the rules read (all
    when they read none), and without decoding a row group whose statistics prove every
    row rule when there is no dataset check (engine/stats.py); `early`: files read already."""
    programs = [c for c in compiled if isinstance(c, Program)]
    checks = [c for c in compiled if not isinstance(c, Program)]
    columns = list(dict.fromkeys([c for p in programs for c in p.column_names]
                                 + [c for k in checks for c in k.columns])) or None
    skip = None
    if not checks:
        def skip(meta, schema, rg):
            return all(row_group_proofs(meta, schema, programs, rg))
    pieces = []
    for path in paths:
        if path in early:
            table = early[path].select(columns) if columns else early[path]
            found = [sources.Piece(path, 0, table.num_rows, table)]
        else:
            found = sources.read_pieces(path, columns, skip)
        for piece in found:
            if piece.table is not None:
                piece.table = sources.rechunk(piece.table)
            pieces.append(piece)
    return pieces


def _empty(compiled: list, schema: pa.Schema) -> pa.Table:
    """No row was read (none there, or statistics proved every rule everywhere)."""
    names = list(dict.fromkeys(c for p in compiled if isinstance(p, Program) for c in p.column_names))
    return pa.schema([schema.field(n) for n in names]).empty_table()


def _batches(held: list[sources.Piece]):
    """(batch, source, first row within the source) for dataset checks."""
    for piece in held:
        first_row = piece.first_row
        for batch in piece.table.to_batches(max_chunksize=BATCH_ROWS):
            yield batch, piece.source, first_row
            first_row += batch.num_rows


def _starts(held: list[sources.Piece]) -> list[tuple[str, int, int]]:
    """(source, row of the held table where the piece starts, its row within the source)."""
    starts, row = [], 0
    for piece in held:
        starts.append((piece.source, row, piece.first_row))
        row += piece.table.num_rows
    return starts or [(TABLE_SOURCE, 0, 0)]


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
