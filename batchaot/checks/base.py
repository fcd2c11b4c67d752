"""The interface every dataset-level check follows, and what the checks share.

A check runs as map → merge → finish, so the same code runs in one process or across Ray
workers (batchaot/runtime calls exactly these methods):

* ``map(batch, source, first_row)`` looks at one batch of one work unit and returns a
  *partial*: small, picklable plain data (ints, numpy and Arrow arrays, sketch bytes).
  ``first_row`` is the row number of the batch's first row within ``source`` (a file
  path, or ``"<table>"``), so reported rows are rows a user can find in that file.
* ``merge(partials)`` combines partials. It is associative and order-independent: any
  split of the data into batches and units gives the same final answer.
* ``finish(partial)`` turns the merged partial into a :class:`CheckOutcome`.

Beyond that, a check **declares** what it needs from the runtime, as class attributes
(as DuckDB's aggregate functions declare their update/combine/finalize callbacks), and
the runtime reads the declaration — it never probes a check with ``hasattr``:

* ``partials``: :attr:`Partials.MERGED` — the partials meet where they are merged (the
  driver) and ``finish`` runs there. :attr:`Partials.BUCKETED` — a worker splits its
  unit's partial, ``split(partial) -> (head, buckets)``: a small head that travels with
  the counts, and ``buckets`` hash buckets, each finished on its own wherever its
  reducer runs (``finish_bucket(pieces) -> BucketResult``); ``outcome(head, results)``
  assembles the answer; ``partition(buckets)`` sets how many buckets (before any map:
  more for more data, runtime/spill.py). Its map may keep the batch's key column itself
  (zero-copy) and leave partitioning to ``split``, which only a run over work units
  calls: ``validate`` of data in memory finishes every batch at once.
* ``side_input``: :attr:`SideInput.NONE`; :attr:`SideInput.SHARED` — a state built
  once from another dataset (``shared_state()``, by the driver) that every worker takes
  (``use_shared_state(state)``); :attr:`SideInput.SHARED_OR_PARTITIONED` — the same,
  or, when the other dataset is large, ``partition(buckets)``: its units
  (``side_units()``, None when it cannot be planned in units) are mapped
  (``map_side(batch)``, reading ``side_columns``) into the same buckets as the checked
  rows, and the check's partials are then bucketed.
* ``row_output``: whether the check lists violating rows (in the violations layout of
  :mod:`batchaot.io.violations`), which the runtime writes as part files.
* ``reads_history``: the check compares with past runs (change, anomaly): before the run
  the driver calls ``load_history(past)``, ``past(rule, metric, limit)`` giving the
  metric's latest values in the run's metrics history (io/history.py).
* ``reads_results``: the check's value is another rule's count: once every rule has run,
  ``settle(outcome, violations)`` completes the outcome (``violations``: rule → count).
* ``metric_name``: the run-level metric a history records the check's value as (None:
  nothing beyond its per-rule metrics).

:class:`CheckBase` checks when a subclass is defined that it has the methods its
declaration promises.

An outcome's violating rows may be kept as row numbers (or bitmaps) and their table
built when first read (:class:`LazyOutcome`): finding them is the check's work,
taking their columns waits until a report asks for them.
"""
from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np
import pyarrow as pa

from ..compiler import compile_rule
from ..compiler.program import Program
from ..engine import parallel
from ..engine.run import Executor, RuleOutcome
from ..errors import RuleError, SpecError
from ..io import arrays, violations
from ..io.memory import shared_zeros
from ..io.violations import null_column, out_name, plain_type  # noqa: F401 (the checks' names for them)
from ..spec import RuleSpec, suggest

Partial = Any          # each check documents its own partial type
Piece = tuple[str, pa.Table]    # (source, table with a `row` column and the check's columns)
SAMPLE = 10            # keys listed in a summary's details; the violations files have them all


@dataclass
class CheckOutcome:
    """What a dataset-level check found.

    ``violating`` has the columns rule, source, row, then the check's columns, one row per
    violating row (None when no row violates; aggregates never have violating rows).
    """

    passed: bool
    violations: int
    rows: int
    value: float | int | None = None
    details: dict = field(default_factory=dict)
    violating: pa.Table | None = None


class LazyOutcome(CheckOutcome):
    """A CheckOutcome whose ``violating`` table is built by `build` when first read: the
    check kept which rows violate, and taking their columns waits until someone asks
    (Result.violations, a part file)."""

    def __init__(self, build: Callable[[], pa.Table | None], **fields: Any):
        super().__init__(**fields)
        self._build: Callable[[], pa.Table | None] | None = build

    @property
    def violating(self) -> pa.Table | None:
        if self._build is not None:
            self._table, self._build = self._build(), None
        return self._table

    @violating.setter
    def violating(self, table: pa.Table | None) -> None:
        self._table, self._build = table, None


def build_violating(outcomes: Sequence[CheckOutcome]) -> None:
    """Build the lazy violating tables of several checks at once, one per thread of the
    shared pool (their gathers and key kernels release the GIL)."""
    lazy = [o for o in outcomes if isinstance(o, LazyOutcome) and o._build is not None]
    parallel.run_parallel(lambda o: o.violating, lazy)


@dataclass
class BucketResult:
    """What finishing one bucket of a bucketed check (unique, partitioned reference) found."""

    violating: pa.Table | None       # source, row, the check's columns (None once written elsewhere)
    groups: pa.Table | None          # per key found: key columns, count, first_source, first_row
    rows: int = 0                    # violating rows (kept when `violating` is dropped)
    keys: int = 0                    # keys found (kept when `groups` is trimmed)
    ref_keys: int = 0                # partitioned reference: distinct referenced keys in the bucket

    def __post_init__(self) -> None:
        if self.violating is not None:
            self.rows = self.violating.num_rows
        if self.groups is not None:
            self.keys = self.groups.num_rows

    def trim(self) -> None:
        """Keep the counts and only the keys a summary can show: the SAMPLE most frequent
        (ties: first seen) of every bucket hold the SAMPLE most frequent of all buckets.
        What a reducer sends back to a driver, whatever the number of keys."""
        self.violating = None
        if self.groups is not None and self.groups.num_rows > SAMPLE:
            g = self.groups
            src = g.schema.get_field_index("first_source")
            if pa.types.is_dictionary(g.schema.field(src).type):
                g = g.set_column(src, "first_source", g.column(src).cast(pa.string()))
            self.groups = g.sort_by([("count", "descending"), ("first_source", "ascending"),
                                     ("first_row", "ascending")]).slice(0, SAMPLE)


class Partials(enum.Enum):
    """Where a check's partials are finished (see the module docstring)."""

    MERGED = "merged"          # merge → finish where the partials meet
    BUCKETED = "bucketed"      # split → finish_bucket per bucket → outcome


class SideInput(enum.Enum):
    """What a check needs from a dataset other than the one checked."""

    NONE = "none"
    SHARED = "shared"                                   # shared_state / use_shared_state
    SHARED_OR_PARTITIONED = "shared or partitioned"     # ... or partition / side_units / map_side


# the methods each declaration promises (checked when a CheckBase subclass is defined)
PROMISES = {
    "reads_history": ("load_history",),
    "reads_results": ("settle",),
    Partials.BUCKETED: ("partition", "split", "finish_bucket", "outcome", "labelled"),
    SideInput.SHARED: ("shared_state", "use_shared_state"),
    SideInput.SHARED_OR_PARTITIONED: ("shared_state", "use_shared_state", "partition", "side_units",
                                      "map_side", "split", "finish_bucket", "outcome", "labelled"),
}


@runtime_checkable
class DatasetCheck(Protocol):
    spec: RuleSpec
    columns: list[str]                      # columns the map side reads
    out_columns: list[str]                  # the check's own columns (shown with violating rows)
    partials: ClassVar[Partials]
    side_input: ClassVar[SideInput]
    row_output: ClassVar[bool]

    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> Partial: ...

    def merge(self, partials: list[Partial]) -> Partial: ...

    def finish(self, partial: Partial) -> CheckOutcome: ...


# --- errors -----------------------------------------------------------------------

def spec_error(spec: RuleSpec, message: str) -> SpecError:
    """A malformed check body: file:line of the rule, its name, and what to write instead."""
    return SpecError(f"{spec.where}: rule '{spec.name}': {message}")


def resolve_column(spec: RuleSpec, name: Any, schema: pa.Schema, what: str = "column") -> str:
    """The schema's name for `name` (case-insensitive if unambiguous), else a RuleError."""
    if not isinstance(name, str) or not name:
        raise spec_error(spec, f"{what} names must be non-empty strings, got {name!r}")
    if name in schema.names:
        return name
    folded = [n for n in schema.names if n.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    hint = suggest(name, schema.names) or f" (columns are: {', '.join(schema.names[:20])})"
    raise RuleError(spec.name, f"unknown {what} '{name}'{hint}")


def column_list(spec: RuleSpec, value: Any, field_name: str) -> list:
    """A YAML value that may be one column name or a list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise spec_error(spec, f"'{field_name}' must be a column name or a non-empty list of "
                         f"column names, got {value!r}")
    if len(set(items)) != len(items):
        raise spec_error(spec, f"'{field_name}' lists a column twice: {items}")
    return items


def no_mostly(spec: RuleSpec) -> None:
    if spec.mostly is not None:
        raise spec_error(spec, f"'mostly' does not apply to {spec.kind} (it is one fact about the "
                         "whole dataset, not a fraction of rows); use between/equals")


def passes(violations: int, rows: int, mostly: float | None) -> bool:
    """As for row rules: no violation, or at least `mostly` of the rows passing."""
    if mostly is None:
        return violations == 0
    return rows == 0 or (rows - violations) / rows >= mostly


# --- bounds (between / equals) ------------------------------------------------------

@dataclass(frozen=True)
class Bounds:
    lo: float | int | None = None
    hi: float | int | None = None
    equals: float | int | None = None

    @classmethod
    def parse(cls, spec: RuleSpec, options: dict, example: str) -> "Bounds":
        between, equals = options.get("between"), options.get("equals")
        if between is None and equals is None:
            raise spec_error(spec, f"give 'between: [lo, hi]' or 'equals: n', e.g. {example}")
        if between is not None and equals is not None:
            raise spec_error(spec, "give 'between' or 'equals', not both")
        if equals is not None:
            return cls(equals=_number(spec, equals, "equals"))
        if not isinstance(between, list) or len(between) != 2:
            raise spec_error(spec, f"'between' must be [lo, hi] (null for an open end), got {between!r}")
        lo, hi = (None if b is None else _number(spec, b, "between") for b in between)
        if lo is None and hi is None:
            raise spec_error(spec, "'between: [null, null]' checks nothing; give at least one bound")
        if lo is not None and hi is not None and lo > hi:
            raise spec_error(spec, f"'between: [{lo}, {hi}]' is empty: the low bound is above the high one")
        return cls(lo, hi)

    def holds(self, value: float | int | None) -> bool:
        if value is None:
            return False
        if isinstance(value, float) and math.isnan(value):
            # SQL orders NaN above every number: it satisfies only an open upper end
            return self.equals is None and self.hi is None
        if self.equals is not None:
            return value == self.equals
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def describe(self) -> str:
        if self.equals is not None:
            return f"= {self.equals}"
        return f"between [{_end(self.lo)}, {_end(self.hi)}]"


def _number(spec: RuleSpec, value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise spec_error(spec, f"'{what}' bounds must be numbers, got {value!r}")
    return value


def _end(v: float | int | None) -> str:
    return "null" if v is None else str(v)


# --- where: the row filter ----------------------------------------------------------

class RowFilter:
    """The rows of a batch where the check's ``where:`` predicate is TRUE.

    The predicate is compiled like any row rule and run by the VM; compiling it `strict`
    makes the VM report the rows where it is NOT TRUE, whose complement is what counts.
    """

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        sql = spec.options.get("where")
        self.program: Program | None = None
        self._executor: Executor | None = None
        if sql is None:
            return
        if not isinstance(sql, str) or not sql.strip():
            raise spec_error(spec, f"'where' must be a SQL predicate string, got {sql!r}")
        try:
            self.program = compile_rule(spec.name, sql, schema, strict=True)
        except RuleError as exc:
            raise RuleError(spec.name, f"where: {exc.detail}") from None

    @property
    def active(self) -> bool:
        return self.program is not None and not self.program.zero_tick

    def select(self, batch: pa.RecordBatch) -> np.ndarray | None:
        """Indices of the rows to check, or None for all of them."""
        if not self.active or batch.num_rows == 0:
            return None
        if self._executor is None:
            self._executor = Executor()
        outcome = RuleOutcome(self.program.name)
        self._executor.evaluate_batch([self.program], batch, 0, [outcome])
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[outcome.row_ids] = False
        return np.flatnonzero(keep)

    def __getstate__(self) -> dict:
        # the executor owns a C memory pool: each process builds its own
        return {"program": self.program, "_executor": None}


# --- the shared skeleton of a check ---------------------------------------------------

class CheckBase:
    """Common parts: spec, schema, columns, row filter, and what `batchaot inspect` lists.

    A subclass declares what it needs from the runtime (module docstring); the defaults
    are the plainest check: partials merged on the driver, no side input, no rows."""

    partials: ClassVar[Partials] = Partials.MERGED
    side_input: ClassVar[SideInput] = SideInput.NONE
    row_output: ClassVar[bool] = False
    reads_history: ClassVar[bool] = False
    reads_results: ClassVar[bool] = False
    metric_name: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for declared in (cls.partials, cls.side_input):
            missing = [m for m in PROMISES.get(declared, ()) if not callable(getattr(cls, m, None))]
            if missing:
                raise TypeError(f"{cls.__name__} declares {type(declared).__name__}.{declared.name} "
                                f"but has no {', '.join(missing)}")
        for flag in ("reads_history", "reads_results"):
            missing = [m for m in PROMISES[flag] if getattr(cls, flag) and not callable(getattr(cls, m, None))]
            if missing:
                raise TypeError(f"{cls.__name__} declares {flag} but has no {', '.join(missing)}")

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        self.spec = spec
        self.schema = schema
        self.out_columns: list[str] = []       # the check's own columns, shown with violations
        self.filter = RowFilter(spec, schema)

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        """One line saying what the check computes, for summaries and listings."""
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        """Every column map reads: the check's own and those of its where predicate."""
        extra = self.filter.program.column_names if self.filter.program is not None else []
        return list(dict.fromkeys(self.out_columns + extra))

    def rows_of(self, batch: pa.RecordBatch, first_row: int) -> tuple[pa.RecordBatch, np.ndarray | None]:
        """(the batch's rows that pass `where`, restricted to the check's columns; their
        row numbers within the source, or None meaning first_row + 0..n-1)."""
        picked = self.filter.select(batch)
        sub = batch.select(self.out_columns)
        if picked is None:
            return sub, None
        return sub.take(pa.array(picked)), picked + first_row

    def keyed_rows(self, batch: pa.RecordBatch, first_row: int) -> tuple[pa.RecordBatch, np.ndarray, int]:
        """Rows passing `where` whose key columns are all non-NULL (SQL: a NULL key never
        matches), their row numbers, and how many rows passed `where` at all."""
        sub, rows = self.rows_of(batch, first_row)
        rows = row_numbers(rows, first_row, sub.num_rows)
        checked = sub.num_rows
        from . import keys          # Numba's kernels: dataset checks only
        valid = keys.valid_rows(sub.columns)
        if valid is not None:
            sub, rows = sub.filter(pa.array(valid)), rows[valid]
        return sub, rows, checked

    def labelled(self, table: pa.Table) -> pa.Table | None:
        """(source, row, columns...) rows as this check's violating rows."""
        return with_rule(self.name, table)

    # Program-like view, so `batchaot inspect` can list dataset checks with row rules.
    zero_tick = False
    verdict = "unknown"

    @property
    def source(self) -> str:
        return self.describe()

    @property
    def hash(self) -> str:
        return self.filter.program.hash if self.filter.program is not None else ""

    @property
    def size(self) -> tuple[int, int]:
        return self.filter.program.size if self.filter.program is not None else (0, 0)

    @property
    def removed(self) -> dict:
        return self.filter.program.removed if self.filter.program is not None else {}

    def disassemble(self, which: str = "both") -> str:
        head = f"; rule {self.name}: dataset-level {self.spec.kind} check: {self.describe()}"
        if self.filter.program is None:
            return head + "\n; (no bytecode: runs as map/merge/finish over the batches)"
        return head + "\n; where:\n" + self.filter.program.disassemble(which)


def most_repeated(counts: np.ndarray, pick_ties: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Indices of the SAMPLE largest counts, unordered; of the keys tied at the cut,
    pick_ties(tied, k) chooses k (a check's own tie order)."""
    pick = np.arange(len(counts))
    if len(counts) > SAMPLE:
        threshold = np.partition(counts, len(counts) - SAMPLE)[len(counts) - SAMPLE]
        above = np.flatnonzero(counts > threshold)
        tied = np.flatnonzero(counts == threshold)
        need = SAMPLE - len(above)
        if len(tied) > need:
            tied = pick_ties(tied, need) if need else tied[:0]
        pick = np.concatenate([above, tied])
    return pick


def bucketed(source: str, table: pa.Table, hashes: np.ndarray, buckets: int) -> list[list[Piece]]:
    """The rows of `table` as one piece per bucket, by the top bits of their hashes."""
    if buckets == 1:
        return [[(source, table)]]
    from . import keys
    order, bounds = keys.partition(hashes, buckets)
    shuffled = table.take(pa.array(order))
    return [[(source, shuffled.slice(bounds[b], bounds[b + 1] - bounds[b]))] for b in range(buckets)]


def row_numbers(rows: np.ndarray | None, first_row: int, n: int) -> np.ndarray:
    return np.arange(first_row, first_row + n, dtype=np.int64) if rows is None else rows


# --- violating rows -----------------------------------------------------------------

def piece(source: str, rows: np.ndarray, columns: dict[str, pa.Array]) -> Piece:
    """Violating rows of one batch: their row numbers and the check's column values."""
    arrays = {violations.ROW: pa.array(rows, pa.int64())}
    arrays.update({out_name(k): v.cast(plain_type(v.type)) for k, v in columns.items()})
    return source, pa.table(arrays)


def violating_table(rule: str, pieces: Sequence[Piece]) -> pa.Table | None:
    """rule, source, row, the check's columns — sorted by (source, row), whatever the split."""
    parts = [t.add_column(0, violations.SOURCE, arrays.repeated(s, t.num_rows))
             for s, t in pieces if t.num_rows]
    if not parts:
        return None
    return with_rule(rule, pa.concat_tables(parts, promote_options="permissive"))


def violating_columns(rule: str, sources: dict[str, int], rows: np.ndarray,
                      columns: dict[str, pa.Array]) -> pa.Table:
    """rule, source, row, columns: violating rows already in (source, row) order, where
    `sources` gives each source's number of rows, in order."""
    index = index_type(len(sources))
    codes = shared_zeros(len(rows), index) if len(sources) == 1 else \
        np.repeat(np.arange(len(sources), dtype=index), list(sources.values()))
    return coded_violating(rule, list(sources), codes, rows, columns)


def coded_violating(rule: str, sources: list[str], codes: np.ndarray, rows: np.ndarray,
                    columns: dict[str, pa.Array]) -> pa.Table:
    """rule, source, row, columns, with each row's source as its index in `sources`. Rule
    and source are dictionary-encoded, so a constant one costs no memory per row."""
    rule_codes = shared_zeros(len(rows), np.int8)
    return pa.table({violations.RULE: coded(rule_codes, arrays.strings([rule])),
                     violations.SOURCE: coded(codes, arrays.strings(sources)),
                     violations.ROW: rows, **columns})


def coded(codes: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """A dictionary array over codes this package computed, in range by construction: not
    checked again (Arrow's check is one more pass over every row)."""
    return pa.DictionaryArray.from_arrays(codes, dictionary, safe=False)


def index_type(n: int) -> type:
    """The smallest dictionary index type for n entries."""
    return np.int8 if n <= 127 else np.int16 if n <= 32767 else np.int32


def with_rule(rule: str, table: pa.Table) -> pa.Table | None:
    """A (source, row, columns...) table as violating rows (io/violations.py's layout):
    the rule first, sorted by position."""
    if table.num_rows == 0:
        return None
    table = table.sort_by([(violations.SOURCE, "ascending"), (violations.ROW, "ascending")])
    return table.add_column(0, violations.RULE, arrays.repeated(rule, table.num_rows))


def jsonable(value: Any) -> Any:
    """A value from Arrow or numpy as something json.dumps writes as standard JSON."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
