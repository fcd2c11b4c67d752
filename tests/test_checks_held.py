"""unique over held key columns (checks/duplicates.py): each method against the bucket
path a distributed run takes and against DuckDB, the increasing proof at batch edges,
saturated dense counts, violating rows built when first read, run_checks on threads.
"""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from batchaot.checks import duplicates, keys, run_checks
from batchaot.checks.base import LazyOutcome

from conftest import random_table
from test_checks import by_buckets, check_for, duck, numbered, run_split, same_outcome, split_invariant

SEEDS = (1, 2, 3)


def method_of(table: pa.Table, column: str, batch: int = 700) -> str:
    cols = [keys.exact_column(b.column(column)) for b in table.to_batches(max_chunksize=batch)]
    return duplicates.find(cols).method


def method_table(method: str, seed: int, n: int = 3000) -> pa.Table:
    """Columns that each method settles (see the monkeypatching in the test), with NULLs."""
    rng = np.random.default_rng(seed)

    def mask() -> np.ndarray:
        return rng.random(n) < 0.1

    specials = rng.choice([0.0, -0.0, np.nan, -np.nan, np.inf, 1.5], n)
    if method == "proof":
        return pa.table({"i": pa.array(np.cumsum(rng.integers(1, 4, n)), mask=mask()),
                         "f": pa.array(np.cumsum(rng.random(n) + 0.01) - 50, mask=mask()),
                         "t": pa.array(np.arange(n) * 10**6, pa.timestamp("us"))})
    if method == "few keys":
        return pa.table({"i": pa.array(rng.integers(-30, 30, n), mask=mask()),
                         "f": pa.array(np.where(rng.random(n) < 0.3, specials, rng.integers(0, 40, n) / 4), mask=mask()),
                         "u": pa.array(rng.integers(0, 2 * n, n), pa.uint16(), mask=mask())})
    if method == "dense":
        return pa.table({"i": pa.array(rng.integers(-n, n, n), mask=mask()),
                         "d": pa.array(rng.integers(0, 3 * n, n).astype(np.int32), pa.int32()).cast(pa.date32()),
                         "i8": pa.array(rng.integers(-100, 100, n), pa.int8(), mask=mask())})
    return pa.table({"f": pa.array(np.where(rng.random(n) < 0.2, specials, rng.integers(0, n, n) * 0.5), mask=mask()),
                     "w": pa.array(rng.integers(0, n, n) * 2**40 - 2**62, mask=mask()),
                     "g": pa.array(rng.random(n), mask=mask())})


@pytest.fixture()
def forced_method(monkeypatch):
    """Make duplicates.find skip the methods before the one asked for."""
    def force(method: str) -> None:
        if method in ("dense", "partitioned"):
            monkeypatch.setattr(duplicates, "SMALL_KEYS", 1)
        if method == "partitioned":
            monkeypatch.setattr(duplicates, "DENSE_MIN_SPAN", 0)
            monkeypatch.setattr(duplicates, "DENSE_SPAN_PER_ROW", 0)
            monkeypatch.setattr(duplicates, "PART_ROWS", 64)      # many parts
    return force


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["proof", "few keys", "dense", "partitioned"])
def test_each_method_matches_duckdb_and_the_bucket_path(seed, method, forced_method) -> None:
    forced_method(method)
    table = method_table(method, seed)
    for col in table.column_names:
        assert method_of(table, col) == method, col
        check = check_for({"name": "u", "unique": [col]}, table.schema)
        got = split_invariant(check, table, seed)         # held (random batches) == buckets
        want = [r for (r,) in duck(f"SELECT __r FROM (SELECT __r, count(*) OVER (PARTITION BY {col}) c FROM t "
                                   f"WHERE {col} IS NOT NULL) WHERE c > 1 ORDER BY __r", t=numbered(table))]
        assert (got.violating["row"].to_pylist() if got.violating is not None else []) == want, col
        keys_ = duck(f"SELECT count(*) FROM (SELECT 1 FROM t WHERE {col} IS NOT NULL GROUP BY {col} "
                     "HAVING count(*) > 1)", t=table)[0][0]
        assert got.details["duplicate_keys"] == keys_ and got.violations == len(want)
        if method != "proof" and col != "g":
            assert want, col                               # the tables do have duplicates (g: none)
        with keys.force_hash(seed):                        # every key collides: still exact
            same_outcome(got, run_split(check, [("<table>", table)], random.Random(seed), 400))


def mapped(check, batches: list[tuple[str, pa.Table, int]]):
    """map each (source, table, first row) as one batch, merged in the order given."""
    partials = [check.map(t.to_batches()[0], s, first) for s, t, first in batches]
    return check.finish(check.merge(partials))


def test_increasing_proof_at_batch_edges() -> None:
    schema = pa.schema([("k", pa.int64())])
    check = check_for({"name": "u", "unique": ["k"]}, schema)
    a = pa.table({"k": pa.array([1, 2, None, 5], pa.int64())})
    b = pa.table({"k": pa.array([None, 6, 9], pa.int64())})
    c = pa.table({"k": pa.array([9, None, 12], pa.int64())})       # 9 ends b and starts c
    apart = [("x", a, 0), ("x", b, 4)]
    assert method_of(pa.concat_tables([a, b]), "k", batch=4) == "proof"
    assert mapped(check, apart).passed and mapped(check, apart[::-1]).passed
    touching = mapped(check, [("x", c, 7), ("x", a, 0), ("x", b, 4)])
    assert method_of(pa.concat_tables([a, b, c]), "k", batch=4) != "proof"
    assert touching.violating["row"].to_pylist() == [6, 7] and touching.details["duplicate_keys"] == 1
    # the same values in two files: apart in rows, not in values
    again = mapped(check, [("y", a, 0), ("x", a, 0)])
    assert [(r["source"], r["row"]) for r in again.violating.to_pylist()] == \
        [("x", 0), ("x", 1), ("x", 3), ("y", 0), ("y", 1), ("y", 3)]
    assert again.details["null_key_rows"] == 2 and again.rows == 8


@pytest.mark.parametrize("saturated", [3, 12])
def test_dense_counts_past_saturation_are_exact(saturated, forced_method) -> None:
    forced_method("dense")
    rng = np.random.default_rng(saturated)
    repeats = [300 - k for k in range(saturated)] + [254, 253, 9, 3, 2, 2]
    values = np.concatenate([np.full(c, 10 * k) for k, c in enumerate(repeats)]
                            + [np.arange(5000) * 3 + 1])      # distinct, between the repeated
    values = rng.permutation(values)
    table = pa.table({"k": pa.array(values, mask=rng.random(len(values)) < 0.05)})
    assert method_of(table, "k") == "dense"
    check = check_for({"name": "u", "unique": ["k"]}, table.schema)
    got = split_invariant(check, table, saturated)
    kept = np.array([v for v in table["k"].to_pylist() if v is not None])
    uniq, counts = np.unique(kept, return_counts=True)
    firsts = {int(u): table["k"].to_pylist().index(int(u)) for u in uniq[counts > 1]}
    want = sorted(((int(c), int(u)) for u, c in zip(uniq, counts) if c > 1), key=lambda cu: (-cu[0], firsts[cu[1]]))
    assert [(s["count"], s["key"]["k"]) for s in got.details["sample"]] == want[:10]
    assert got.violations == int(counts[counts > 1].sum()) and got.value == int((counts > 1).sum())


def test_violating_rows_are_built_when_first_read() -> None:
    table = method_table("dense", 5)
    check = check_for({"name": "u", "unique": ["i"]}, table.schema)
    (outcome,) = run_checks([check], [(b, "<table>", 0) for b in table.to_batches()])
    assert isinstance(outcome, LazyOutcome) and outcome._build is not None     # nothing built yet
    eager = by_buckets(check, [("<table>", table)], random.Random(0), 500)     # tables built as it goes
    first = outcome.violating
    assert outcome._build is None and outcome.violating is first
    same_outcome(outcome, eager)
    outcome.violating = None                     # what a driver does once the rows are written
    assert outcome.violating is None


def test_run_checks_on_threads_equals_serial() -> None:
    table = pa.concat_tables([random_table(s, n=2000) for s in SEEDS])
    rules = [{"name": "ui", "unique": ["i"]}, {"name": "uf", "unique": ["f"]}, {"name": "us", "unique": ["s"]},
             {"name": "ujs", "unique": ["j", "s"]}, {"name": "uw", "unique": ["g"], "where": "i > 0"},
             {"name": "nn", "not_null": "f"}, {"name": "sum", "aggregate": "sum(i)", "equals": 0},
             {"name": "rows", "row_count": {"between": [1, None]}}]
    checks = [check_for(r, table.schema) for r in rules]
    batches = [(b, "<table>", k * 1000) for k, b in enumerate(table.to_batches(max_chunksize=1000))]
    serial = run_checks(checks, batches)
    for threads in (2, 3, 8):
        for a, b in zip(serial, run_checks(checks, batches, threads=threads)):
            same_outcome(a, b)
    assert sum(o.violations for o in serial) > 0
    with pytest.raises(ValueError, match="threads must be a positive int"):
        run_checks(checks, batches, threads=0)
