"""Dataset-level checks: unique, not_null, aggregate, row_count, reference, freshness,
schema, and change / anomaly (a metric against past runs: history.py).

Each check follows the map → merge → finish interface of :mod:`.base` and declares what
it needs from the runtime (bucketed partials, a side input, row output), so it runs the
same in this process (:func:`run_checks`) and across Ray workers (batchaot/runtime).
Importing this package registers the kinds with compiler.compile_rules.
"""
from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable

import pyarrow as pa

from ..compiler import register_check
from ..spec import RuleSpec
from .base import CheckOutcome, DatasetCheck, Partial

if TYPE_CHECKING:
    from .reference import KeySet

__all__ = ["CheckOutcome", "DatasetCheck", "KeySet", "Partial", "build_check", "check_class", "run_checks",
           "KINDS"]

# kind -> (module, class). A kind's module is imported when a rule of that kind is built
# (or its class asked for): a run of row rules alone imports none of them, and the
# aggregate's parser (sqlglot) is not loaded for it.
_CLASSES = {"unique": ("unique", "UniqueCheck"), "not_null": ("not_null", "NotNullCheck"),
            "aggregate": ("aggregate", "AggregateCheck"), "row_count": ("row_count", "RowCountCheck"),
            "reference": ("reference", "ReferenceCheck"), "freshness": ("freshness", "FreshnessCheck"),
            "schema": ("schema", "SchemaCheck"), "change": ("history", "ChangeCheck"),
            "anomaly": ("history", "AnomalyCheck")}


def check_class(kind: str) -> type:
    module, name = _CLASSES[kind]
    return getattr(importlib.import_module(f".{module}", __name__), name)


def build_check(spec: RuleSpec, schema: pa.Schema) -> DatasetCheck:
    """The check for a dataset-level rule, its body validated against `schema`."""
    return check_class(spec.kind)(spec, schema)


for _kind in _CLASSES:                 # compiler.compile_rules builds checks through these
    register_check(_kind, build_check)


def __getattr__(name: str):
    if name == "KINDS":                 # every kind's class (imports them all)
        return {kind: check_class(kind) for kind in _CLASSES}
    if name == "KeySet":
        from .reference import KeySet
        return KeySet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_checks(checks: list[DatasetCheck], batches: Iterable[tuple[pa.RecordBatch, str, int]],
               threads: int = 1) -> list[CheckOutcome]:
    """Run `checks` in this process over (batch, source, first_row) triples.

    With `threads` > 1 the checks run concurrently, each mapping every batch and then
    finishing on one thread (their kernels release the GIL), so the batches are listed
    first. Checks share no state: the outcomes are those of a serial run.
    """
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, not {threads!r}")
    if threads == 1 or len(checks) < 2:
        partials: list[list[Partial]] = [[] for _ in checks]
        for batch, source, first_row in batches:
            for check, found in zip(checks, partials):
                found.append(check.map(batch, source, first_row))
        return [check.finish(check.merge(found)) for check, found in zip(checks, partials)]
    listed = list(batches)

    def run(check: DatasetCheck) -> CheckOutcome:
        return check.finish(check.merge([check.map(b, source, first) for b, source, first in listed]))
    with ThreadPoolExecutor(min(threads, len(checks)), thread_name_prefix="batchaot-checks") as workers:
        return list(workers.map(run, checks))
