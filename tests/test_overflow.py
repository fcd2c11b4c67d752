"""Integer overflow never wraps: every tier gives NULL where exact arithmetic leaves int64
(or a CAST's target type), as DuckDB's TRY does per operation, and counts those rows.

The oracle is exact Python integers evaluated with SQL's three-valued logic; where no
row overflows, DuckDB must agree as well.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchaot
from batchaot.engine import fused
from batchaot.engine.run import Executor

MIN, MAX = -2 ** 63, 2 ** 63 - 1
EDGES = [MAX, MIN, MAX - 1, MIN + 1, 0, 1, -1, 2 ** 62, -2 ** 62, 3037000499, 3037000500,
         -3037000500, 2 ** 31, -2 ** 31 - 1, 127, -128, 255, 65536, 1000, 2 ** 53 + 1]
NARROW = {"TINYINT": (-2 ** 7, 2 ** 7 - 1), "SMALLINT": (-2 ** 15, 2 ** 15 - 1),
          "INTEGER": (-2 ** 31, 2 ** 31 - 1), "UTINYINT": (0, 255), "USMALLINT": (0, 65535),
          "UINTEGER": (0, 2 ** 32 - 1), "UBIGINT": (0, MAX), "BIGINT": (MIN, MAX)}
COLUMNS = ("a", "b", "c")


# -- the oracle: (value, tainted) with value None for NULL -------------------------------
# A NULL is an overflow's ("tainted") when an operation left its type on valid inputs, or
# when every NULL input of the operation that produced it was an overflow's.

def _arith(fn, *args):
    if any(v is None for v, _ in args):
        return None, all(t for v, t in args if v is None)
    exact = fn(*[v for v, _ in args])
    if exact is None:                                   # x % 0: NULL, not an overflow
        return None, False
    return (exact, False) if MIN <= exact <= MAX else (None, True)


def _mod(x, y):
    if y == 0:
        return None
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def _cast(name):
    lo, hi = NARROW[name]
    return lambda x: x if lo <= x <= hi else MAX + 1        # out of range: an overflow


def _cmp(op, x, y):
    if x[0] is None or y[0] is None:
        return None, all(t for v, t in (x, y) if v is None)
    return {"<": x[0] < y[0], ">": x[0] > y[0], "=": x[0] == y[0], "<>": x[0] != y[0],
            "<=": x[0] <= y[0], ">=": x[0] >= y[0]}[op], False


def _and(x, y):
    if x[0] is False or y[0] is False:
        return False, False
    if x[0] is None or y[0] is None:
        return None, all(t for v, t in (x, y) if v is None)
    return True, False


def _or(x, y):
    if x[0] is True or y[0] is True:
        return True, False
    if x[0] is None or y[0] is None:
        return None, all(t for v, t in (x, y) if v is None)
    return False, False


class Expr:
    """An expression tree: SQL text and an exact evaluator over one row.

    A subexpression without columns is folded at compile time: its overflow is a NULL
    constant, which no row is counted for (`const` drops the taint)."""

    def __init__(self, sql, fn, const=False):
        self.sql, self.const = sql, const
        self.fn = (lambda row: (fn(row)[0], False)) if const else fn


def _node(sql, fn, *children):
    return Expr(sql, fn, const=all(c.const for c in children))


def int_exprs():
    leaf = st.one_of(
        st.sampled_from(COLUMNS).map(lambda c: Expr(c, lambda row, c=c: (row[c], False))),
        st.sampled_from([0, 1, -1, 2, 7, 1000, 2 ** 31, MAX, -MAX]).map(
            lambda k: Expr(f"({k})" if k < 0 else str(k), lambda row, k=k: (k, False), const=True)))

    def extend(inner):
        binary = st.tuples(st.sampled_from(["+", "-", "*", "%"]), inner, inner).map(
            lambda t: _node(f"({t[1].sql} {t[0]} {t[2].sql})", lambda row, t=t: _arith(
                {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                 "%": _mod}[t[0]], t[1].fn(row), t[2].fn(row)), t[1], t[2]))
        unary = st.tuples(st.sampled_from(["abs", "neg"]), inner).map(
            lambda t: _node(f"abs({t[1].sql})" if t[0] == "abs" else f"(- {t[1].sql})",
                            lambda row, t=t: _arith(abs if t[0] == "abs" else (lambda x: -x), t[1].fn(row)),
                            t[1]))
        cast = st.tuples(st.sampled_from(sorted(NARROW)), st.booleans(), inner).map(
            lambda t: _node(f"{'TRY_CAST' if t[1] else 'CAST'}({t[2].sql} AS {t[0]})",
                            lambda row, t=t: _arith(_cast(t[0]), t[2].fn(row)), t[2]))
        return st.one_of(binary, unary, cast)

    return st.recursive(leaf, extend, max_leaves=5)


def predicates():
    cmp = st.tuples(st.sampled_from(["<", ">", "=", "<>", "<=", ">="]), int_exprs(), int_exprs()).map(
        lambda t: Expr(f"{t[1].sql} {t[0]} {t[2].sql}", lambda row, t=t: _cmp(t[0], t[1].fn(row), t[2].fn(row))))
    isnull = int_exprs().map(lambda e: Expr(f"{e.sql} IS NULL", lambda row, e=e: (e.fn(row)[0] is None, False)))
    coalesce = int_exprs().map(lambda e: Expr(
        f"coalesce({e.sql}, 5) > 3",
        lambda row, e=e: (((e.fn(row)[0] if e.fn(row)[0] is not None else 5) > 3), False)))
    atom = st.one_of(cmp, cmp, isnull, coalesce)

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map(lambda t: Expr(f"({t[0].sql} AND {t[1].sql})",
                                                       lambda row, t=t: _and(t[0].fn(row), t[1].fn(row)))),
            st.tuples(inner, inner).map(lambda t: Expr(f"({t[0].sql} OR {t[1].sql})",
                                                       lambda row, t=t: _or(t[0].fn(row), t[1].fn(row)))),
            inner.map(lambda e: Expr(f"(NOT {e.sql})", lambda row, e=e: (
                None if e.fn(row)[0] is None else not e.fn(row)[0], e.fn(row)[1]))))

    return st.recursive(atom, extend, max_leaves=3)


def table(seed: int, n: int) -> pa.Table:
    rng = np.random.default_rng(seed)

    def col():
        pick = rng.random(n)
        values = np.where(pick < 0.5, rng.choice(np.array(EDGES, dtype=object), n),
                          rng.integers(-50, 50, n).astype(object))
        mask = rng.random(n) < 0.1
        return pa.array([None if m else int(v) for v, m in zip(values, mask)], pa.int64())

    return pa.table({c: col() for c in COLUMNS})


def expected(pred: Expr, t: pa.Table, strict: bool) -> tuple[int, int, int]:
    rows = t.to_pylist()
    verdicts = [pred.fn(row) for row in rows]
    bad = sum(1 for v, _ in verdicts if (v is not True if strict else v is False))
    nulls = sum(1 for v, _ in verdicts if v is None)
    ovf = sum(1 for v, taint in verdicts if v is None and taint)
    return bad, nulls, ovf


def run(preds: list[Expr], t: pa.Table, engine: str, strict: bool) -> list[tuple]:
    """(violations, NULL verdicts, overflow NULLs) per rule; a rule proved true at compile
    time (zero-tick) never runs, so it gives its violations (0) alone."""
    programs = [batchaot.compile({"name": f"r{k}", "check": p.sql, "strict": strict}, t.schema)
                for k, p in enumerate(preds)]
    with Executor(engine=engine) as ex:
        out = ex.evaluate(programs, t.to_batches(max_chunksize=3000))
    return [(o.violations,) if o.zero_tick else (o.violations, o.nulls, o.overflows) for o in out]


def same(got: tuple, want: tuple) -> bool:
    return got == want[:len(got)]


# -- tests ----------------------------------------------------------------------------

ISSUE_CASES = ["a + b > 0", "a * b > 0", "a - b < 0", "abs(a) > 0", "CAST(a AS INTEGER) > 0",
               "a * 1000 + b < 5", "-a < 0", "a // b > 1", "CAST(a AS TINYINT) IS NULL",
               "TRY_CAST(a AS UTINYINT) > 3", "coalesce(a + b, 7) > 3", "round(a, -1) > 0"]


@pytest.mark.parametrize("engine", ["vm", "fused"])
@pytest.mark.parametrize("strict", [False, True])
def test_the_reported_cases_give_null_not_a_wrapped_value(engine, strict, kernel_cache) -> None:
    t = table(1, 7000)
    con = duckdb.connect()
    con.register("t", t)
    progs = [batchaot.compile({"name": f"r{k}", "check": p, "strict": strict}, t.schema)
             for k, p in enumerate(ISSUE_CASES)]
    with Executor(engine=engine) as ex:
        got = ex.evaluate(progs, t.to_batches(max_chunksize=3000))
    for p, o in zip(ISSUE_CASES, got):
        # DuckDB's TRY_CAST / TRY per operation: the predicate on exact values, with a
        # NULL wherever an operation left its type; in DuckDB, checked by a query that
        # wraps each operation of these one-operation cases in TRY(...)
        op_try = {"a + b > 0": "TRY(a + b) > 0", "a * b > 0": "TRY(a * b) > 0",
                  "a - b < 0": "TRY(a - b) < 0", "abs(a) > 0": "TRY(abs(a)) > 0",
                  "CAST(a AS INTEGER) > 0": "TRY_CAST(a AS INTEGER) > 0",
                  "a * 1000 + b < 5": "TRY(TRY(a * 1000) + b) < 5", "-a < 0": "TRY(-a) < 0",
                  "a // b > 1": "TRY(a // b) > 1", "CAST(a AS TINYINT) IS NULL": "TRY_CAST(a AS TINYINT) IS NULL",
                  "TRY_CAST(a AS UTINYINT) > 3": "TRY_CAST(a AS UTINYINT) > 3",
                  "coalesce(a + b, 7) > 3": "coalesce(TRY(a + b), 7) > 3",
                  "round(a, -1) > 0": "TRY(round(a, -1)) > 0"}[p]
        filt = f"({op_try}) IS NOT TRUE" if strict else f"NOT ({op_try})"
        want = con.execute(f"SELECT count(*) FILTER (WHERE {filt}) FROM t").fetchone()[0]
        assert o.violations == want, (p, engine, strict, o.violations, want)
    assert any(o.overflows for o in got)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(preds=st.lists(predicates(), min_size=1, max_size=6), seed=st.integers(0, 2 ** 16),
       strict=st.booleans())
def test_vm_matches_exact_arithmetic(preds, seed, strict) -> None:
    t = table(seed, 700)
    got = run(preds, t, "vm", strict)
    for p, g in zip(preds, got):
        assert same(g, expected(p, t, strict)), p.sql


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(preds=st.lists(predicates(), min_size=2, max_size=8), seed=st.integers(0, 2 ** 16),
       strict=st.booleans())
def test_fused_matches_exact_arithmetic_and_duckdb(preds, seed, strict, kernel_cache) -> None:
    t = table(seed, 6500)                   # crosses VM blocks and per-call batches
    got = run(preds, t, "fused", strict)
    con = duckdb.connect()
    con.register("t", t)
    for p, g in zip(preds, got):
        want = expected(p, t, strict)
        assert same(g, want), p.sql
        if want[2] == 0:                    # no overflow anywhere: plain DuckDB agrees
            filt = f"({p.sql}) IS NOT TRUE" if strict else f"NOT ({p.sql})"
            try:
                duck = con.execute(f"SELECT count(*) FILTER (WHERE {filt}) FROM t").fetchone()[0]
            except duckdb.Error:            # an overflow in a branch SQL does not choose
                continue
            assert g[0] == duck, p.sql


def test_shape_kernels_count_overflows_too(monkeypatch, kernel_cache) -> None:
    monkeypatch.setattr(fused.plan, "ROW_KERNEL_INSTRUCTIONS", 0)
    monkeypatch.setattr(fused.plan, "MAX_FUSED_INSTRUCTIONS", 0)
    t = table(3, 9000)
    preds = [Expr(s, None) for s in ("a * b > 0", "abs(a) - c < 3", "CAST(b AS SMALLINT) * 2 >= a")]
    for strict in (False, True):
        vm_counts = run(preds, t, "vm", strict)
        assert run(preds, t, "fused", strict) == vm_counts
        assert all(c[2] > 0 for c in vm_counts)
