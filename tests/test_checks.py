"""Dataset-level checks: DuckDB as the oracle, and the same answer for any split of the data.

A split is what Ray workers see: the data cut into batches (map), the partials merged in
groups and in any order (merge), then one finish. Checks must not tell the difference.
"""
from __future__ import annotations

import json
import math
import pickle
import random

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchaot
from batchaot.checks import KeySet, build_check, keys
from batchaot.checks.base import Bounds
from batchaot.errors import RuleError, SpecError
from batchaot.spec import parse_rule

from conftest import random_table

SEEDS = (1, 2, 3)


def check_for(rule: dict, schema: pa.Schema, file: str = "<rules>"):
    return build_check(parse_rule(rule, 0, file), schema)


def run_split(check, parts: list[tuple[str, pa.Table]], rng: random.Random | None, max_batch: int = 10**9):
    """map over random batches of each (source, table), merge in random groups and order."""
    partials = []
    for source, table in parts:
        start = 0
        while start < table.num_rows:
            n = max_batch if rng is None else rng.randint(1, max_batch)
            for batch in table.slice(start, n).to_batches():
                partials.append(check.map(batch, source, start))
                start += batch.num_rows
    if rng is not None:
        rng.shuffle(partials)
        while len(partials) > 1:             # merge random groups until one is left
            k = rng.randint(2, min(4, len(partials)))
            partials = [check.merge(partials[:k])] + partials[k:]
            rng.shuffle(partials)
    return check.finish(check.merge(partials))


def same_outcome(a, b) -> None:
    assert (a.passed, a.violations, a.rows) == (b.passed, b.violations, b.rows)
    assert json.dumps(a.details, sort_keys=True) == json.dumps(b.details, sort_keys=True)
    assert (a.value == b.value) or (a.value != a.value and b.value != b.value)
    assert (a.violating is None) == (b.violating is None)
    if a.violating is not None:
        assert a.violating.schema == b.violating.schema
        assert canon(a.violating) == canon(b.violating)


def canon(table: pa.Table) -> list:
    """Rows with NaN spelled out, so that equal tables compare equal."""
    return [[("nan" if isinstance(v, float) and v != v else v) for v in row.values()]
            for row in table.to_pylist()]


def split_invariant(check, table: pa.Table, seed: int):
    whole = run_split(check, [("<table>", table)], None)
    rng = random.Random(seed)
    for max_batch in (1, 7, 64):
        same_outcome(whole, run_split(check, [("<table>", table)], rng, max_batch))
    if check.spec.kind == "unique":      # as a distributed run settles it: bucket by bucket
        same_outcome(whole, by_buckets(check, [("<table>", table)], rng, 50))
    return whole


def by_buckets(check, parts: list[tuple[str, pa.Table]], rng: random.Random, max_batch: int):
    """map over random batches, split each partial into head and buckets (as a worker
    does), every bucket finished alone, the outcome from the merged heads."""
    heads, buckets = [], []
    for source, table in parts:
        start = 0
        while start < table.num_rows:
            n = rng.randint(1, max_batch)
            for batch in table.slice(start, n).to_batches():
                head, parts_of = check.split(check.map(batch, source, start))
                heads.append(head)
                buckets.append(parts_of)
                start += batch.num_rows
    results = [check.finish_bucket([pc for b in buckets for pc in b[k]]) for k in range(check.buckets)]
    return check.outcome(check.merge(heads), results)


def duck(sql: str, **tables) -> list[tuple]:
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    return con.execute(sql).fetchall()


def numbered(table: pa.Table) -> pa.Table:
    return table.append_column("__r", pa.array(np.arange(table.num_rows)))


# --- unique ----------------------------------------------------------------------------

KEYSETS = [["i"], ["j"], ["s"], ["f"], ["j", "s"], ["d", "b"], ["dec"], ["ts"], ["j", "f", "b"]]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("key", KEYSETS, ids="+".join)
def test_unique_matches_duckdb_for_any_split(seed, key) -> None:
    table = random_table(seed, n=300)
    check = check_for({"name": "u", "unique": key}, table.schema)
    got = split_invariant(check, table, seed)
    cols = ", ".join(key)
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in key)
    want = [r for (r,) in duck(f"SELECT __r FROM (SELECT __r, count(*) OVER (PARTITION BY {cols}) c "
                               f"FROM t WHERE {not_null}) WHERE c > 1 ORDER BY __r", t=numbered(table))]
    rows = got.violating["row"].to_pylist() if got.violating is not None else []
    assert rows == want and got.violations == len(want) and got.passed == (not want)
    n_keys = duck(f"SELECT count(*) FROM (SELECT 1 FROM t WHERE {not_null} GROUP BY {cols} "
                  "HAVING count(*) > 1)", t=table)[0][0]
    assert got.details["duplicate_keys"] == n_keys == got.value
    assert got.details["null_key_rows"] == duck(f"SELECT count(*) FROM t WHERE NOT ({not_null})", t=table)[0][0]


def test_unique_reports_keys_counts_and_rows_per_source() -> None:
    a = pa.table({"k": [1, 2, 3, None], "v": ["x", "y", "z", "w"]})
    b = pa.table({"k": [3, 3, 4, None], "v": ["p", "q", "r", "s"]})
    check = check_for({"name": "u", "unique": "k"}, a.schema)
    out = run_split(check, [("a.parquet", a), ("b.parquet", b)], random.Random(0), 2)
    assert out.violating.column_names == ["rule", "source", "row", "k"]
    assert [(r["source"], r["row"]) for r in out.violating.to_pylist()] == \
        [("a.parquet", 2), ("b.parquet", 0), ("b.parquet", 1)]
    assert out.details["sample"] == [{"key": {"k": 3}, "count": 3}]
    assert out.details["null_key_rows"] == 2 and not out.passed


def test_forced_hash_collisions_never_fake_a_duplicate() -> None:
    table = random_table(7, n=400)
    for key in (["i"], ["s", "j"], ["f"]):
        check = check_for({"name": "u", "unique": key}, table.schema)
        honest = run_split(check, [("<table>", table)], None)
        with keys.force_hash(12345):
            forced = split_invariant(check, table, 3)
        same_outcome(honest, forced)
    distinct = pa.table({"k": np.arange(1000)})
    with keys.force_hash(0):
        out = run_split(check_for({"name": "u", "unique": ["k"]}, distinct.schema), [("<table>", distinct)], None)
    assert out.passed and out.violations == 0


def test_float_keys_follow_sql_equality() -> None:
    t = pa.table({"f": [0.0, -0.0, float("nan"), float("nan"), 1.5]})
    out = run_split(check_for({"name": "u", "unique": ["f"]}, t.schema), [("<table>", t)], None)
    assert out.violating["row"].to_pylist() == [0, 1, 2, 3]      # -0.0 = 0.0, NaN = NaN (DuckDB)


def test_unique_buckets_can_be_finished_one_by_one() -> None:
    table = random_table(4, n=500)
    check = check_for({"name": "u", "unique": ["j", "b"]}, table.schema)
    merged = check.merge([check.map(b, "<table>", 0) for b in table.to_batches()])
    head, buckets = check.split(merged)
    results = [check.finish_bucket(pickle.loads(pickle.dumps(b))) for b in reversed(buckets)]
    same_outcome(check.outcome(merged, results), check.finish(merged))


def unique_rows_by_duckdb(table: pa.Table, key: list[str]) -> list[int]:
    cols = ", ".join(f'"{k}"' for k in key)
    not_null = " AND ".join(f'"{k}" IS NOT NULL' for k in key)
    return [r for (r,) in duck(f"SELECT __r FROM (SELECT __r, count(*) OVER (PARTITION BY {cols}) c "
                               f"FROM t WHERE {not_null}) WHERE c > 1 ORDER BY __r", t=numbered(table))]


def exact_keys_table(seed: int, n: int) -> pa.Table:
    """One column per fixed-width type, with NULLs, NaN, -0.0 and few distinct values."""
    rng = np.random.default_rng(seed)

    def mask() -> np.ndarray:
        return rng.random(n) < 0.1

    f = rng.choice([0.0, -0.0, np.nan, -np.nan, 1.5, -2.25, np.inf], n)
    return pa.table({
        "i8": pa.array(rng.integers(-20, 20, n), pa.int8(), mask=mask()),
        "u16": pa.array(rng.integers(0, 60, n), pa.uint16(), mask=mask()),
        "i32": pa.array(rng.integers(-100, 100, n), pa.int32(), mask=mask()),
        "i64": pa.array(rng.integers(-2**62, 2**62, n) // 2**55, pa.int64(), mask=mask()),
        "u64": pa.array(rng.integers(0, 300, n).astype(np.uint64) * np.uint64(2**54), pa.uint64(), mask=mask()),
        "f32": pa.array(f.astype(np.float32), pa.float32(), mask=mask()),
        "f64": pa.array(f, pa.float64(), mask=mask()),
        "d": pa.array(rng.integers(0, 90, n).astype(np.int32), pa.int32()).cast(pa.date32()),
        "ts": pa.array(rng.integers(0, 90, n) * 10**6, pa.timestamp("us"), mask=mask()),
        "t64": pa.array(rng.integers(0, 90, n) * 1000, pa.time64("us")),
        "dur": pa.array(rng.integers(0, 90, n), pa.duration("s"), mask=mask()),
        "dict": pa.array(rng.integers(0, 40, n), pa.int64()).dictionary_encode(),
    })


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_keys_match_duckdb_and_the_hashed_path(seed, monkeypatch) -> None:
    table = exact_keys_table(seed, 400)
    for col in table.column_names:
        check = check_for({"name": "u", "unique": [col]}, table.schema)
        assert keys.exact_column(table[col]) is not None
        exact = split_invariant(check, table, seed)
        rows = exact.violating["row"].to_pylist() if exact.violating is not None else []
        assert rows == unique_rows_by_duckdb(table, [col]), col
        with keys.force_hash(seed):                   # every key collides: still exact
            same_outcome(exact, run_split(check, [("<table>", table)], random.Random(seed), 50))
        with monkeypatch.context() as m:
            m.setattr(keys, "exact_column", lambda arr: None)
            same_outcome(exact, run_split(check, [("<table>", table)], random.Random(seed), 50))


def test_exact_and_hashed_pieces_in_one_bucket_agree() -> None:
    # uint64 values of 2**63 and up have no int64: such batches go hashed, the others exact,
    # and a bucket holding both kinds compares them as hashed pieces
    big = np.uint64(2**63)
    values = np.array([1, 2, 3, 1, 5, 6, 2, 8] * 3, np.uint64)
    values[16:] += big                                 # the third batch is hashed
    table = pa.table({"k": pa.array(values, pa.uint64())})
    check = check_for({"name": "u", "unique": ["k"]}, table.schema)
    out = run_split(check, [("<table>", table)], None, 8)
    assert out.violating["row"].to_pylist() == list(range(16)) + [16, 17, 19, 22] == \
        unique_rows_by_duckdb(table, ["k"])
    assert out.violating["k"].to_pylist()[-4:] == [2**63 + 1, 2**63 + 2, 2**63 + 1, 2**63 + 2]
    a = pa.table({"k": pa.array([1, 2, 3, 4], pa.int32())})      # widths differ between files
    b = pa.table({"k": pa.array([4, 5, 1, 7], pa.int64())})
    check = check_for({"name": "u", "unique": ["k"]}, a.schema)
    out = run_split(check, [("a", a), ("b", b)], None)
    assert [(r["source"], r["row"], r["k"]) for r in out.violating.to_pylist()] == \
        [("a", 0, 1), ("a", 3, 4), ("b", 0, 4), ("b", 2, 1)]


def test_increasing_batches_prove_distinct_only_when_their_ranges_do_not_overlap() -> None:
    ids = pa.table({"k": pa.array(np.arange(1000), pa.int64())})
    check = check_for({"name": "u", "unique": ["k"]}, ids.schema)
    assert run_split(check, [("<table>", ids)], random.Random(1), 100).passed
    overlap = pa.table({"k": pa.array(np.concatenate([np.arange(0, 500), np.arange(450, 950)]))})
    out = split_invariant(check_for({"name": "u", "unique": ["k"]}, overlap.schema), overlap, 2)
    assert out.violating["row"].to_pylist() == list(range(450, 500)) + list(range(500, 550))
    assert out.details["duplicate_keys"] == 50


@pytest.mark.parametrize("distinct", [3, 300, 40_000, 250_000])
def test_exact_counts_many_rows(distinct) -> None:
    # few keys (one table, counts of 255 and more) and many (cache-sized sub-partitions)
    rng = np.random.default_rng(distinct)
    values = rng.integers(0, distinct, 300_000)
    table = pa.table({"k": values})
    check = check_for({"name": "u", "unique": ["k"]}, table.schema)
    out = run_split(check, [("<table>", table)], random.Random(0), 70_000)
    uniq, counts = np.unique(values, return_counts=True)
    dup = np.isin(values, uniq[counts > 1])
    assert out.violations == int(dup.sum()) and out.value == int((counts > 1).sum())
    assert out.violating["row"].to_pylist() == np.flatnonzero(dup).tolist()
    assert out.violating["k"].to_pylist() == values[dup].tolist()
    if distinct <= 300:                       # the sample: most repeated first, ties by first row
        firsts = {int(u): int(np.flatnonzero(values == u)[0]) for u in uniq}
        want = sorted(((int(c), int(u)) for u, c in zip(uniq, counts) if c > 1),
                      key=lambda cu: (-cu[0], firsts[cu[1]]))[:10]
        assert [(s["count"], s["key"]["k"]) for s in out.details["sample"]] == want


def test_unique_with_where_and_sparse_or_repeated_rows() -> None:
    table = random_table(9, n=400)
    check = check_for({"name": "u", "unique": ["j"], "where": "i > 0"}, table.schema)
    got = split_invariant(check, table, 9)
    want = [r for (r,) in duck("SELECT __r FROM (SELECT __r, count(*) OVER (PARTITION BY j) c FROM t "
                               "WHERE i > 0 AND j IS NOT NULL) WHERE c > 1 ORDER BY __r", t=numbered(table))]
    assert got.violating["row"].to_pylist() == want
    # rows far apart (no counting pass over their range) and a source read twice
    t = pa.table({"k": pa.array([7, 7, 8, 8], pa.int64())})
    check = check_for({"name": "u", "unique": ["k"]}, t.schema)
    parts = [check.map(b, "s", start) for b, start in ((t.slice(0, 2).to_batches()[0], 0),
                                                      (t.slice(2, 2).to_batches()[0], 10**12))]
    out = check.finish(check.merge(parts))
    assert out.violating["row"].to_pylist() == [0, 1, 10**12, 10**12 + 1]
    twice = check.finish(check.merge([check.map(t.to_batches()[0], "s", 0), check.map(t.to_batches()[0], "s", 0)]))
    assert twice.violations == 8 and twice.violating["row"].to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]


def _duplicate_rows(values: list, valid: list[bool]) -> list[tuple[int, object]]:
    """(row, key) of every non-NULL row whose key occurs more than once (-0.0 is 0.0)."""
    seen: dict = {}
    for v, ok in zip(values, valid):
        if ok:
            seen[v] = seen.get(v, 0) + 1
    return [(r, v) for r, (v, ok) in enumerate(zip(values, valid)) if ok and seen[v] > 1]


@pytest.mark.parametrize("case", ["every-many-keys", "every-few-keys", "every-with-nulls", "some-many-keys",
                                  "signed-zeros", "offset-validity"])
def test_unique_violating_rows_on_every_gather_path(case) -> None:
    """The held path's one-pass gather (row numbers shared, keys as they are held, keys
    coded, bits branch-free, a coder that retries a bigger table) agrees with the
    duplicates counted here and with the bucketed path, for any batching."""
    rng = np.random.default_rng(len(case))
    n = 90_000
    valid = np.ones(n, bool)
    if case == "every-many-keys":            # 45,000 keys twice: keys held as they are
        values = rng.permutation(np.repeat(np.arange(45_000), 2)).astype(np.int64)
    elif case == "every-few-keys":           # 300 keys: int16 codes, row numbers shared
        values = rng.integers(0, 300, n)
    elif case == "every-with-nulls":
        values = rng.permutation(np.repeat(np.arange(45_000), 2)).astype(np.int64)
        valid = rng.random(n) > 0.1
    elif case == "some-many-keys":           # 34,000 keys twice among unique ones: raw keys, bits
        values = rng.permutation(np.concatenate([np.repeat(np.arange(34_000), 2), np.arange(10**6, 10**6 + 22_000)]))
    elif case == "signed-zeros":             # 8 keys but 9 distinct float values: the coder retries
        values = np.repeat(np.array([0.0, -0.0, 1, 2, 3, 4, 5, 6, 7]), n // 9)
        values = rng.permutation(values)
    else:                                    # validity bits at an offset that is not whole bytes
        values = rng.integers(0, 50_000, n + 3)[3:]
        valid = rng.random(n) > 0.3
    arr = pa.array(values, mask=~valid)
    if case == "offset-validity":
        arr = pa.concat_arrays([pa.array([1, 2, 3], arr.type), arr]).slice(3)
    table = pa.table({"k": arr})
    check = check_for({"name": "u", "unique": ["k"]}, table.schema)
    want = _duplicate_rows([0.0 if v == 0 else v for v in values.tolist()], valid.tolist())
    for max_batch in (n, 7_001, 65_536):
        got = run_split(check, [("<table>", table)], random.Random(max_batch) if max_batch < n else None, max_batch)
        assert got.violations == len(want)
        rows = got.violating["row"].to_pylist()
        keys_got = got.violating["k"].to_pylist()
        assert list(zip(rows, [0.0 if v == 0 else v for v in keys_got])) == want
        assert got.violating.schema.field("rule").type == pa.dictionary(pa.int8(), pa.string())
    same_outcome(run_split(check, [("<table>", table)], None), by_buckets(check, [("<table>", table)],
                                                                          random.Random(1), 30_000))
    if case == "signed-zeros":   # both zeros shown as they were held
        signs = {math.copysign(1, v) for v in got.violating["k"].to_pylist() if v == 0}
        assert signs == {1.0, -1.0}


def test_unique_every_row_far_into_a_source_costs_its_rows_only() -> None:
    """Every row of a batch that starts 10**12 rows into its source is a duplicate: the
    shared row numbers cover that range, not 0 .. 10**12 (8 TB)."""
    t = pa.table({"k": pa.array([7, 7, 8, 8, 7], pa.int64())})
    check = check_for({"name": "u", "unique": ["k"]}, t.schema)
    out = check.finish(check.merge([check.map(t.to_batches()[0], "s", 10**12)]))
    assert out.violating["row"].to_pylist() == [10**12 + i for i in range(5)]
    assert out.violating["row"].nbytes <= 64


def test_unique_violating_columns_and_part_file_layout() -> None:
    t = pa.table({"row": pa.array([1.5, 1.5, 2.0]), "v": [1, 2, 3]})
    check = check_for({"name": "u", "unique": ["row"]}, t.schema)
    out = run_split(check, [("a.parquet", t)], None)
    assert out.violating.column_names == ["rule", "source", "row", "value_row"]
    assert out.violating.to_pylist() == [{"rule": "u", "source": "a.parquet", "row": 0, "value_row": 1.5},
                                         {"rule": "u", "source": "a.parquet", "row": 1, "value_row": 1.5}]
    merged = check.merge([check.map(b, "a.parquet", 0) for b in t.to_batches()])
    results = [check.finish_bucket(b) for b in check.split(merged)[1]]
    (written,) = [check.labelled(r.violating) for r in results if r.violating is not None]
    assert written.schema.field("rule").type == pa.string() == written.schema.field("source").type
    assert written.to_pylist() == out.violating.to_pylist()


# --- not_null ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("col", ["i", "f", "s", "dec", "b"])
def test_not_null_matches_duckdb(seed, col) -> None:
    table = random_table(seed, n=300)
    nulls, rows = duck(f"SELECT count(*) FILTER (WHERE {col} IS NULL), count(*) FROM t", t=table)[0]
    present = (rows - nulls) / rows
    for mostly, passed in ((None, nulls == 0), (present, True), (min(1.0, present + 1e-6), False), (0.0, True)):
        rule = {"name": "n", "not_null": col, **({"mostly": mostly} if mostly is not None else {})}
        out = split_invariant(check_for(rule, table.schema), table, seed)
        assert (out.violations, out.rows, out.passed) == (nulls, rows, passed)
        assert out.violating["row"].to_pylist() == [r for (r,) in duck(
            f"SELECT __r FROM t WHERE {col} IS NULL ORDER BY __r", t=numbered(table))]
        assert out.violating[col].null_count == nulls


def test_not_null_rows_per_source_in_order_whatever_the_batches() -> None:
    a = pa.table({"s": ["x", None, None, "y", None]})
    b = pa.table({"s": [None, "z", None]})
    check = check_for({"name": "n", "not_null": "s"}, a.schema)
    for seed in range(5):
        out = run_split(check, [("b.parquet", b), ("a.parquet", a)], random.Random(seed), 2)
        assert [(r["source"], r["row"], r["s"]) for r in out.violating.to_pylist()] == \
            [("a.parquet", 1, None), ("a.parquet", 2, None), ("a.parquet", 4, None),
             ("b.parquet", 0, None), ("b.parquet", 2, None)]
        assert out.violating.schema.field("s").type == pa.string()
    # the same rows held twice cannot be laid out back to back: sorted instead
    twice = check.finish(check.merge([check.map(a.to_batches()[0], "a", 0), check.map(a.to_batches()[0], "a", 0)]))
    assert twice.violating["row"].to_pylist() == [1, 1, 2, 2, 4, 4]


def test_not_null_with_where() -> None:
    table = random_table(5, n=300)
    out = split_invariant(check_for({"name": "n", "not_null": "f", "where": "i > 0"}, table.schema), table, 5)
    want = duck("SELECT count(*) FILTER (WHERE f IS NULL), count(*) FROM t WHERE i > 0", t=table)[0]
    assert (out.violations, out.rows) == want


# --- aggregate ----------------------------------------------------------------------------

AGGREGATES = [
    ("count(*)", "count(*)"), ("count(i)", "count(i)"), ("sum(i)", "sum(i)"), ("avg(j)", "avg(j)"),
    ("sum(f)", "sum(f)"), ("avg(g)", "avg(g)"), ("min(f)", "min(f)"), ("max(f)", "max(f)"),
    ("min(g)", "min(g)"), ("max(j)", "max(j)"), ("stddev_samp(i)", "stddev_samp(i)"),
    ("stddev_samp(g)", "stddev_samp(g)"), ("stddev(f)", "stddev_samp(f)"), ("sum(dec)", "sum(dec)::DOUBLE"),
    ("avg(dec)", "avg(dec)"), ("count(DISTINCT s)", "count(DISTINCT s)"), ("count_distinct(f)", "count(DISTINCT f)"),
    ("count_distinct(d)", "count(DISTINCT d)"), ("null_fraction(s)", "1 - count(s) / count(*)"),
]


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("where", [None, "s <> 'paid' AND i > -20"])
def test_aggregates_match_duckdb_for_any_split(seed, where) -> None:
    table = random_table(seed, n=300)
    filt = f" WHERE {where}" if where else ""
    for ours, sql in AGGREGATES:
        rule = {"name": "a", "aggregate": ours, "between": [None, 1e300], **({"where": where} if where else {})}
        out = split_invariant(check_for(rule, table.schema), table, seed)
        (want,) = duck(f"SELECT {sql} FROM t{filt}", t=table)[0]
        assert close(out.value, want), (ours, out.value, want)
        assert out.violations == 0 and out.violating is None


def test_approximate_aggregates_within_their_error() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.integers(0, 50_000, 200_000), "y": rng.normal(0, 1, 200_000)})
    hll = check_for({"name": "a", "aggregate": "approx_count_distinct(x)", "between": [0, None]}, table.schema)
    exact = duck("SELECT count(DISTINCT x) FROM t", t=table)[0][0]
    outs = [run_split(hll, [("<table>", table)], random.Random(s), 30_000) for s in range(3)]
    assert all(o.value == outs[0].value for o in outs)            # HLL unions agree for any split
    assert abs(outs[0].value - exact) / exact < 0.05
    assert outs[0].details["lower_bound_2sd"] <= exact <= outs[0].details["upper_bound_2sd"]
    for q in (0.1, 0.5, 0.99):
        kll = check_for({"name": "q", "aggregate": f"approx_quantile(y, {q})", "between": [-10, 10]}, table.schema)
        out = run_split(kll, [("<table>", table)], random.Random(1), 25_000)
        rank = duck(f"SELECT avg((y <= {out.value})::INT) FROM t", t=table)[0][0]
        assert abs(rank - q) < 3 * out.details["normalized_rank_error"]


def test_float_sums_are_exact_and_split_free() -> None:
    # 1e16 + 1.0 loses the 1.0 in floating point; the exact sum keeps it, for any split
    x = pa.table({"x": [1e16, 1.0, -1e16, 1.0] * 50 + [0.1] * 10})
    out = split_invariant(check_for({"name": "s", "aggregate": "sum(x)", "equals": 101}, x.schema), x, 0)
    assert out.value == 101.0 and out.passed


def test_integer_sums_do_not_overflow() -> None:
    t = pa.table({"x": pa.array([2**62, 2**62, 2**62, -5], pa.int64())})
    out = split_invariant(check_for({"name": "s", "aggregate": "sum(x)", "between": [0, None]}, t.schema), t, 0)
    assert out.value == 3 * 2**62 - 5 and out.passed
    sd = split_invariant(check_for({"name": "s", "aggregate": "stddev_samp(x)", "between": [0, None]}, t.schema), t, 0)
    assert math.isclose(sd.value, float(np.std(np.array([2**62] * 3 + [-5], dtype=object).astype(float), ddof=1)))


@pytest.mark.parametrize("bounds, value, ok", [
    ({"between": [1, 3]}, 2, True), ({"between": [1, 3]}, 3, True), ({"between": [1, 3]}, 3.01, False),
    ({"between": [None, 3]}, -1e9, True), ({"between": [5, None]}, 4, False), ({"equals": 2}, 2.0, True),
    ({"equals": 2}, 2.5, False), ({"between": [0, None]}, float("nan"), True),
    ({"between": [0, 1e9]}, float("nan"), False), ({"between": [0, 10]}, None, False),
])
def test_bounds(bounds, value, ok) -> None:
    spec = parse_rule({"name": "a", "aggregate": "count(*)", **bounds}, 0, "<rules>")
    assert Bounds.parse(spec, spec.options, "").holds(value) is ok


def test_failing_aggregate_and_row_count_have_no_violating_rows() -> None:
    table = random_table(1, n=100)
    res = batchaot.validate(table, [
        {"name": "avg_i", "aggregate": "avg(i)", "between": [1000, None]},
        {"name": "rows", "row_count": {"equals": 99}},
        {"name": "rows_where", "row_count": {"between": [1, 10]}, "where": "j = 3"},
    ])
    rules = {r["name"]: r for r in res.to_dict()["rules"]}
    assert not rules["avg_i"]["passed"] and rules["avg_i"]["violations"] == 0
    assert "dataset-level fact" in rules["avg_i"]["details"]["note"]
    assert rules["rows"]["value"] == 100 and not rules["rows"]["passed"]
    assert rules["rows_where"]["value"] == duck("SELECT count(*) FROM t WHERE j = 3", t=table)[0][0]
    assert res.violations.num_rows == 0 and not res.ok


# --- reference ------------------------------------------------------------------------------

@pytest.fixture()
def ref_dataset(tmp_path):
    """A referenced dataset in three files, with duplicate keys and NULL keys."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "ref"
    folder.mkdir()
    statuses = ["new", "paid", "shipped", "", "ünï"]
    for k in range(3):
        n = 40
        pq.write_table(pa.table({
            "a": pa.array(rng.integers(-5, 6, n), pa.int64(), mask=rng.random(n) < 0.1),
            "b": pa.array(rng.choice(statuses, n), pa.string(), mask=rng.random(n) < 0.1),
            "fid": pa.array(rng.integers(-50, 50, n).astype(np.float64)),
        }), folder / f"part-{k}.parquet")
    return folder


def test_reference_matches_duckdb_anti_join(ref_dataset) -> None:
    ref = pq.read_table(ref_dataset)
    for seed in SEEDS:
        table = random_table(seed, n=300)
        for cols, key in ((["j", "s"], ["a", "b"]), (["i"], ["fid"]), (["j"], ["a"])):
            rule = {"name": "r", "reference": {"columns": cols, "dataset": str(ref_dataset / "*.parquet"), "key": key}}
            check = check_for(rule, table.schema)
            got = split_invariant(check, table, seed)
            on = " AND ".join(f"ref.{k} = t.{c}" for c, k in zip(cols, key))
            not_null = " AND ".join(f"t.{c} IS NOT NULL" for c in cols)
            want = [r for (r,) in duck(f"SELECT __r FROM t WHERE {not_null} AND NOT EXISTS "
                                       f"(SELECT 1 FROM ref WHERE {on}) ORDER BY __r", t=numbered(table), ref=ref)]
            assert (got.violating["row"].to_pylist() if got.violating else []) == want, (cols, key)
            assert got.details["missing_rows"] == len(want) == got.violations
            with keys.force_hash(99):
                forced = type(check)(check.spec, table.schema)
                same_outcome(got, run_split(forced, [("<table>", table)], random.Random(seed), 50))


def test_reference_key_set_is_shareable_and_paths_are_relative_to_the_rules_file(ref_dataset, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: r\n    reference: {columns: [j], dataset: 'ref/*.parquet', key: [a]}\n")
    table = random_table(2, n=200)
    res = batchaot.validate(table, str(rules))
    (rule,) = res.to_dict()["rules"]
    check = check_for({"name": "r", "reference": {"columns": ["j"], "dataset": "ref", "key": ["a"]}},
                      table.schema, str(rules))
    ks = check.key_set
    again = KeySet.from_bytes(ks.to_bytes())
    shipped = pickle.loads(pickle.dumps(check))
    shipped.use_key_set(pickle.loads(pickle.dumps(again)))
    out = run_split(shipped, [("<table>", table)], random.Random(0), 33)
    assert out.violations == rule["violations"] and out.details["reference_keys"] == ks.table.num_rows
    assert rule["details"]["reference_rows"] == 120


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, error, message", [
    ({"unique": ["amout"]}, RuleError, r"unknown key column 'amout' \(did you mean 'amount'\?\)"),
    ({"unique": []}, SpecError, r"rules.yaml: rule 'x': 'unique' must be a column name or a non-empty list"),
    ({"unique": ["amount", "amount"]}, SpecError, "lists a column twice"),
    ({"not_null": ["amount", "qty"]}, SpecError, "write one rule per column"),
    ({"not_null": "qyt"}, RuleError, r"did you mean 'qty'"),
    ({"aggregate": "avg(amount)"}, SpecError, r"give 'between: \[lo, hi\]' or 'equals: n'"),
    ({"aggregate": "avg(amount)", "between": [5, 1]}, SpecError, "low bound is above the high one"),
    ({"aggregate": "avg(amount)", "between": [1]}, SpecError, r"'between' must be \[lo, hi\]"),
    ({"aggregate": "avg(amount)", "between": [1, 2], "equals": 3}, SpecError, "not both"),
    ({"aggregate": "avg(amount)", "between": ["a", 2]}, SpecError, "bounds must be numbers"),
    ({"aggregate": "median(amount)", "equals": 1}, RuleError, r"unsupported aggregate `median\(amount\)`; supported: count"),
    ({"aggregate": "avg(status)", "equals": 1}, RuleError, "status' is string; avg needs a number column"),
    ({"aggregate": "sum(amount + 1)", "equals": 1}, RuleError, "must be a column name"),
    ({"aggregate": "avg(amunt)", "equals": 1}, RuleError, r"did you mean 'amount'"),
    ({"aggregate": "approx_quantile(amount, 2)", "equals": 1}, RuleError, "0 <= q <= 1"),
    ({"aggregate": "avg(amount)", "equals": 1, "where": "amont > 0"}, RuleError, r"where: unknown column 'amont'"),
    ({"aggregate": "avg(amount)", "equals": 1, "mostly": 0.5}, SpecError, "'mostly' does not apply to aggregate"),
    ({"row_count": 5}, SpecError, r"row_count: \{between: \[1000, null\]\}"),
    ({"row_count": {"min": 5}}, SpecError, "unknown row_count field 'min'"),
    ({"reference": {"columns": ["qty"], "dataset": "x.parquet"}}, SpecError, "reference needs 'key'"),
    ({"reference": {"columns": ["qty"], "dataset": "nope/*.parquet", "key": ["id"]}}, RuleError, "reference dataset 'nope/\\*.parquet' not found"),
])
def test_bad_bodies_have_clear_errors(rule, error, message) -> None:
    schema = pa.schema([("amount", pa.float64()), ("qty", pa.int64()), ("status", pa.string())])
    with pytest.raises(error, match=message):
        check_for({"name": "x", **rule}, schema, "rules.yaml")


def test_reference_errors_name_the_dataset(ref_dataset) -> None:
    schema = pa.schema([("qty", pa.int64()), ("status", pa.string())])
    with pytest.raises(RuleError, match=r"unknown key column 'aa' \(did you mean 'a'\?\) in .*ref"):
        check_for({"name": "r", "reference": {"columns": ["qty"], "dataset": str(ref_dataset), "key": ["aa"]}}, schema)
    with pytest.raises(RuleError, match=r"cannot compare 'status' \(string\) with 'a' \(int64\)"):
        check_for({"name": "r", "reference": {"columns": ["status"], "dataset": str(ref_dataset), "key": ["a"]}}, schema)
    with pytest.raises(SpecError, match="1 columns but 2 key columns"):
        check_for({"name": "r", "reference": {"columns": ["qty"], "dataset": str(ref_dataset), "key": ["a", "b"]}}, schema)


# --- through batchaot.validate -----------------------------------------------------------------

def test_validate_files_reports_source_and_row_within_each_file(tmp_path) -> None:
    a = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "x": [1.0, None, -1.0]})
    b = pa.table({"id": pa.array([3, 4, 4], pa.int64()), "x": [None, 2.0, 3.0]})
    pq.write_table(a, tmp_path / "a.parquet")
    pq.write_table(b, tmp_path / "b.parquet")
    res = batchaot.validate(str(tmp_path / "*.parquet"), [
        {"name": "pos", "check": "x > 0"}, {"name": "u", "unique": ["id"]},
        {"name": "nn", "not_null": "x", "mostly": 0.5}])
    v = res.violations
    assert v.column_names[:3] == ["rule", "source", "row"]
    got = {(r["rule"], r["source"].rsplit("/", 1)[-1], r["row"]) for r in v.to_pylist()}
    assert got == {("pos", "a.parquet", 2), ("u", "a.parquet", 2), ("u", "b.parquet", 0), ("u", "b.parquet", 1),
                   ("u", "b.parquet", 2), ("nn", "a.parquet", 1), ("nn", "b.parquet", 0)}
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert [r["passed"] for r in doc["rules"]] == [False, False, True]
    assert set(res.summary.column_names) >= {"name", "severity", "passed", "violations", "rows", "value", "details"}
    out = tmp_path / "out"
    batchaot.validate(str(tmp_path / "*.parquet"), [{"name": "u", "unique": ["id"]}], output=out)
    assert pq.read_table(out / "violations").num_rows == 4


def test_checks_pickle_and_keep_working() -> None:
    table = random_table(9, n=200)
    for rule in ({"name": "u", "unique": ["j"], "where": "b"}, {"name": "a", "aggregate": "sum(i)", "equals": 0, "where": "j > 0"},
                 {"name": "n", "not_null": "s", "where": "i IS NOT NULL"}, {"name": "c", "row_count": {"equals": 1}, "where": "b"}):
        check = check_for(rule, table.schema)
        shipped = pickle.loads(pickle.dumps(check))
        same_outcome(run_split(check, [("<table>", table)], None), run_split(shipped, [("<table>", table)], random.Random(2), 40))


def run_partitioned(check, table: pa.Table, ref_files: list, rng: random.Random, max_batch: int):
    """A partitioned reference check: both sides mapped in random batches, heads and
    buckets split apart and merged back in random order, every bucket finished alone."""
    partials, start = [], 0
    while start < table.num_rows:
        n = rng.randint(1, max_batch)
        partials.append(check.map(table.slice(start, n).combine_chunks().to_batches()[0], "<table>", start))
        start += n
    for path in ref_files:
        partials += [check.map_side(b) for b in pq.read_table(path).to_batches(max_chunksize=rng.randint(1, 30))]
    rng.shuffle(partials)
    heads, buckets = zip(*(check.split(p) for p in partials))
    results = [check.finish_bucket([pc for b in buckets for pc in b[i]]) for i in range(check.buckets)]
    return check.outcome(check.merge(list(heads)), results)


def test_partitioned_reference_equals_shared_key_set(ref_dataset) -> None:
    """Both sides hashed into buckets, each settled alone: the same answer as one shared
    key set, with forced hash collisions too, after travelling by pickle."""
    files = sorted(ref_dataset.glob("*.parquet"))
    missing = 0
    for seed in SEEDS:
        table = random_table(seed, n=300)
        for cols, key in ((["j", "s"], ["a", "b"]), (["i"], ["fid"]), (["j"], ["a"])):
            rule = {"name": "r", "reference": {"columns": cols, "dataset": str(ref_dataset / "*.parquet"), "key": key}}
            shared = run_split(check_for(rule, table.schema), [("<table>", table)], None)
            for buckets, forced in ((4, None), (1, None), (8, 7)):
                check = pickle.loads(pickle.dumps(check_for(rule, table.schema)))
                check.partition(buckets)
                if forced is None:
                    got = run_partitioned(check, table, files, random.Random(seed), 70)
                else:
                    with keys.force_hash(forced):
                        got = run_partitioned(check, table, files, random.Random(seed), 70)
                same_outcome(shared, got)
                missing += got.violations
    assert missing > 0


def test_dense_key_sets_are_exact_at_their_edges() -> None:
    """Integer keys close together are probed in a bitset: exact at lo, hi and beyond."""
    rng = np.random.default_rng(5)
    values = np.unique(rng.integers(-1000, 1000, 300)).astype(np.int64)
    dense = keys.DenseSet.of(pa.array(values))
    probes = np.concatenate([values, np.arange(-1100, 1100), [np.iinfo(np.int64).min, np.iinfo(np.int64).max]])
    assert dense is not None and (dense.contains(probes) == np.isin(probes, values)).all()
    assert keys.DenseSet.of(pa.array([0, keys.DENSE_MAX_SPAN + 1], pa.int64())) is None      # too wide
    assert keys.DenseSet.of(pa.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])) is None
    assert keys.DenseSet.of(pa.array([1.5])) is None and keys.DenseSet.of(pa.array([], pa.int64())) is None


def test_reference_answers_the_same_with_and_without_the_dense_set(ref_dataset, monkeypatch) -> None:
    table = random_table(4, n=400)
    rule = {"name": "r", "reference": {"columns": ["i"], "dataset": str(ref_dataset / "*.parquet"), "key": ["a"]}}
    check = check_for(rule, table.schema)
    assert check.key_set.dense is not None
    dense = run_split(check, [("<table>", table)], random.Random(4), 60)
    monkeypatch.setattr(keys, "DENSE_MAX_SPAN", -1)
    hashed = run_split(check_for(rule, table.schema), [("<table>", table)], random.Random(4), 60)
    same_outcome(dense, hashed)
    assert dense.violations > 100


def test_checks_declare_what_they_need_from_the_runtime() -> None:
    """The runtime reads these class attributes (runtime/settle.py), never hasattr."""
    from batchaot.checks import KINDS
    from batchaot.checks.base import CheckBase, Partials, SideInput
    declared = {kind: (cls.partials, cls.side_input, cls.row_output) for kind, cls in KINDS.items()}
    assert declared == {
        "unique": (Partials.BUCKETED, SideInput.NONE, True),
        "not_null": (Partials.MERGED, SideInput.NONE, True),
        "aggregate": (Partials.MERGED, SideInput.NONE, False),
        "row_count": (Partials.MERGED, SideInput.NONE, False),
        "reference": (Partials.MERGED, SideInput.SHARED_OR_PARTITIONED, True),
        "freshness": (Partials.MERGED, SideInput.NONE, False),
        "schema": (Partials.MERGED, SideInput.NONE, False),
        "change": (Partials.MERGED, SideInput.NONE, False),
        "anomaly": (Partials.MERGED, SideInput.NONE, False),
    }
    assert {kind for kind, cls in KINDS.items() if cls.reads_history} == {"change", "anomaly"}
    with pytest.raises(TypeError, match="declares reads_history but has no load_history"):
        type("Forgetful", (CheckBase,), {"reads_history": True})
    # a declaration is a promise: a class without the methods it declares is refused
    with pytest.raises(TypeError, match="declares Partials.BUCKETED but has no partition, split, finish_bucket, outcome"):
        type("Half", (CheckBase,), {"partials": Partials.BUCKETED})
    with pytest.raises(TypeError, match="SideInput.SHARED but has no shared_state, use_shared_state"):
        type("Needy", (CheckBase,), {"side_input": SideInput.SHARED})


def test_the_runtime_reads_the_declarations(ref_dataset, tmp_path) -> None:
    from batchaot.runtime import settle
    table = random_table(1, n=50)
    unique = check_for({"name": "u", "unique": ["i"]}, table.schema)
    count = check_for({"name": "n", "row_count": {"between": [1, None]}}, table.schema)
    rule = {"name": "r", "reference": {"columns": ["i"], "dataset": str(ref_dataset / "*.parquet"), "key": ["a"]}}
    shared, parted = check_for(rule, table.schema), check_for(rule, table.schema)
    assert [settle.bucket_count(c) for c in (unique, count, shared)] == [unique.buckets, 0, 0]
    assert settle.shares_state(shared) and not settle.shares_state(unique)
    assert settle.plan_side_inputs([shared], shared_rows=10**9) == []           # small: shared
    sides = settle.plan_side_inputs([count, parted], shared_rows=0)             # large: partitioned
    assert sides and {i for i, _ in sides} == {1} and settle.bucket_count(parted) == settle.SIDE_BUCKETS
    assert not settle.shares_state(parted) and settle.shared_states([count, parted]) == [None, None]
    # a URI cannot be planned in units: it stays shared whatever its size
    uri = check_for(rule, table.schema)
    uri.dataset = "s3://bucket/customers/"
    assert settle.plan_side_inputs([uri], shared_rows=0) == [] and settle.shares_state(uri)


def test_aggregates_are_parsed_by_the_compiler() -> None:
    import ast
    import inspect
    from batchaot.checks import aggregate
    from batchaot.compiler.aggregate import parse_aggregate
    tree = ast.parse(inspect.getsource(aggregate))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.startswith("sqlglot") for m in imported)
    assert str(parse_aggregate("a", "approx_quantile(x, 0.5)")) == "approx_quantile(x, 0.5)"
    assert str(parse_aggregate("a", "(count(*))")) == "count(*)"
    with pytest.raises(RuleError, match="unsupported aggregate"):
        parse_aggregate("a", "median(x)")
