"""The engines batchaot is measured against, each counting rule violations its own way.

Every engine (batchaot VM and fused, DuckDB, Polars lazy, pyarrow.compute, pandas,
pandera on Polars, cuallee on Polars and on DuckDB, Great Expectations on pandas) is
one function, registered in ENGINES:

    prepare_<engine>(table, rules, threads) -> run

It takes the same in-memory Arrow table and a list of datagen.Rule, does its untimed
set-up (converting the table into the engine's own format, compiling rules, building a
schema or a Check), and returns `run`, a function of no arguments that does the timed
work and returns the number of violations per rule, in rule order. `counts(engine,
table, rules)` does both in one call. WIDE_ENGINES, at the end, do the same for the
not-null and unique checks of the cuallee-paper shape.

The contract is batchaot's: a row violates a rule iff the SQL predicate is FALSE; a
NULL predicate passes (DuckDB's `count(*) FILTER (WHERE NOT (pred))`). Each engine's
hand-written translation is aligned to it; where a tool's own NULL semantics differ,
the comment at its translations says how and what was done about it.

Thread counts: call `configure_threads(n)` before anything imports polars, because
Polars sizes its pool from POLARS_MAX_THREADS once, at import. bench_peers.py runs
each engine in its own process for that reason. Heavy imports happen inside the
prepare functions, so importing this module costs nothing and imports no engine.
"""
from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from datagen import COUNTRIES, STATUSES, Rule

Run = Callable[[], list[int]]
ENGINES: dict[str, Callable[[pa.Table, list[Rule], int], Run]] = {}

D2024 = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
COUNTRIES_LOWER = [c.lower() for c in COUNTRIES]


class Unavailable(RuntimeError):
    """The engine cannot run here (not installed, or a feature it needs is missing)."""


def engine(name: str):
    def register(fn):
        ENGINES[name] = fn
        return fn
    return register


def counts(name: str, table: pa.Table, rules: list[Rule], threads: int = 1) -> list[int]:
    return ENGINES[name](table, rules, threads)()


def configure_threads(n: int) -> None:
    """Give every engine in this process n threads (before polars is imported)."""
    import sys
    if "polars" in sys.modules and sys.modules["polars"].thread_pool_size() != n:
        raise RuntimeError("polars was imported before configure_threads(): its pool is fixed")
    os.environ["POLARS_MAX_THREADS"] = str(n)
    os.environ["NUMBA_NUM_THREADS"] = str(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    pa.set_cpu_count(n)
    pa.set_io_thread_count(n)


def versions() -> dict[str, str | None]:
    out = {}
    for mod in ["batchaot", "pyarrow", "duckdb", "polars", "pandas", "numpy", "numba",
                "pandera", "cuallee", "great_expectations"]:
        try:        # the installed distribution's version: some __version__ attributes lag
            out[mod] = importlib.metadata.version(mod)
        except importlib.metadata.PackageNotFoundError:
            m = importlib.util.find_spec(mod)
            out[mod] = getattr(importlib.import_module(mod), "__version__", None) if m else None
    return out


def _missing(rules: list[Rule], table: dict) -> None:
    absent = [r.name for r in rules if r.name not in table]
    if absent:
        raise Unavailable(f"no translation for rule(s) {', '.join(absent)}")


# --- batchaot -------------------------------------------------------------------------

def _batchaot(table: pa.Table, rules: list[Rule], threads: int, engine_name: str) -> Run:
    from batchaot.api import BATCH_ROWS, compile_rules, load_rule_specs
    from batchaot.engine.run import Executor
    from batchaot.io.memory import use_process_pool
    use_process_pool()                 # as every batchaot run does (validate, Job.run, the CLI)
    specs = load_rule_specs([{"name": r.name, "check": r.sql} for r in rules])
    programs = compile_rules(specs, table.schema)
    try:
        executor = Executor(engine=engine_name, threads=threads)
    except (TypeError, ValueError) as err:     # an older Executor without this engine
        raise Unavailable(f"Executor(engine={engine_name!r}, threads={threads}): {err}") from err
    batches = table.to_batches(max_chunksize=BATCH_ROWS)

    def run() -> list[int]:
        return [o.violations for o in executor.evaluate(programs, batches)]
    return run


@engine("batchaot-vm")
def prepare_batchaot_vm(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    return _batchaot(table, rules, threads, "vm")


@engine("batchaot-fused")
def prepare_batchaot_fused(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # the first run compiles (or loads from the disk cache) the kernel: the harness's
    # untimed warm-up run pays it and reports it as first_run_s
    return _batchaot(table, rules, threads, "fused")


# --- DuckDB: the oracle, the SQL text as is ------------------------------------------

@engine("duckdb")
def prepare_duckdb(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("t", table)
    sql = "SELECT " + ", ".join(f"count(*) FILTER (WHERE NOT ({r.sql}))" for r in rules) + " FROM t"

    def run() -> list[int]:
        return [int(v) for v in con.execute(sql).fetchone()]
    return run


# --- Polars lazy ------------------------------------------------------------------------
# Polars has SQL's NULL semantics: comparisons and string functions give null on null,
# & and | are Kleene, is_in gives null for a null input. `(~pred).sum()` counts FALSE
# only (sum skips nulls), which is exactly NOT (pred) under FILTER. No adjustment.

def polars_exprs() -> dict[str, "object"]:
    import polars as pl
    c = pl.col
    return {
        "amount_positive": c("amount") > 0,
        "quantity_range": c("quantity").is_between(1, 100),
        "discount_bounds": (c("discount") >= 0) & (c("discount") <= c("amount")),
        "line_total_cap": c("amount") * c("quantity") <= 25000,
        "score_z": c("score").abs() <= 4,
        "customer_positive": c("customer_id") > 0,
        "created_in_2024": c("created_date").is_between(*D2024),
        "updated_after_created": c("updated_at").is_null()
                                 | (c("updated_at") >= c("created_date").cast(pl.Datetime("us"))),
        "status_known": c("status").is_in(STATUSES),
        "email_shape": c("email").str.contains(r"^[^@]+@[^@]+$"),
        "email_like": c("email").str.contains(r"^.*@.*\..*$"),
        "email_length": c("email").str.len_chars().is_between(6, 40),
        "country_known": c("country").str.to_lowercase().is_in(COUNTRIES_LOWER),
        "sku_prefix": c("sku").str.starts_with("SKU-"),
        "comment_length": c("comment").str.len_chars() <= 80,
        "comment_calm": ~c("comment").str.contains("URGENT|ASAP"),
    }


@engine("polars")
def prepare_polars(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    import polars as pl
    exprs = polars_exprs()
    # a rule without a hand-written translation (generated rules): Polars reads its SQL
    exprs.update({r.name: pl.sql_expr(r.sql) for r in rules if r.name not in exprs})
    frame = pl.from_arrow(table).lazy()
    query = frame.select([(~exprs[r.name]).sum().alias(f"r{i}") for i, r in enumerate(rules)])

    def run() -> list[int]:
        return [int(v) for v in query.collect().row(0)]
    return run


# --- pyarrow.compute --------------------------------------------------------------------
# Comparisons, arithmetic and string kernels give null on null and and_kleene/or_kleene
# are three-valued, but is_in gives FALSE for a null input (it matches nulls against the
# value set instead of propagating): the IN translations put the null back. sum() of a
# boolean array counts TRUE and skips nulls.

def _arrow_in(values, allowed: list[str]):
    hit = pc.is_in(values, value_set=pa.array(allowed, pa.string()))
    return pc.if_else(pc.is_valid(values), hit, pa.scalar(None, pa.bool_()))


def pyarrow_preds() -> dict[str, Callable]:
    date = lambda d: pa.scalar(d, pa.date32())
    return {
        "amount_positive": lambda t: pc.greater(t["amount"], 0),
        "quantity_range": lambda t: pc.and_kleene(pc.greater_equal(t["quantity"], 1),
                                                  pc.less_equal(t["quantity"], 100)),
        "discount_bounds": lambda t: pc.and_kleene(pc.greater_equal(t["discount"], 0),
                                                   pc.less_equal(t["discount"], t["amount"])),
        "line_total_cap": lambda t: pc.less_equal(pc.multiply(t["amount"], t["quantity"]), 25000),
        "score_z": lambda t: pc.less_equal(pc.abs(t["score"]), 4),
        "customer_positive": lambda t: pc.greater(t["customer_id"], 0),
        "created_in_2024": lambda t: pc.and_kleene(pc.greater_equal(t["created_date"], date(D2024[0])),
                                                   pc.less_equal(t["created_date"], date(D2024[1]))),
        "updated_after_created": lambda t: pc.or_kleene(
            pc.is_null(t["updated_at"]),
            pc.greater_equal(t["updated_at"], pc.cast(t["created_date"], pa.timestamp("us")))),
        "status_known": lambda t: _arrow_in(t["status"], STATUSES),
        "email_shape": lambda t: pc.match_substring_regex(t["email"], r"^[^@]+@[^@]+$"),
        "email_like": lambda t: pc.match_like(t["email"], "%@%.%"),
        "email_length": lambda t: pc.and_kleene(pc.greater_equal(pc.utf8_length(t["email"]), 6),
                                                pc.less_equal(pc.utf8_length(t["email"]), 40)),
        "country_known": lambda t: _arrow_in(pc.utf8_lower(t["country"]), COUNTRIES_LOWER),
        "sku_prefix": lambda t: pc.starts_with(t["sku"], "SKU-"),
        "comment_length": lambda t: pc.less_equal(pc.utf8_length(t["comment"]), 80),
        "comment_calm": lambda t: pc.invert(pc.match_substring_regex(t["comment"], "URGENT|ASAP")),
    }


@engine("pyarrow")
def prepare_pyarrow(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    preds = pyarrow_preds()
    _missing(rules, preds)
    fns = [preds[r.name] for r in rules]

    def violations(part) -> list[int]:
        return [pc.sum(pc.invert(fn(part)), min_count=0).as_py() for fn in fns]

    if threads == 1:
        return lambda: violations(table)
    # the kernels are single-threaded: with more threads, record batches run concurrently
    # (pyarrow releases the GIL inside kernels), as a user would do it by hand
    batches = table.to_batches()
    pool = ThreadPoolExecutor(threads)

    def run() -> list[int]:
        return [sum(col) for col in zip(*pool.map(violations, batches))]
    return run


# --- pandas (numpy dtypes, pandas' defaults) --------------------------------------------
# pandas has no three-valued logic: NULL becomes NaN (NaT for times; an int column with
# NULLs becomes float), every comparison with NaN is False, and isin / str methods on a
# missing string give False. So each translation is written as the VIOLATION mask, "the
# predicate is definitely FALSE": a complement comparison (`amount <= 0` for
# `amount > 0`) is False on NaN, which makes NULL pass; where a complement does not do
# it (isin, str methods, OR with IS NULL), the mask adds `notna()` or `na=True` by hand.

def pandas_violations() -> dict[str, Callable]:
    import pandas as pd
    lo, hi = (pd.Timestamp(d) for d in D2024)

    def str_in(s, allowed):
        return s.notna() & ~s.isin(allowed)
    return {
        "amount_positive": lambda d: d["amount"] <= 0,
        "quantity_range": lambda d: (d["quantity"] < 1) | (d["quantity"] > 100),
        # AND is FALSE iff one conjunct is FALSE: each complement is False on NaN
        "discount_bounds": lambda d: (d["discount"] < 0) | (d["discount"] > d["amount"]),
        "line_total_cap": lambda d: d["amount"] * d["quantity"] > 25000,
        "score_z": lambda d: d["score"].abs() > 4,
        "customer_positive": lambda d: d["customer_id"] <= 0,
        "created_in_2024": lambda d: (d["created_date"] < lo) | (d["created_date"] > hi),
        # IS NULL OR x: FALSE iff updated_at is present and before created_date (NaT < x is False)
        "updated_after_created": lambda d: d["updated_at"] < d["created_date"],
        "status_known": lambda d: str_in(d["status"], STATUSES),
        "email_shape": lambda d: ~d["email"].str.contains(r"^[^@]+@[^@]+$", na=True),
        "email_like": lambda d: ~d["email"].str.contains(r"^.*@.*\..*$", na=True),
        "email_length": lambda d: (d["email"].str.len() < 6) | (d["email"].str.len() > 40),
        "country_known": lambda d: str_in(d["country"].str.lower(), COUNTRIES_LOWER),
        "sku_prefix": lambda d: ~d["sku"].str.startswith("SKU-", na=True),
        "comment_length": lambda d: d["comment"].str.len() > 80,
        # NOT (matches) is FALSE iff it matches; na=False keeps missing comments out
        "comment_calm": lambda d: d["comment"].str.contains("URGENT|ASAP", na=False),
    }


@engine("pandas")
def prepare_pandas(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # single-threaded whatever `threads` says: pandas has no parallel kernels for this
    masks = pandas_violations()
    _missing(rules, masks)
    frame = table.to_pandas(date_as_object=False)
    fns = [masks[r.name] for r in rules]

    def run() -> list[int]:
        return [int(fn(frame).sum()) for fn in fns]
    return run


# --- pandera, Polars backend -------------------------------------------------------------
# With `nullable=True` columns and Check(ignore_na=True) (the default), pandera's Polars
# backend turns a null check result into a pass: SQL's semantics, no adjustment. (With
# nullable=False every NULL would be reported as a `not_nullable` failure, and with
# ignore_na=False a null result would fail.) Built-in checks where pandera has one; a
# custom Polars-expression check otherwise, on the column or, for rules over several
# columns, on the whole frame. Counts come from the SchemaErrors report: one
# failure-case row per failing row and check.

def _pandera_checks(rules: list[Rule]) -> tuple[dict[str, list], list, list[tuple]]:
    """(column -> checks, frame checks, the (column or None, check number) of each rule)."""
    import pandera.polars as pap
    C = pap.Check
    exprs = polars_exprs()

    def expr_check(name: str):
        return C(lambda data, e=exprs[name]: data.lazyframe.select(e), name=name)

    column_checks = {
        "amount_positive": ("amount", lambda: C.gt(0)),
        "quantity_range": ("quantity", lambda: C.in_range(1, 100)),
        "score_z": ("score", lambda: C.in_range(-4, 4)),
        "customer_positive": ("customer_id", lambda: C.gt(0)),
        "created_in_2024": ("created_date", lambda: C.in_range(*D2024)),
        "status_known": ("status", lambda: C.isin(STATUSES)),
        "email_shape": ("email", lambda: C.str_matches(r"^[^@]+@[^@]+$")),
        "email_like": ("email", lambda: expr_check("email_like")),
        "email_length": ("email", lambda: C.str_length(6, 40)),
        "country_known": ("country", lambda: expr_check("country_known")),
        "sku_prefix": ("sku", lambda: C.str_startswith("SKU-")),
        "comment_length": ("comment", lambda: C.str_length(max_value=80)),
        "comment_calm": ("comment", lambda: expr_check("comment_calm")),
    }
    frame_rules = {"discount_bounds", "line_total_cap", "updated_after_created"}
    _missing(rules, {**column_checks, **{n: None for n in frame_rules}})
    by_column: dict[str, list] = {}
    frame: list = []
    where: list[tuple] = []
    for r in rules:
        if r.name in frame_rules:
            where.append((None, len(frame)))
            frame.append(expr_check(r.name))
        else:
            col, make = column_checks[r.name]
            checks = by_column.setdefault(col, [])
            where.append((col, len(checks)))
            checks.append(make())
    return by_column, frame, where


def _pandera_failures(schema, df, by: str) -> dict | None:
    """Failure counts per (column, `by`) of a lazy pandera validation; None if it passed."""
    import pandera.errors
    try:
        schema.validate(df, lazy=True)
        return None
    except pandera.errors.SchemaErrors as err:
        report = err.failure_cases
    return {(column, key): n for column, key, n in report.group_by("column", by).len().iter_rows()}


@engine("pandera")
def prepare_pandera(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    import pandera.polars as pap
    import polars as pl
    by_column, frame_checks, where = _pandera_checks(rules)
    schema = pap.DataFrameSchema(
        {col: pap.Column(checks=checks, nullable=True) for col, checks in by_column.items()},
        checks=frame_checks)
    df = pl.from_arrow(table)

    def run() -> list[int]:
        found = _pandera_failures(schema, df, "check_number")
        if found is None:
            return [0] * len(rules)
        unexpected = set(found) - set(where)
        if unexpected:     # e.g. a dtype or not_nullable failure: not one of our rules
            raise RuntimeError(f"pandera reported failures outside the rules: {sorted(unexpected, key=str)}")
        return [found.get(w, 0) for w in where]
    return run


# --- cuallee ------------------------------------------------------------------------------
# cuallee counts violations as rows - (rows where the predicate is TRUE), so a NULL
# predicate is a violation. Two ways back to SQL's semantics, both inside the timed run:
#  * native checks on a single column (is_greater_than, is_between, is_contained_in,
#    has_pattern) on a column with NULLs: the same Check also runs is_complete(column),
#    whose violations are that column's NULLs, and they are subtracted (a NULL in the
#    column is exactly when such a predicate is NULL);
#  * satisfies("...") for everything else, the predicate written as
#    coalesce((pred), TRUE) in the backend's SQL (Polars SQL or DuckDB).
# cuallee merges identical rules (same method, column and value), so rules are keyed.

def _cuallee_plan(rules: list[Rule], backend: str) -> list[tuple[str, str, object]]:
    """(method, column, argument) per rule, native where cuallee has a check for it."""
    regexp = "regexp_like" if backend == "polars" else "regexp_matches"
    between_dates = D2024 if backend == "polars" else tuple(str(d) for d in D2024)
    native = {
        "amount_positive": ("is_greater_than", "amount", 0),
        "quantity_range": ("is_between", "quantity", (1, 100)),
        "score_z": ("is_between", "score", (-4, 4)),      # |score| <= 4 as a range
        "customer_positive": ("is_greater_than", "customer_id", 0),
        "created_in_2024": ("is_between", "created_date", between_dates),
        "status_known": ("is_contained_in", "status", tuple(STATUSES)),
        "email_shape": ("has_pattern", "email", r"^[^@]+@[^@]+$"),
        "sku_prefix": ("has_pattern", "sku", "^SKU-"),
    }
    sql = {
        "discount_bounds": ("discount", "discount >= 0 AND discount <= amount"),
        "line_total_cap": ("amount", "amount * quantity <= 25000"),
        "updated_after_created": ("updated_at", "updated_at IS NULL OR updated_at >= created_date"),
        "email_like": ("email", "email LIKE '%@%.%'"),
        "email_length": ("email", "length(email) BETWEEN 6 AND 40"),
        "country_known": ("country", "lower(country) IN ('de', 'fr', 'us', 'jp', 'br', 'gb')"),
        "comment_length": ("comment", "length(comment) <= 80"),
        "comment_calm": ("comment", f"NOT {regexp}(comment, 'URGENT|ASAP')"),
    }
    _missing(rules, {**native, **sql})
    return [native[r.name] if r.name in native
            else ("satisfies", sql[r.name][0], f"coalesce(({sql[r.name][1]}), TRUE)") for r in rules]


def _cuallee_check(table: pa.Table, rules: list[Rule], backend: str, **kw):
    """A Check and, per rule, (row of the rule, row of its NULL correction or None)."""
    from cuallee import Check, CheckLevel
    check = Check(CheckLevel.WARNING, "batchaot-bench", **kw)
    index: dict[tuple, int] = {}

    def add(method: str, column: str, arg=None) -> int:
        key = (method, column, repr(arg))
        if key not in index:
            getattr(check, method)(column, *([] if arg is None else [arg]))
            index[key] = len(index)
        return index[key]

    rows = []
    for method, column, arg in _cuallee_plan(rules, backend):
        main = add(method, column, arg)
        fix = add("is_complete", column) if method != "satisfies" and table[column].null_count else None
        rows.append((main, fix))
    if len(check._rule) != len(index):      # cuallee merged two rules we keep apart
        raise RuntimeError(f"cuallee has {len(check._rule)} rules, expected {len(index)}")
    return check, rows


def _cuallee_counts(violations: list[int], rows: list[tuple]) -> list[int]:
    return [violations[m] - (violations[f] if f is not None else 0) for m, f in rows]


@engine("cuallee-polars")
def prepare_cuallee_polars(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    import polars as pl
    check, rows = _cuallee_check(table, rules, "polars")
    df = pl.from_arrow(table)

    def run() -> list[int]:
        report = check.validate(df)      # one Polars query per rule
        return _cuallee_counts([int(v) for v in report.sort("id")["violations"]], rows)
    return run


@engine("cuallee-duckdb")
def prepare_cuallee_duckdb(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("t", table)
    check, rows = _cuallee_check(table, rules, "duckdb", table_name="t")

    def run() -> list[int]:
        report = check.validate(con)     # one SQL query for all rules, plus a count(*)
        return _cuallee_counts([int(v) for v in report.sort_values("id")["violations"]], rows)
    return run


# --- Great Expectations, pandas backend ----------------------------------------------------
# GX's column-map expectations leave missing values out ("unexpected" counts only
# non-null values that fail; pair expectations skip a row with ignore_row_if=
# "either_value_is_missing"): SQL's NULL-passes semantics, no adjustment. Where a rule is
# not one expectation: `discount >= 0 AND discount <= amount` is two, and its violations
# are the union of their unexpected rows (result_format COMPLETE, a second validation
# of just those); `amount * quantity` has no expectation on pandas, so the timed run
# adds it as a derived column first, as a GX user would. `lower(country) IN (...)` is a
# case-insensitive full regex match (same thing for ASCII text).

def _gx_expectations() -> dict[str, tuple]:
    import great_expectations.expectations as gxe
    import pandas as pd
    between, regex = gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToMatchRegex
    lengths = gxe.ExpectColumnValueLengthsToBeBetween

    def a_ge_b(a: str, b: str):
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing")
    lo, hi = (pd.Timestamp(d) for d in D2024)
    return {
        "amount_positive": (between(column="amount", min_value=0, strict_min=True),),
        "quantity_range": (between(column="quantity", min_value=1, max_value=100),),
        "discount_bounds": (between(column="discount", min_value=0), a_ge_b("amount", "discount")),
        "line_total_cap": (between(column="line_total", max_value=25000),),
        "score_z": (between(column="score", min_value=-4, max_value=4),),
        "customer_positive": (between(column="customer_id", min_value=0, strict_min=True),),
        "created_in_2024": (between(column="created_date", min_value=lo, max_value=hi),),
        "updated_after_created": (a_ge_b("updated_at", "created_date"),),
        "status_known": (gxe.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),),
        "email_shape": (regex(column="email", regex=r"^[^@]+@[^@]+$"),),
        "email_like": (regex(column="email", regex=r"(?s)^.*@.*\..*\Z"),),
        "email_length": (lengths(column="email", min_value=6, max_value=40),),
        "country_known": (regex(column="country", regex=r"^(?i:de|fr|us|jp|br|gb)\Z"),),
        "sku_prefix": (regex(column="sku", regex="^SKU-"),),
        "comment_length": (lengths(column="comment", max_value=80),),
        "comment_calm": (gxe.ExpectColumnValuesToNotMatchRegex(column="comment", regex="URGENT|ASAP"),),
    }


@engine("great-expectations")
def prepare_great_expectations(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # single-threaded (pandas) whatever `threads` says
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
    except ImportError as err:
        raise Unavailable(f"great_expectations: {err}") from err
    table_of = _gx_expectations()
    _missing(rules, table_of)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batches = ctx.data_sources.add_pandas("bench").add_dataframe_asset("t") \
        .add_batch_definition_whole_dataframe("all")
    single = ctx.suites.add(gx.ExpectationSuite("single"))
    union = ctx.suites.add(gx.ExpectationSuite("union"))
    parts: list[list] = []          # per rule: the suite-held expectations it is made of
    for r in rules:
        exps = table_of[r.name]
        suite = single if len(exps) == 1 else union
        parts.append([suite.add_expectation(e) for e in exps])
    frame = table.to_pandas(date_as_object=False)
    derive = any(r.name == "line_total_cap" for r in rules)

    def run() -> list[int]:
        data = frame.assign(line_total=frame["amount"] * frame["quantity"]) if derive else frame
        batch = batches.get_batch(batch_parameters={"dataframe": data})
        found = {}
        if single.expectations:
            for res in batch.validate(single, result_format="SUMMARY").results:
                found[res.expectation_config.id] = res.result["unexpected_count"]
        if union.expectations:
            for res in batch.validate(union, result_format="COMPLETE").results:
                found[res.expectation_config.id] = set(res.result["unexpected_index_list"])
        out = []
        for exps in parts:
            got = [found[e.id] for e in exps]
            out.append(got[0] if len(got) == 1 else len(set().union(*got)))
        return out
    return run


# === the cuallee paper's shape: not-null and exact-unique checks, one column each ========
# WIDE_ENGINES take rules of kind "not_null" / "unique" (datagen.WIDE_RULE_SETS) and return
# violations per rule: a not-null check counts NULL rows; a unique check counts every row
# whose non-NULL value occurs more than once (all copies; a NULL is never a duplicate, as
# in SQL UNIQUE and batchaot). Tools that treat NULL as a value for uniqueness (Polars
# is_duplicated, so pandera and cuallee without ignore_nulls) count a column's NULL rows
# as duplicates when there are two or more of them; where so, the adjustment is noted.

WIDE_ENGINES: dict[str, Callable[[pa.Table, list[Rule], int], Run]] = {}


def wide_engine(name: str):
    def register(fn):
        WIDE_ENGINES[name] = fn
        return fn
    return register


def _kinds(rules: list[Rule]) -> None:
    bad = [r.name for r in rules if r.kind not in ("not_null", "unique")]
    if bad:
        raise Unavailable(f"only not_null and unique checks here, not {', '.join(bad)}")


@wide_engine("batchaot")
def prepare_batchaot_wide(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # run_checks finishes the checks on `threads` threads; every duplicate and NULL row is
    # found in the timed run (as bitmaps and row numbers), its table is built when read
    from batchaot.api import BATCH_ROWS, compile_rules, load_rule_specs
    from batchaot.checks import run_checks
    from batchaot.checks.base import build_violating
    from batchaot.io.memory import use_process_pool
    use_process_pool()                 # as every batchaot run does (validate, Job.run, the CLI)
    _kinds(rules)
    checks = compile_rules(load_rule_specs([r.batchaot() for r in rules]), table.schema)
    batches = table.to_batches(max_chunksize=BATCH_ROWS)
    starts = [0]
    for b in batches[:-1]:
        starts.append(starts[-1] + b.num_rows)

    last: list = []

    def run() -> list[int]:
        outcomes = run_checks(checks, ((b, "<table>", s) for b, s in zip(batches, starts)), threads=threads)
        last[:] = outcomes
        return [o.violations for o in outcomes]

    def materialize() -> int:
        """Build the violations tables of the last run (as Result.violations does)."""
        build_violating(last)
        return sum(o.violating.num_rows for o in last if o.violating is not None)
    run.materialize = materialize     # timed apart by the harness (bench_peers.child)
    return run


@wide_engine("polars")
def prepare_polars_wide(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # is_duplicated treats NULL as a value: masked with is_not_null
    import polars as pl
    _kinds(rules)
    c = pl.col
    exprs = [c(r.column).null_count() if r.kind == "not_null"
             else (c(r.column).is_duplicated() & c(r.column).is_not_null()).sum()
             for r in rules]
    query = pl.from_arrow(table).lazy().select([e.alias(f"r{i}") for i, e in enumerate(exprs)])

    def run() -> list[int]:
        return [int(v) for v in query.collect().row(0)]
    return run


@wide_engine("duckdb")
def prepare_duckdb_wide(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # GROUP BY drops no NULL group by itself: WHERE ... IS NOT NULL does
    import duckdb
    _kinds(rules)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("t", table)

    def sql(r: Rule) -> str:
        if r.kind == "not_null":
            return f"(SELECT count(*) - count({r.column}) FROM t)"
        return (f"(SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t WHERE {r.column} "
                f"IS NOT NULL GROUP BY {r.column} HAVING count(*) > 1))")
    query = "SELECT " + ", ".join(sql(r) for r in rules)

    def run() -> list[int]:
        return [int(v) for v in con.execute(query).fetchone()]
    return run


@wide_engine("cuallee-polars")
def prepare_cuallee_wide(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # is_complete's violations are the NULL rows; is_unique(ignore_nulls=True) drops NULLs
    # before Polars' is_unique and counts them as passing: SQL's semantics, no adjustment
    import polars as pl
    from cuallee import Check, CheckLevel
    _kinds(rules)
    check = Check(CheckLevel.WARNING, "batchaot-bench-wide")
    for r in rules:
        if r.kind == "not_null":
            check.is_complete(r.column)
        else:
            check.is_unique(r.column, ignore_nulls=True)
    if len(check._rule) != len(rules):
        raise RuntimeError(f"cuallee merged rules: {len(check._rule)} of {len(rules)}")
    df = pl.from_arrow(table)

    def run() -> list[int]:
        report = check.validate(df)
        return [int(v) for v in report.sort("id")["violations"]]
    return run


@wide_engine("pandera")
def prepare_pandera_wide(table: pa.Table, rules: list[Rule], threads: int) -> Run:
    # Column(nullable=False, unique=True): `not_nullable` failures are the NULL rows;
    # `field_uniqueness` uses is_duplicated, so a column with two or more NULLs has them
    # among its failures too: they are taken off, using the not_nullable count of the
    # same report.
    import pandera.polars as pap
    import polars as pl
    _kinds(rules)
    columns = {}
    for r in rules:
        col = columns.setdefault(r.column, {"nullable": True, "unique": False})
        col["nullable" if r.kind == "not_null" else "unique"] = (r.kind != "not_null")
    schema = pap.DataFrameSchema({name: pap.Column(**kw) for name, kw in columns.items()})
    df = pl.from_arrow(table)

    def run() -> list[int]:
        found = _pandera_failures(schema, df, "check")
        if found is None:
            return [0] * len(rules)
        out = []
        for r in rules:
            nulls = found.get((r.column, "not_nullable"), 0)
            if r.kind == "not_null":
                out.append(nulls)
            else:
                out.append(found.get((r.column, "field_uniqueness"), 0) - (nulls if nulls >= 2 else 0))
        return out
    return run
