"""Freshness checks and the run's fixed "now" (current_date, now(), --now, `now:`).

DuckDB is the oracle: with its session time zone set to UTC, the newest value and its age
against the same fixed instant (written as a TIMESTAMPTZ literal in DuckDB's query, since
DuckDB's own now() cannot be fixed) decide pass or fail.
"""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from batchaot.compiler import clock
from batchaot.errors import RuleError, SpecError

from conftest import random_table

NOW = "2024-06-01T12:00:00Z"
NOW_SQL = "TIMESTAMPTZ '2024-06-01 12:00:00+00'"


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


def _oracle_fresh(con, table: pa.Table, column: str, max_age: str) -> tuple[bool | None, float | None]:
    """(within max_age of NOW, age in seconds) by DuckDB; (None, None) with no value."""
    con.register("t", table)
    row = con.execute(f"SELECT {NOW_SQL} - max({column})::TIMESTAMPTZ <= INTERVAL '{max_age}', "
                      f"epoch({NOW_SQL} - max({column})::TIMESTAMPTZ) FROM t").fetchall()[0]
    con.unregister("t")
    return row[0], row[1]


def _times(kind: str) -> pa.Array:
    base = dt.datetime(2024, 5, 31, 3, 30)
    values = [base - dt.timedelta(hours=h) for h in (40, 2, 70)] + [None]
    if kind == "naive_ns":
        return pa.array(values, pa.timestamp("ns"))
    if kind == "tz_ms":        # the same instants, shown in another zone: an instant is an instant
        return pa.array(values, pa.timestamp("ms", tz="America/New_York"))
    if kind == "date":
        return pa.array([v.date() if v else None for v in values], pa.date32())
    return pa.array(values, pa.timestamp("s", tz="UTC"))


@pytest.mark.parametrize("kind", ["naive_ns", "tz_ms", "date", "tz_s"])
@pytest.mark.parametrize("max_age", ["24h", "36h", "90m", "2d"])
def test_freshness_matches_duckdb(con, kind: str, max_age: str) -> None:
    table = pa.table({"u": _times(kind)})
    rule = {"name": "fresh", "freshness": {"column": "u", "max_age": max_age}}
    res = batchaot.validate(table, [rule], now=NOW)
    summary = res.to_dict()["rules"][0]
    unit = {"h": "hours", "m": "minutes", "d": "days"}[max_age[-1]]
    expected, age = _oracle_fresh(con, table, "u", f"{max_age[:-1]} {unit}")
    assert summary["passed"] is expected
    assert summary["value"] == pytest.approx(age)
    assert res.ok is expected and summary["violations"] == 0


@pytest.mark.parametrize("values", [[], [None, None]], ids=["empty", "all-null"])
def test_no_value_is_not_fresh(con, values) -> None:
    table = pa.table({"u": pa.array(values, pa.timestamp("us"))})
    assert _oracle_fresh(con, table, "u", "1 day") == (None, None)     # DuckDB: max is NULL
    res = batchaot.validate(table, [{"name": "f", "freshness": {"column": "u", "max_age": "1d"}}], now=NOW)
    s = res.to_dict()["rules"][0]
    assert not s["passed"] and s["value"] is None and "no non-NULL value" in s["details"]["note"]


def test_empty_parquet_file_is_not_fresh(tmp_path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"u": pa.array([], pa.timestamp("us", tz="UTC"))}), path)
    res = batchaot.validate(str(path), [{"name": "f", "freshness": {"column": "u", "max_age": "1d"}}], now=NOW)
    assert not res.ok and res.to_dict()["rules"][0]["value"] is None


def test_future_value_is_fresh_and_said() -> None:
    table = pa.table({"u": pa.array([dt.datetime(2024, 6, 2)], pa.timestamp("us"))})
    s = batchaot.validate(table, [{"name": "f", "freshness": {"column": "u", "max_age": "1h"}}],
                          now=NOW).to_dict()["rules"][0]
    assert s["passed"] and s["value"] == -12 * 3600 and "after now" in s["details"]["note"]


def test_where_filters_the_rows_that_count(con) -> None:
    table = pa.table({"u": _times("naive_ns"), "k": pa.array([1, 2, 1, 2])})
    rule = {"name": "f", "freshness": {"column": "u", "max_age": "36h"}, "where": "k = 1"}
    s = batchaot.validate(table, [rule], now=NOW).to_dict()["rules"][0]
    con.register("t", table)
    age = con.execute(f"SELECT epoch({NOW_SQL} - max(u)::TIMESTAMPTZ) FROM t WHERE k = 1").fetchall()[0][0]
    assert s["value"] == pytest.approx(age) and s["passed"] is (age <= 36 * 3600)


@pytest.mark.parametrize("body, message", [
    ({"column": "k", "max_age": "1d"}, "needs a timestamp or date"),
    ({"column": "u", "max_age": "soon"}, "max_age"),
    ({"column": "u", "max_age": "0h"}, "max_age"),
    ({"column": "u"}, "freshness"),
    ({"column": "nope", "max_age": "1d"}, "unknown column"),
])
def test_bad_freshness_rules_are_user_errors(body, message) -> None:
    table = pa.table({"u": _times("naive_ns"), "k": pa.array([1, 2, 1, 2])})
    with pytest.raises((RuleError, SpecError), match=message):
        batchaot.validate(table, [{"name": "f", "freshness": body}], now=NOW)


@pytest.mark.parametrize("pred", [
    "d >= current_date - INTERVAL 30 day",
    "ts < now() - INTERVAL 36 hour",
    "ts <= current_timestamp",
    "d = current_date OR d IS NULL",
    "date_diff('day', d, current_date) < 200",
    "ts > current_date",
])
def test_current_date_and_now_match_duckdb(con, pred: str) -> None:
    table = random_table(7, n=300).select(["d", "ts"])
    table = table.set_column(0, "d", pa.array([dt.date(2024, 6, 1)] * 3 + table["d"].to_pylist()[3:], pa.date32()))
    res = batchaot.validate(table, [{"name": "r", "check": pred}], now=NOW)
    con.register("t", table)
    fixed = pred.replace("current_date", f"CAST({NOW_SQL} AS DATE)").replace("now()", NOW_SQL) \
                .replace("current_timestamp", NOW_SQL)
    expected = con.execute(f"SELECT count(*) FILTER (WHERE NOT ({fixed})) FROM t").fetchall()[0][0]
    assert res.to_dict()["rules"][0]["violations"] == expected
    assert res.now == NOW


def test_now_is_a_constant_the_optimizer_folds() -> None:
    schema = pa.schema([("d", pa.date32())])
    with clock.fixed(clock.parse(NOW)):
        folded = batchaot.compile("current_date > DATE '2024-01-01'", schema)
    assert folded.zero_tick                     # 2024-06-01 > 2024-01-01: provably TRUE
    with clock.fixed(clock.parse("2023-06-01")):
        other = batchaot.compile("d < current_date", schema)
    with clock.fixed(clock.parse(NOW)):
        same = batchaot.compile("d < current_date", schema)
    # the instant is a constant operand: one code shape, different constant tables
    assert list(other.code.tolist()) == list(same.code.tolist())
    assert list(other.kval) != list(same.kval)


def test_bad_now_is_a_usage_error() -> None:
    with pytest.raises(SpecError, match="ISO 8601"):
        batchaot.validate(pa.table({"x": [1]}), [{"name": "r", "check": "x > 0"}], now="yesterday")


def test_cli_now_and_job_now(tmp_path) -> None:
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"u": _times("tz_s")}), data)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: fresh, freshness: {column: u, max_age: 36h}}\n")
    def run(*args):
        res = CliRunner().invoke(main, list(args), catch_exceptions=False)
        res.returncode = res.exit_code
        return res

    fresh = run("validate", str(data), "-r", str(rules), "--now", "2024-06-01T00:00:00Z", "--json")
    stale = run("validate", str(data), "-r", str(rules), "--now", "2024-06-03", "--json")
    assert (fresh.returncode, stale.returncode) == (0, 1), (fresh.stderr, stale.stderr)
    assert json.loads(fresh.stdout)["now"] == "2024-06-01T00:00:00Z"
    job = tmp_path / "job.yaml"
    job.write_text(f"name: j\nsource: {{path: {data.name}}}\nnow: 2024-06-03T00:00:00Z\n"
                   "rules:\n  - {name: fresh, freshness: {column: u, max_age: 36h}}\noutput: {path: out}\n")
    by_job = run("submit", str(job), "--json", "--mode", "in-process")
    overridden = run("submit", str(job), "--json", "--mode", "in-process", "--now", "2024-06-01T00:00:00Z")
    assert (by_job.returncode, overridden.returncode) == (1, 0), (by_job.stderr, overridden.stderr)
    assert json.loads(by_job.stdout)["now"] == "2024-06-03T00:00:00Z"
    assert run("validate", str(data), "-r", str(rules), "--now", "soon").returncode == 2


def test_validate_reads_now_from_the_rules_file(tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("now: 2024-06-01T00:00:00Z\nrules:\n  - {name: r, check: \"d = current_date\"}\n")
    table = pa.table({"d": pa.array([dt.date(2024, 6, 1), dt.date(2024, 6, 2)])})
    res = batchaot.validate(table, str(rules))
    assert res.now == "2024-06-01T00:00:00Z" and res.to_dict()["rules"][0]["violations"] == 1
    assert batchaot.validate(table, str(rules), now="2024-06-02").to_dict()["rules"][0]["violations"] == 1


def test_nanosecond_and_date64_values(con) -> None:
    ns = pa.array([1717200000123456999, None], pa.timestamp("ns"))         # 2024-06-01 00:00:00.123456999
    d64 = pa.array([dt.date(2024, 5, 31), None], pa.date64())
    for column in (ns, d64):
        table = pa.table({"u": column})
        s = batchaot.validate(table, [{"name": "f", "freshness": {"column": "u", "max_age": "12h"}}],
                              now=NOW).to_dict()["rules"][0]
        expected, age = _oracle_fresh(con, table, "u", "12 hours")
        assert s["passed"] is expected and s["value"] == pytest.approx(age, abs=1e-6)


def test_compile_cache_keys_carry_the_instant_only_for_rules_that_read_it() -> None:
    from batchaot.compiler import cache
    schema = pa.schema([("d", pa.date32())])
    keys = []
    for day in ("2024-01-01", "2024-01-02"):
        with clock.fixed(clock.parse(day)):
            keys.append((cache.key("r", "d < current_date", False, schema), cache.key("r", "d < 3", False, schema),
                         cache.file_key(b"- {name: r, check: 'd < now()'}", schema)))
    (a1, b1, f1), (a2, b2, f2) = keys
    assert a1 != a2 and f1 != f2 and b1 == b2
