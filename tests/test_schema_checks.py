"""Schema checks: columns, type families, extra columns and NOT NULL, checked from each
file's schema and Parquet footer before any row is read; NULL counts equal DuckDB's."""
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
from batchaot.errors import DataError, SpecError



def _schema_rule(body: dict, severity: str = "error") -> dict:
    return {"name": "shape", "schema": body, "severity": severity}


def _passes(table: pa.Table, body: dict) -> bool:
    res = batchaot.validate(table, [_schema_rule(body)])
    return res.to_dict()["rules"][0]["passed"]


STRINGS = {
    "string": pa.array(["a", None], pa.string()),
    "large_string": pa.array(["a", None], pa.large_string()),
    "string_view": pa.array(["a", None], pa.string_view()),
    "dictionary": pa.array(["a", None]).dictionary_encode(),
}


@pytest.mark.parametrize("kind", list(STRINGS))
def test_string_family_and_exact(kind: str) -> None:
    table = pa.table({"s": STRINGS[kind]})
    assert _passes(table, {"columns": {"s": "string"}})
    assert _passes(table, {"columns": {"s": "string"}, "exact": True}) is (kind == "string")
    assert not _passes(table, {"columns": {"s": "int64"}})


@pytest.mark.parametrize("declared, column, ok", [
    ("int64", pa.array([1], pa.int64()), True),
    ("int64", pa.array([1], pa.int32()), False),
    ("integer", pa.array([1], pa.uint16()), True),
    ("decimal(12,2)", pa.array([1], pa.decimal128(12, 2)), True),
    ("decimal(12,2)", pa.array([1], pa.decimal128(12, 3)), False),
    ("decimal(12,2)", pa.array([1], pa.decimal256(12, 2)), True),
    ("double", pa.array([1.0], pa.float64()), True),
    ("float64", pa.array([1.0], pa.float32()), False),
    ("timestamp", pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("ns", tz="Asia/Tokyo")), True),
    ("timestamp[us]", pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")), True),
    ("timestamp[us]", pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us", tz="UTC")), False),
    ("timestamp[us, tz=UTC]", pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us", tz="UTC")), True),
    ("date", pa.array([dt.date(2024, 1, 1)], pa.date32()), True),
    ("bool", pa.array([True]), True),
])
def test_types(declared: str, column: pa.Array, ok: bool) -> None:
    assert _passes(pa.table({"c": column}), {"columns": {"c": declared}}) is ok


def test_missing_and_extra_columns_stop_before_rows_are_read() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    rules = [_schema_rule({"columns": {"a": "int64", "z": "string"}, "extra_columns": "forbid"}),
             {"name": "uses_z", "check": "z > 0"}]           # would be a compile error (exit 2)
    res = batchaot.validate(table, rules)
    doc = res.to_dict()
    assert not res.ok and res.exit_code == 1 and doc["rows"] == 0
    assert "before any row was read" in doc["stopped"]
    shape, uses_z = doc["rules"]
    assert shape["passed"] is False and uses_z["passed"] is None and uses_z["reason"] == doc["stopped"]
    assert "column 'z' is missing" in shape["details"]["problems"]
    assert "extra column(s) b (extra_columns: forbid)" in shape["details"]["problems"]


def test_a_stopped_result_has_no_rows_and_a_summary() -> None:
    stopped = batchaot.validate(pa.table({"a": [1]}), [_schema_rule({"columns": {"b": "int64"}}),
                                                        {"name": "pos", "check": "a > 0"}])
    assert stopped.violations.num_rows == 0 and stopped.summary.num_rows == 2
    assert stopped.summary.column("passed").to_pylist() == [False, None]


def test_warn_schema_check_lets_the_run_go_on() -> None:
    table = pa.table({"a": [1, -2]})
    res = batchaot.validate(table, [_schema_rule({"columns": {"a": "string"}}, "warn"),
                                    {"name": "pos", "check": "a > 0"}])
    doc = res.to_dict()
    assert doc["stopped"] is None and doc["rules"][1]["violations"] == 1
    assert doc["rules"][0]["passed"] is False and res.exit_code == 1


def _nulls_by_duckdb(path, column: str) -> int:
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FILTER (WHERE {column} IS NULL) FROM read_parquet('{path}')").fetchall()[0][0]
    con.close()
    return n


def _corrupt_pages(path) -> None:
    """Overwrite the file's data pages, keeping its footer: reading rows fails, the schema
    and statistics still read."""
    meta = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    start, stop = 4, len(data) - 8 - meta.serialized_size      # PAR1 ... pages ... footer, len, PAR1
    data[start:stop] = b"\xff" * (stop - start)
    path.write_bytes(bytes(data))
    pq.read_metadata(path)              # the footer is intact


def test_footer_nulls_stop_the_run_without_reading_rows(tmp_path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None, 3, None, 5] * 100, pa.int64()),
                             "v": pa.array(range(500), pa.int64())}), path)
    expected = _nulls_by_duckdb(path, "id")
    _corrupt_pages(path)
    rule = _schema_rule({"columns": {"id": "int64"}, "nullable": {"id": False}})
    res = batchaot.validate(str(path), [rule, {"name": "v_odd", "check": "v % 7 <> 3"}])
    shape = res.to_dict()["rules"][0]
    assert res.stopped and str(path) in res.stopped and shape["details"]["nulls"] == {"id": expected}
    with pytest.raises(DataError):          # the rows really cannot be read
        batchaot.validate(str(path), [{"name": "v_odd", "check": "v % 7 <> 3"}])


def test_nulls_without_statistics_are_counted_while_reading(tmp_path) -> None:
    path = tmp_path / "nostats.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None, 3, None, None, 6], pa.int64())}), path,
                   write_statistics=False, row_group_size=2)
    res = batchaot.validate(str(path), [_schema_rule({"nullable": {"id": False}})])
    shape = res.to_dict()["rules"][0]
    assert res.stopped is None and res.rows == 6             # the gate could not tell: rows were read
    assert shape["passed"] is False and shape["details"]["nulls"] == {"id": _nulls_by_duckdb(path, "id")}


def test_empty_file_and_declared_non_nullable_field(tmp_path) -> None:
    path = tmp_path / "empty.parquet"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("t", pa.timestamp("ms", tz="UTC"))])
    pq.write_table(schema.empty_table(), path)
    body = {"columns": {"id": "int64", "t": "timestamp"}, "nullable": {"id": False, "t": False}}
    res = batchaot.validate(str(path), [_schema_rule(body)])
    assert res.ok and res.rows == 0 and res.to_dict()["rules"][0]["passed"]


@pytest.mark.parametrize("body, message", [
    ({"columns": ["a"]}, "columns"),
    ({"colums": {"a": "int64"}}, "unknown field 'colums'"),
    ({"extra_columns": "maybe"}, "allow or forbid"),
    ({"nullable": {"a": "no"}}, "true or false"),
])
def test_malformed_schema_rules_are_spec_errors(body, message) -> None:
    with pytest.raises(SpecError, match=message):
        batchaot.validate(pa.table({"a": [1]}), [_schema_rule(body)])


def _files(root, drift: bool) -> None:
    (root / "data").mkdir()
    for k in range(3):
        ids = pa.array([k * 10 + i for i in range(5)], pa.int32() if drift and k == 1 else pa.int64())
        pq.write_table(pa.table({"id": ids, "s": pa.array(["a"] * 5)}), root / "data" / f"p{k}.parquet")


def test_submit_names_every_file_that_disagrees(tmp_path) -> None:
    _files(tmp_path, drift=True)
    job = tmp_path / "job.yaml"
    job.write_text("name: s\nsource: {path: 'data/*.parquet'}\nrules:\n"
                   "  - {name: shape, schema: {columns: {id: int64, s: string}}}\n"
                   "  - {name: pos, check: \"id >= 0\"}\noutput: {path: out}\n")
    proc = CliRunner().invoke(main, ["submit", str(job), "--mode", "in-process", "--json"],
                              catch_exceptions=False)
    assert proc.exit_code == 1, proc.stderr
    doc = json.loads(proc.stdout)
    shape = doc["rules"][0]
    assert list(shape["details"]["files_failing"]) == [str(tmp_path / "data" / "p1.parquet")]
    assert shape["details"]["files_checked"] == 3 and doc["rows"] == 0
    assert "p1.parquet" in doc["stopped"] and doc["rules"][1]["passed"] is None
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stopped"] == doc["stopped"]
    assert "not run" in (tmp_path / "out" / "report.html").read_text()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_schema_freshness_and_now_on_ray_equal_in_process(tmp_path, local_ray) -> None:
    """NULLs counted on the workers (no statistics), freshness partials merged from them,
    current_date from the driver's fixed now: the same summary as in this process."""
    (tmp_path / "data").mkdir()
    for k in range(3):
        pq.write_table(pa.table({"id": pa.array([k, None, k + 10], pa.int64()),
                                 "d": pa.array([dt.date(2024, 5, 20 + k)] * 3, pa.date32())}),
                       tmp_path / "data" / f"p{k}.parquet", write_statistics=False)
    job = tmp_path / "job.yaml"
    job.write_text("name: r\nsource: {path: 'data/*.parquet'}\nnow: 2024-06-01T00:00:00Z\nrules:\n"
                   "  - {name: shape, schema: {columns: {id: int64}, nullable: {id: false}}, severity: warn}\n"
                   "  - {name: fresh, freshness: {column: d, max_age: 10d}}\n"
                   "  - {name: recent, check: \"d >= current_date - INTERVAL 11 day\"}\n")
    docs = {}
    for mode in ("in-process", "ray"):
        res = batchaot.Job.from_yaml(job).run(mode=mode, output=str(tmp_path / mode), workers=2)
        docs[mode] = {r["name"]: (r["passed"], r["violations"], r["value"], r["null_rows"]) for r in res.to_dict()["rules"]}
        assert res.mode == mode
    assert docs["ray"] == docs["in-process"]
    con = duckdb.connect()
    glob = tmp_path / "data" / "*.parquet"
    nulls, stale = con.execute(f"SELECT count(*) FILTER (WHERE id IS NULL), count(*) FILTER (WHERE NOT "
                               f"(d >= DATE '2024-06-01' - INTERVAL 11 day)) FROM read_parquet('{glob}')").fetchall()[0]
    assert docs["ray"]["shape"][3] == nulls and docs["ray"]["recent"][1] == stale
    assert docs["ray"]["fresh"][:1] == (True,)     # newest 2024-05-22: 10 days before now
