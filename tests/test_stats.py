"""Row-group statistics may prove rules TRUE (zero-tick at the data level). A proof must
never be wrong: whenever one is made, the rule really has no violation in that group."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchaot
from batchaot.engine.stats import row_group_proofs
from conftest import random_table
from test_semantics_duckdb import CONSTRUCTS, predicates

GROUP = 40


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory):
    """Sorted by i so groups have narrow ranges; one column all NULL in places."""
    table = random_table(11, n=600)
    table = table.sort_by([("i", "ascending")])
    path = tmp_path_factory.mktemp("stats") / "t.parquet"
    pq.write_table(table, path, row_group_size=GROUP)
    return path, table


def check_proofs(path, table: pa.Table, sql: str) -> int:
    """Asserts every proof holds; returns how many (rule, group) pairs were proven."""
    pf = pq.ParquetFile(path)
    progs = [batchaot.compile(sql, table, name="lax"), batchaot.compile(sql, table, name="strict", strict=True)]
    proven = 0
    for rg in range(pf.metadata.num_row_groups):
        proofs = row_group_proofs(pf.metadata, pf.schema_arrow, progs, rg)
        if not any(proofs):
            continue
        group = pf.read_row_group(rg)
        res = batchaot.validate(group, [{"name": "lax", "check": sql},
                                        {"name": "strict", "check": sql, "strict": True}])
        for proof, rule in zip(proofs, res.to_dict()["rules"]):
            if proof:
                proven += 1
                assert rule["violations"] == 0, (sql, rg, rule)
    return proven


def test_every_construct_proof_is_sound(parquet_file) -> None:
    path, table = parquet_file
    assert sum(check_proofs(path, table, sql) for sql in CONSTRUCTS) > 50


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(pred=predicates())
def test_random_predicate_proofs_are_sound(parquet_file, pred: str) -> None:
    path, table = parquet_file
    check_proofs(path, table, pred)


def test_range_rules_are_proven_and_nan_is_respected(parquet_file) -> None:
    path, table = parquet_file
    for sql in ("i BETWEEN -100 AND 100", "i > -1000 OR j IS NULL", "d > DATE '2000-01-01'",
                "ts < TIMESTAMP '2100-01-01'", "dec > -100000"):
        assert check_proofs(path, table, sql) > 0, sql
    # floats: statistics ignore NaN, which sorts above every number
    f = pa.table({"x": pa.array([1.0, float("nan"), 2.0])})
    pq.write_table(f, path.parent / "nan.parquet")
    pf = pq.ParquetFile(path.parent / "nan.parquet")
    below, above = batchaot.compile("x < 100", f), batchaot.compile("x > 0", f)
    assert row_group_proofs(pf.metadata, pf.schema_arrow, [below, above], 0) == [False, True]


def test_job_skips_row_groups_with_the_same_answer(tmp_path) -> None:
    from batchaot.runtime.unit import UnitRunner
    from batchaot.io.units import plan
    table = random_table(3, n=2000).sort_by([("i", "ascending")])
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=100)
    progs = [batchaot.compile(sql, table, name=f"r{k}") for k, sql in
             enumerate(["i > -45", "i < 100", "j IS NULL OR j > -100", "d IS NOT NULL OR i > -40"])]
    (unit,) = plan([str(tmp_path / "t.parquet")])
    blobs = [p.to_bytes() for p in progs]
    fast = UnitRunner(blobs, str(tmp_path / "a"), use_statistics=True)
    slow = UnitRunner(blobs, str(tmp_path / "b"), use_statistics=False)
    for d in ("a", "b"):
        (tmp_path / d / "violations").mkdir(parents=True)
    got, want = fast.run(unit), slow.run(unit)
    assert got.counts.to_pydict()["violations"] == want.counts.to_pydict()["violations"]
    assert got.rows == want.rows == 2000 and got.row_groups_skipped > 0 and want.row_groups_skipped == 0
    a = pq.read_table(tmp_path / "a" / "violations").sort_by([("rule", "ascending"), ("row", "ascending")])
    b = pq.read_table(tmp_path / "b" / "violations").sort_by([("rule", "ascending"), ("row", "ascending")])
    assert a.equals(b)
    assert pc.sum(pc.equal(a["rule"], "r0")).as_py() > 0
