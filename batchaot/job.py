"""Job files (jobs/*.yaml): what to check, where the data is, where results go.

    name: orders-quality
    kind: validate                 # or compile, or profile (every column's profile; no rules)
    source: {path: "data/orders/*.parquet", format: parquet}
    rules: [...]                   # inline, and/or
    rules_from: rules/orders.yaml  # one or more rules files (globs)
    output: {path: out/orders, quarantine: out/orders-split}   # quarantine: optional
    workers: 4                     # default: all cores
    on_error: continue             # or stop: what an unreadable file does to the run
    now: 2024-06-01T12:00:00Z      # fixes current_date, now() and freshness (default: wall clock)
    history: out/history.sqlite    # append each run's metrics (change/anomaly checks read it)
    memory_budget: 2GB             # unique/reference buckets held in memory before spilling to
                                   # disk (default: a quarter of the memory the process may use)

Relative paths resolve against the job file's folder. Every mistake is a SpecError
naming file:line and the field.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .compiler import clock
from .errors import SpecError
from .io.sources import FORMATS
from .spec import (DOCUMENT_KEYS, RuleSpec, Where, at, line_of, load_yaml, name_problem,
                   rules_from_document, suggest)

KINDS = ("validate", "compile", "profile")
ON_ERROR = ("continue", "stop")
SOURCE_KEYS = ("path", "format", "csv")
CSV_KEYS = ("delimiter", "header", "skip_rows", "null_values")
ENGINES = ("vm", "fused", "auto")


@dataclass(frozen=True)
class SourceSpec:
    paths: tuple[str, ...]               # absolute or job-relative-resolved paths / globs / URIs
    format: str | None = None            # None: from each file's extension
    csv: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    name: str
    kind: str
    file: str
    source: SourceSpec | None
    rules: tuple[RuleSpec, ...]
    rule_files: tuple[str, ...]          # compile jobs: the rules files to compile
    output: str | None
    quarantine: str | None               # folder where valid/ and invalid/ rows go (None: none)
    workers: int | None
    on_error: str
    engine: str                          # the Executor's: auto (default), vm or fused
    schema: str | None                   # compile jobs: a data file whose schema binds the rules
    now: dt.datetime | None = None       # fixes current_date, now() and freshness (default: the wall clock)
    history: str | None = None           # the metrics history database file (io/history.py)
    memory_budget: int | None = None     # bytes; None: runtime.spill.default_budget


def resolve(base: str, path: str) -> str:
    """A path from a job file, relative to that file's folder (URIs left alone)."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), path))


def load_job(path: str) -> JobSpec:
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise SpecError(f"{path}:{line_of(doc) or 1}: a job file is a mapping with name, source, "
                        "rules and output")
    return parse_job(doc, path)


def parse_job(doc: dict, file: str) -> JobSpec:
    for key in doc:
        if key not in DOCUMENT_KEYS:
            raise SpecError(f"{at(file, doc, key)}: unknown job field '{key}'"
                            f"{suggest(str(key), DOCUMENT_KEYS)}")
    kind = _choice(doc, "kind", KINDS, "validate", file)
    name = doc.get("name", os.path.splitext(os.path.basename(file))[0])
    problem = name_problem(name, "job name", path_safe=True)
    if problem:
        raise SpecError(f"{at(file, doc, 'name')}: {problem}")
    rule_files = _rule_files(doc, file)
    rules = _rules(doc, file, rule_files) if kind == "validate" else ()
    source = _source(doc, file) if kind != "compile" or "source" in doc else None
    if kind != "compile" and source is None:
        what = "to profile" if kind == "profile" else "to check"
        raise SpecError(f"{at(file, doc)}: job '{name}' needs a 'source' (the data {what})")
    if kind == "profile" and ("rules" in doc or rule_files):
        raise SpecError(f"{at(file, doc, 'rules' if 'rules' in doc else 'rules_from')}: profile job "
                        f"'{name}' takes no rules (it profiles every column); use kind: validate to check rules")
    if kind != "validate" and isinstance(doc.get("output"), dict) and "quarantine" in doc["output"]:
        raise SpecError(f"{at(file, doc, 'output')}: {kind} job '{name}' has no rows to quarantine: "
                        "'output.quarantine' is for validate jobs")
    if kind == "compile" and not rule_files:
        raise SpecError(f"{at(file, doc)}: compile job '{name}' needs 'rules_from' "
                        "(rules files or globs to compile)")
    return JobSpec(name=name, kind=kind, file=file, source=source, rules=rules,
                   rule_files=tuple(rule_files), output=_output(doc, file, "path"),
                   quarantine=_output(doc, file, "quarantine"),
                   workers=_workers(doc, file), on_error=_choice(doc, "on_error", ON_ERROR, "continue", file),
                   engine=_choice(doc, "engine", ENGINES, "auto", file), schema=_schema(doc, file),
                   now=clock.parse(doc["now"], f"{at(file, doc, 'now')}: 'now'") if doc.get("now") is not None else None,
                   history=_history(doc, file), memory_budget=_memory_budget(doc, file))


def _choice(doc: dict, key: str, allowed: tuple, default: str, file: str) -> str:
    value = doc.get(key, default)
    if value not in allowed:
        raise SpecError(f"{at(file, doc, key)}: '{key}' must be one of "
                        f"{', '.join(allowed)}, got {value!r}")
    return value


def _workers(doc: dict, file: str) -> int | None:
    value = doc.get("workers")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpecError(f"{at(file, doc, 'workers')}: 'workers' must be a positive integer, got {value!r}")
    return value


def _source(doc: dict, file: str) -> SourceSpec | None:
    if "source" not in doc:
        return None
    src: Any = doc["source"]
    where = f"{at(file, doc, 'source')}"
    if isinstance(src, (str, list)):
        src = {"path": src}
    if not isinstance(src, dict):
        raise SpecError(f"{where}: 'source' must be a path, a list of paths, or "
                        "{path: ..., format: ...}")
    for key in src:
        if key not in SOURCE_KEYS:
            raise SpecError(f"{at(file, src, key) or line_of(doc, 'source')}: unknown source "
                            f"field '{key}'{suggest(str(key), SOURCE_KEYS)}")
    paths = src.get("path")
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise SpecError(f"{where}: 'source.path' must be a path, glob or list of them")
    fmt = src.get("format")
    if fmt is not None and fmt not in set(FORMATS.values()):
        raise SpecError(f"{at(file, src, 'format') or line_of(doc, 'source')}: unknown format "
                        f"{fmt!r}; use one of {', '.join(sorted(set(FORMATS.values())))}")
    csv = src.get("csv", {})
    if not isinstance(csv, dict) or any(k not in CSV_KEYS for k in csv):
        bad = next((k for k in csv if k not in CSV_KEYS), None) if isinstance(csv, dict) else None
        raise SpecError(f"{where}: 'source.csv' options are {', '.join(CSV_KEYS)}"
                        + (f"; got '{bad}'{suggest(str(bad), CSV_KEYS)}" if bad else ""))
    for key, value in csv.items():
        problem = _csv_problem(key, value)
        if problem:
            raise SpecError(f"{file}:{line_of(csv, key) or line_of(doc, 'source')}: "
                            f"'source.csv.{key}' {problem}, got {value!r:.60}")
    return SourceSpec(tuple(resolve(file, p) for p in paths), fmt, dict(csv))


def _csv_problem(key: str, value: Any) -> str | None:
    """Why a `source.csv` option cannot be given to the CSV reader, or None."""
    if key == "delimiter":
        ok = isinstance(value, str) and len(value) == 1 and value.isascii() and value not in "\r\n\""
        return None if ok else "must be one ASCII character (not a quote or line break)"
    if key == "header":
        return None if isinstance(value, bool) else "must be true or false"
    if key == "skip_rows":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 31
        return None if ok else "must be a whole number of rows, 0 or more"
    if key == "null_values":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    return None


def _rule_files(doc: dict, file: str) -> list[str]:
    value = doc.get("rules_from", [])
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
        raise SpecError(f"{at(file, doc, 'rules_from')}: 'rules_from' must be a path, glob or list of them")
    out: list[str] = []
    for item in items:
        pattern = resolve(file, item)
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise SpecError(f"{at(file, doc, 'rules_from')}: rules file '{item}' not found")
        out += matches
    return out


def _rules(doc: dict, file: str, rule_files: list[str]) -> tuple[RuleSpec, ...]:
    rules: list[RuleSpec] = []
    if "rules" in doc:
        rules += rules_from_document({"rules": doc["rules"]}, file)
    for path in rule_files:
        rules += rules_from_document(load_yaml(path), path)
    if not rules:
        raise SpecError(f"{at(file, doc)}: the job has no rules: give 'rules' or 'rules_from'")
    seen: dict[str, Where] = {}
    for r in rules:
        if r.name in seen:
            raise SpecError(f"{r.where}: duplicate rule name '{r.name}' (first at {seen[r.name]})")
        seen[r.name] = r.where
    return tuple(rules)


OUTPUT_KEYS = ("path", "quarantine")


def _output(doc: dict, file: str, key: str) -> str | None:
    """output.path (the results folder) or output.quarantine (valid/ and invalid/ rows)."""
    out = doc.get("output")
    if out is None:
        return None
    if isinstance(out, str):
        out = {"path": out}
    if not isinstance(out, dict) or not out or set(out) - set(OUTPUT_KEYS) \
            or not all(isinstance(v, str) and v for v in out.values()):
        bad = next((k for k in out if k not in OUTPUT_KEYS), None) if isinstance(out, dict) else None
        raise SpecError(f"{at(file, doc, 'output')}: 'output' must be {{path: folder, quarantine: folder}} "
                        "(either may be left out)" + (f"; got '{bad}'{suggest(str(bad), OUTPUT_KEYS)}" if bad else ""))
    return resolve(file, out[key]) if key in out else None


def _schema(doc: dict, file: str) -> str | None:
    value = doc.get("schema")
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        value = value["path"]
    if not isinstance(value, str):
        raise SpecError(f"{at(file, doc, 'schema')}: 'schema' must be {{path: data file}}")
    return resolve(file, value)


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
MIN_MEMORY_BUDGET = 1 << 20


def parse_size(value: object, what: str) -> int:
    """A byte count: an integer, or a number with a unit (512MB, 2 GiB, 1.5GB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value)) \
        if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    unit = match.group(2).lower() if match else None
    if unit not in SIZE_UNITS:
        raise SpecError(f"{what} must be a size such as 512MB or 2GiB, got {value!r}")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size < MIN_MEMORY_BUDGET:
        raise SpecError(f"{what} must be at least 1MiB, got {value!r}")
    return size


def _memory_budget(doc: dict, file: str) -> int | None:
    value = doc.get("memory_budget")
    return None if value is None else parse_size(value, f"{at(file, doc, 'memory_budget')}: 'memory_budget'")


def _history(doc: dict, file: str) -> str | None:
    value = doc.get("history")
    if value is None:
        return None
    if doc.get("kind") == "compile":
        raise SpecError(f"{at(file, doc, 'history')}: 'history' records validate runs; a compile job "
                        "has none to record")
    if isinstance(value, dict) and set(value) == {"path"}:
        value = value["path"]
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{at(file, doc, 'history')}: 'history' must be a database file path "
                        "(or {path: file}), e.g. history: ../out/history.sqlite")
    return resolve(file, value)
