"""Batch compilation jobs (`kind: compile`): many rules files → one Parquet row per rule.

Files are compiled in chunks, in this process or as Ray tasks; each rule's Program is
looked up in / stored to the content-addressed cache, so a rerun is near-instant. One
bad rule (or one malformed file) becomes a row with its diagnostic; the others go on.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..compiler import clock, compile_cached
from ..compiler.cache import ProgramCache, TableCache, file_key
from ..errors import BatchaotError, SpecError
from ..io import sinks, sources
from ..job import JobSpec
from ..native import PASS_NAMES
from ..spec import load_rules

CHUNK_FILES = 8
COMPILED = "compiled.parquet"
IN_PROCESS_FILES = 16

ROW_SCHEMA = pa.schema(
    [("file", pa.string()), ("name", pa.string()), ("source", pa.string()), ("ok", pa.bool_()),
     ("diagnostics", pa.string()), ("hash", pa.string()),
     ("bytecode_before", pa.binary()), ("bytecode_after", pa.binary()),
     ("instructions_before", pa.int32()), ("instructions_after", pa.int32())]
    + [(f"removed_{p}", pa.int32()) for p in PASS_NAMES]
    + [("zero_tick", pa.bool_()), ("verdict", pa.string()), ("program", pa.binary()),
       ("cached", pa.bool_())])


def compile_files(files: list[str], schema: pa.Schema, cache_root: str | None = None) -> pa.Table:
    """Compile every rule of `files`; never raises for a user mistake.

    A rules file whose bytes (and the schema) were compiled before is answered from the
    file cache in one read; otherwise each rule goes through the program cache.
    """
    programs = ProgramCache(cache_root and os.path.join(cache_root, "programs"))
    tables = TableCache(cache_root and os.path.join(cache_root, "files"))
    return pa.concat_tables([_compile_file(path, schema, programs, tables) for path in files]) \
        if files else ROW_SCHEMA.empty_table()


def cached_files(files: list[str], schema: pa.Schema, cache_root: str | None = None) -> dict[str, pa.Table]:
    """The files the file cache answers whole (a driver serves them without a worker)."""
    tables = TableCache(cache_root and os.path.join(cache_root, "files"))
    found = {}
    for path in files:
        try:
            with open(path, "rb") as fh:
                hit = _file_hit(path, file_key(fh.read(), schema), tables)
        except OSError:
            continue                      # a worker reports it, with the reason
        if hit is not None:
            found[path] = hit
    return found


def _file_hit(path: str, k: str, tables: TableCache) -> pa.Table | None:
    hit = tables.get(k)
    if hit is None or not hit.schema.equals(ROW_SCHEMA):
        return None
    n = hit.num_rows
    hit = hit.set_column(0, "file", pa.array([path] * n, pa.string()))
    return hit.set_column(hit.schema.get_field_index("cached"), "cached", pa.array([True] * n))


def _compile_file(path: str, schema: pa.Schema, programs: ProgramCache, tables: TableCache) -> pa.Table:
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        return pa.Table.from_pylist([_failed(path, None, None, f"{path}: cannot read: {exc.strerror}")],
                                    schema=ROW_SCHEMA)
    k = file_key(content, schema)
    hit = _file_hit(path, k, tables)
    if hit is not None:
        return hit
    try:
        specs = load_rules(path)
    except BatchaotError as exc:
        rows = [_failed(path, None, None, str(exc))]
    else:
        with clock.watched() as read_clock:
            rows = [_compile_one(path, spec, schema, programs) for spec in specs]
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    # files with errors are recompiled, so fixes show at once; rules of current_date or
    # now() hold this run's instant
    if all(r["ok"] for r in rows) and not (specs and read_clock):
        tables.put(k, table)
    return table


def _compile_one(path: str, spec, schema: pa.Schema, cache: ProgramCache) -> dict:
    if not spec.is_row_rule:
        return _failed(path, spec.name, str(spec.body), f"{spec.where}: '{spec.kind}' is a "
                       "dataset-level check: it has no bytecode to compile")
    try:
        program, cached = compile_cached(spec, schema, cache)
    except BatchaotError as exc:
        return _failed(path, spec.name, spec.body, f"{spec.where}: {exc}")
    before, after = program.size
    return {"file": path, "name": spec.name, "source": spec.body, "ok": True, "diagnostics": None,
            "hash": program.hash, "bytecode_before": program.code0.tobytes(),
            "bytecode_after": program.code.tobytes(), "instructions_before": before,
            "instructions_after": after,
            **{f"removed_{p}": program.removed.get(p, 0) for p in PASS_NAMES},
            "zero_tick": program.zero_tick, "verdict": program.verdict,
            "program": program.to_bytes(), "cached": cached}


def _failed(path: str, name, source, message: str) -> dict:
    row = {f.name: None for f in ROW_SCHEMA}
    row.update(file=path, name=name, source=source, ok=False, diagnostics=message, cached=False)
    return row


def chunks(files: list[str], size: int = CHUNK_FILES) -> list[list[str]]:
    return [files[i:i + size] for i in range(0, len(files), size)]


def run_compile(job: JobSpec, *, address: str | None = None, workers: int | None = None,
                output: str | None = None, mode: str = "auto") -> "CompileResult":
    started = time.perf_counter()
    if job.schema is None:
        raise SpecError(f"{job.file}: compile job '{job.name}' needs 'schema: {{path: data file}}' "
                        "to bind column names and types")
    out = output or job.output
    if not out:
        return _compile(job, None, address, workers, mode, started)
    with sinks.OutputRun(out, job=job.name) as target:     # the folder is this run's (see sinks)
        result = _compile(job, target.staging, address, workers, mode, started)
        result.summary["output"] = os.path.join(out, COMPILED)
        target.commit(result.summary, entries=(COMPILED,))
    return result


def _compile(job: JobSpec, staging: str | None, address: str | None, workers: int | None,
             mode: str, started: float) -> "CompileResult":
    schema = sources.read_schema(job.schema)
    files = list(job.rule_files)
    if mode == "in-process" or (mode == "auto" and address is None and len(files) <= IN_PROCESS_FILES):
        table, mode = compile_files(files, schema), "in-process"
    else:
        table, mode = _compile_on_ray(files, schema, address, workers or job.workers)
    summary = {
        "ok": bool(pa.compute.all(table["ok"]).as_py()) if table.num_rows else True,
        "job": job.name, "kind": "compile", "mode": mode, "files": len(files),
        "rules": table.num_rows, "compiled": int(pa.compute.sum(table["ok"]).as_py() or 0),
        "failed": int(pa.compute.sum(pa.compute.invert(table["ok"])).as_py() or 0),
        "zero_tick": int(pa.compute.sum(table["zero_tick"]).as_py() or 0),
        "cache_hits": int(pa.compute.sum(table["cached"]).as_py() or 0),
        "diagnostics": [d for d in table["diagnostics"].to_pylist() if d],
        "elapsed_s": round(time.perf_counter() - started, 6),
    }
    if staging:
        path = os.path.join(staging, COMPILED)
        try:
            pq.write_table(table, path)
        except OSError as exc:
            raise sinks.write_error(path, exc) from None
    return CompileResult(summary, table)


def _compile_on_ray(files: list[str], schema: pa.Schema, address: str | None,
                    workers: int | None) -> tuple[pa.Table, str]:
    """Files the cache answers whole are served here; only the others go to Ray (which is
    not even started when every file is a hit). Rows come back in the job's file order."""
    from ..compiler.cache import cache_root
    hits = cached_files(files, schema, cache_root())
    misses = [f for f in files if f not in hits]
    if not misses:
        return compile_files(files, schema), "in-process"
    from . import actors
    table = pa.concat_tables([actors.compile_chunks(chunks(misses), schema, address, workers),
                              *hits.values()])
    order = pa.compute.index_in(table["file"], value_set=pa.array(files, pa.string()))
    table = table.append_column("__order", order).sort_by("__order").drop_columns(["__order"])
    return table, "ray"


@dataclass
class CompileResult:
    """Outcome of a compile job: `table` has one row per rule (see ROW_SCHEMA)."""

    summary: dict
    table: pa.Table

    @property
    def ok(self) -> bool:
        return self.summary["ok"]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return dict(self.summary)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.summary, **kwargs)
