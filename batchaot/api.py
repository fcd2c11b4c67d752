"""The Python API: validate data against rules, compile a rule, profile data and suggest
rules from its profile.

A facade: the rules are compiled by the compiler layer (compiler.compile_rules) and run
by the runtime (runtime.plan.validate, the same UnitRunner that `submit` uses); only the
CLI and users import this module.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .compiler import clock, compile_rules
from .compiler.program import Program
from .errors import BatchaotError, DataError, RuleError
from .io import sinks, sources, violations
from .io.memory import use_process_pool
from .io.units import plan as plan_units
from .io.violations import TABLE_SOURCE
from .result import Result
from .runtime import history as run_history
from .runtime import plan as runtime
from .runtime import schema_gate
from .runtime.quarantine import Quarantine, split_inputs
from .runtime.unit import BATCH_ROWS
from .spec import RuleSpec, at, load_rules, load_yaml, parse_rule, parse_yaml, rules_digest, rules_from_document

if TYPE_CHECKING:       # profiles, suggestions and the HTML report are imported where used
    from .profile import Profile
    from .profile.suggest import Suggestion

__all__ = ["validate", "compile", "compile_rules", "load_rule_specs", "load_data", "profile", "suggest",
           "Suggested", "BATCH_ROWS"]

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


def validate(data: DataLike, rules: RulesLike, *, output: str | os.PathLike | None = None,
             quarantine: str | os.PathLike | None = None, history: str | os.PathLike | None = None,
             now: str | dt.datetime | None = None) -> Result:
    """Check `data` against `rules`; optionally write summary.json, violations and
    report.html to `output` (in the same layout as `submit`: io/violations.py), split the
    rows into `quarantine`/valid/ and `quarantine`/invalid/ (io/quarantine.py), and append
    the run's metrics to the `history` database (runtime/history.py). `now` fixes the
    instant that current_date, now() and freshness checks read, and is recorded with the
    run (default: the rules file's `now:`, else the wall clock, read once)."""
    fixed = clock.parse(now, "now") if now is not None else _file_now(rules)
    history = os.fspath(history) if history is not None else None
    if output is None and quarantine is None:
        return _validate(data, rules, fixed, history)
    out = None if output is None else os.fspath(output)
    split = None if quarantine is None else os.fspath(quarantine)
    # the folders are this run's from here on (locked; their earlier results are replaced
    # only when this one is complete, or by a summary saying that it failed)
    with sinks.Outputs(out, split) as held:
        result = _validate(data, rules, fixed, history)
        if split is not None and not result.stopped:
            spec = Quarantine(held.quarantine_staging, result.rule_set)
            counts = split_inputs(_inputs(data), result.failure_pairs(), spec, threads=os.cpu_count() or 1)
            result.quarantined = {"path": split, **counts}
        summary = result.to_dict()
        report = ()
        if out is not None:
            from .report import html
            write_result(result, held.staging)
            report = html.write_staged(held.staging, summary)
        held.commit(summary, report)
    return result


def _inputs(data: DataLike) -> list:
    """What a quarantine splits: the files' work units, or the in-memory table as given."""
    paths = _paths(data)
    if paths is None:
        return [(TABLE_SOURCE, pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data)]
    return plan_units(paths)


def _file_now(rules: RulesLike) -> dt.datetime | None:
    """The `now:` of a rules or job file given by path (a job file is a rules file too)."""
    if not isinstance(rules, (str, os.PathLike)):
        return None
    path = os.fspath(rules)
    doc = load_yaml(path)
    if not isinstance(doc, dict) or doc.get("now") is None:
        return None
    return clock.parse(doc["now"], f"{at(path, doc, 'now')}: 'now'")


def _validate(data: DataLike, rules: RulesLike, now: dt.datetime | None = None,
              history: str | None = None) -> Result:
    started_at, started = clock.iso(clock.wall()), time.perf_counter()
    use_process_pool()
    specs = load_rule_specs(rules)
    with clock.fixed(now) as instant:
        result = _validate_at(data, rules, specs, history, now, started)
    result.now, result.started_at = clock.iso(instant), started_at
    result.elapsed_s = time.perf_counter() - started
    files = [os.fspath(rules)] if isinstance(rules, (str, os.PathLike)) else []
    result.rules_hash = rules_digest(files, specs if not files else ())
    return result


def _validate_at(data: DataLike, rules: RulesLike, specs: list[RuleSpec], history: str | None,
                 now: dt.datetime | None, started: float) -> Result:
    """The run itself; `rules` names the history series, `started` times the recorded run."""
    run_history.require(specs, history)
    cached = isinstance(rules, (str, os.PathLike))      # a rules file: compiled once, then loaded
    paths = _paths(data)
    if paths is None:
        table = _table(data)
        # the schema as given (before string views and the like become plain arrays)
        found = schema_gate.check(specs, [(TABLE_SOURCE, data.schema)],
                                  schema_gate.table_nulls({TABLE_SOURCE: table}))
        if found.stop:
            return _stopped(specs, found, [TABLE_SOURCE])
        plan, inputs, early = runtime.Plan.compile(specs, table.schema, cached), [(TABLE_SOURCE, table)], None
    else:
        # text and IPC files are read whole now (their schema comes from reading them);
        # Parquet files only once the rules say which row groups and columns are needed
        early = {p: sources.read_table(p) for p in paths if sources.infer_format(p) != "parquet"}
        schemas = [early[p].schema if p in early else sources.read_schema(p) for p in paths]
        found = schema_gate.check(specs, list(zip(paths, schemas)), schema_gate.table_nulls(early))
        if found.stop:              # before any Parquet row is read
            return _stopped(specs, found, paths)
        plan, inputs = runtime.Plan.compile(specs, _check_schemas(paths, schemas), cached), plan_units(paths)
    found.apply(plan.compiled)
    if history is None:
        return runtime.validate(plan, inputs, read=early)
    job, series = run_history.rules_series(rules, specs)
    with run_history.Recorder(history, plan, job=job, series=series, sources=paths or [TABLE_SOURCE],
                              now=now) as recorder:
        result = runtime.validate(plan, inputs, read=early)
        result.elapsed_s = time.perf_counter() - started      # recorded as the run's duration
        recorder.record(result)
    return result


def _stopped(specs: list[RuleSpec], found: schema_gate.Findings, names: list[str]) -> Result:
    """The result of a run a schema check stopped before it read rows."""
    return Result(found.results(specs), rows=0, sources=[(n, 0) for n in names],
                  layout=violations.layout(pa.schema([]), []), stopped=found.stop)


def write_result(result: Result, folder: str) -> None:
    """The violating rows as violations/part-00000.parquet in `folder` (a run's staging
    folder: sinks.OutputRun puts it in place with the summary)."""
    violations.write_part(folder, "00000", result.violations, result.violations_layout)


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


# --- profile and suggest ---------------------------------------------------------------

def profile(data: DataLike, *, progress=None) -> Profile:
    """Every column's profile (type, NULLs, min/max, distinct values, top values, lengths,
    pattern, monotonicity, candidate keys), computed by the runtime that validates: files
    as work units in this process (`progress`: a runtime.progress reporter), a table as
    held batches."""
    paths = _paths(data)
    if paths is not None:
        from .distributed.profile_job import profile_files
        return profile_files(paths, mode="in-process", progress=progress)
    from .profile import Profile, profilers
    started = time.perf_counter()
    table = _table(data)
    result = runtime.validate(runtime.Plan.of_checks(profilers(table.schema), table.schema),
                              [(TABLE_SOURCE, table)])
    return Profile([r.outcome.column for r in result.rules], rows=table.num_rows,
                   elapsed_s=time.perf_counter() - started)


@dataclass
class Suggested:
    """What `suggest` found: the rules file's text, the rules kept (each passed on the
    data), those dropped with the reason, and the profile they came from."""

    text: str
    kept: list[Suggestion]
    dropped: list[tuple[Suggestion, str]]
    profile: Profile


SUGGESTED_FILE = "<suggested rules>"


def suggest(data: DataLike, *, output: str | os.PathLike | None = None) -> Suggested:
    """Rules inferred from `data`'s profile, each run on `data` before it is kept: a rule
    that does not compile or does not pass is dropped (and listed). With `output`, the
    rules file is written there (whole or not at all)."""
    found = profile(data)
    if found.errors:
        raise DataError(f"cannot suggest rules from data that could not all be read: {found.errors[0]}")
    if found.rows == 0:
        raise DataError("cannot suggest rules from an empty dataset (0 rows): there is nothing to infer them from")
    from .profile.suggest import rules_yaml, suggestions
    proposed = suggestions(found)
    kept, dropped = _verify(data, proposed, found)
    text = rules_yaml(kept, dropped, found)
    if output is not None:
        with sinks.atomic(os.fspath(output)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return Suggested(text, kept, dropped, found)


def _verify(data: DataLike, proposed: list[Suggestion], found: Profile) -> tuple[list, list]:
    """Read the proposals back as the rules file a user gets, compile each, run them all
    on `data`: (kept, [(dropped, reason)])."""
    from .profile.suggest import rules_yaml
    text = rules_yaml(proposed, [], found)
    specs = rules_from_document(parse_yaml(text, SUGGESTED_FILE), SUGGESTED_FILE)
    by_name = {s.name: s for s in proposed}
    schema = _schema_of(data)
    dropped: list[tuple[Suggestion, str]] = []
    runnable = []
    for spec in specs:
        try:
            compile_rules([spec], schema)
            runnable.append(spec)
        except BatchaotError as exc:
            dropped.append((by_name[spec.name], f"does not compile: {exc}"))
    failed = {}
    if runnable:
        for rule in _validate(data, runnable).rules:
            s = rule.summary()
            if not s["passed"]:
                failed[s["name"]] = (f"{s['violations']:,} violating row(s)" if s["violations"]
                                     else f"value {s['value']} outside the bounds")
    dropped += [(by_name[n], why) for n, why in failed.items()]
    kept = [by_name[s.name] for s in runnable if s.name not in failed]
    return kept, dropped


def _schema_of(data: DataLike) -> pa.Schema:
    paths = _paths(data)
    if paths is None:
        return _table(data).schema
    return sources.read_schema(paths[0])


# The kinds of rules the runtime has kernels for (the demo's): each distinct Numba
# function they reach is compiled once, by warm_up, into Numba's disk cache.
_WARM_RULES = [
    {"name": "numbers", "check": "amount > 0 AND quantity BETWEEN 1 AND 100 AND discount <= amount"},
    {"name": "strict_numbers", "check": "amount * quantity <= 25000", "strict": True},
    {"name": "dates", "check": "shipped_at IS NULL OR shipped_at >= created_at"},
    {"name": "status_in", "check": "status IN ('new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')"},
    {"name": "email_regex", "check": "regexp_matches(email, '^[^@]+@[^@]+$')"},
    {"name": "email_like", "check": "email LIKE '%@%.%' AND length(email) < 80"},
    {"name": "email_set", "check": "email NOT IN ('a@b.c', 'x@y.z')"},
    {"name": "status_case", "check": "CASE WHEN status IN ('shipped', 'delivered') THEN shipped_at IS NOT NULL ELSE TRUE END"},
    {"name": "id_unique", "unique": ["order_id"]},
    {"name": "pair_unique", "unique": ["customer_id", "status"]},
    {"name": "email_unique", "unique": ["email"]},
    {"name": "email_present", "not_null": "email", "mostly": 0.5},
    {"name": "mean_amount", "aggregate": "avg(amount)", "between": [0, 10 ** 9]},
    {"name": "rows", "row_count": {"between": [1, None]}},
]


def warm_up(rows: int = 50_000) -> float:
    """Compile the runtime's Numba functions (the VM, string kernels, key tables, ...)
    into Numba's disk cache by checking generated orders with the kinds of rules users
    write, from Parquet and from memory (dictionary and plain strings). Later processes,
    Ray workers on this machine included, load them instead of compiling: the first
    unit of a cold `submit` otherwise spends ~30 s compiling. Then the VM's kernels are
    compiled ahead of time as well (engine/aot.py: small runs need not load Numba), and
    the package's bytecode is written. Seconds taken."""
    import tempfile
    import warnings

    import yaml

    from . import samples
    from .distributed import Job      # the submit path below (imports Ray: only here)
    from .engine import aot

    started = time.perf_counter()
    aot.use_jit()                     # the runs below fill Numba's disk cache, not the AOT module
    with tempfile.TemporaryDirectory(prefix="batchaot-warm-") as folder:
        paths = samples.write_orders(folder, rows, with_customers=True)
        reference = {"name": "known", "reference": {"columns": ["customer_id"], "key": ["id"],
                                                    "dataset": os.path.join(folder, "customers.parquet")}}
        validate(paths, [*_WARM_RULES, reference])
        # submit's path: units, partial states settled in buckets, part files, quarantine
        job_file = os.path.join(folder, "warm.yaml")
        with open(job_file, "w", encoding="utf-8") as fh:
            yaml.safe_dump({"name": "warm-up", "source": {"path": paths[0]}, "rules": [*_WARM_RULES, reference],
                            "output": {"path": os.path.join(folder, "out"),
                                       "quarantine": os.path.join(folder, "out")}}, fh)
        Job.from_yaml(job_file).run(mode="in-process")
        table = samples.orders(rows)
        validate(table, _WARM_RULES)
        dictionary = table.set_column(table.schema.get_field_index("status"), "status",
                                      table.column("status").dictionary_encode())
        validate(dictionary, [r for r in _WARM_RULES if "check" in r])
    try:
        aot.build()
        aot.verify()                  # a miscompile must never answer a rule
    except Exception as exc:          # noqa: BLE001  (no C compiler, a Mismatch: runs stay on the JIT)
        aot.remove()
        warnings.warn(f"batchaot: the ahead-of-time kernels are not used ({exc}); small runs will "
                      "load Numba (~0.5 s more each)", RuntimeWarning, stacklevel=2)
    _byte_compile()
    return time.perf_counter() - started


def _byte_compile() -> None:
    """Write the package's bytecode files, where they can be written: a process that may
    not write them (PYTHONDONTWRITEBYTECODE, as some CI images set) would otherwise compile
    every module from source at each start (0.22 s of a 1.1 s `validate` here)."""
    import compileall

    compileall.compile_dir(os.path.dirname(os.path.abspath(__file__)), quiet=2)
