"""CSV NULLs read as DuckDB's read_csv reads them (the rules' semantics oracle): an empty
field, quoted or not, is NULL in every column type; NA, null, nan are text; a job's
`source.csv.null_values` replaces the empty string as the NULL marker."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchaot
from batchaot.io import sources

# s: unquoted empty, quoted empty, NULL-looking words, a quoted delimiter;
# i, f: numbers with empty fields (still inferred as numbers)
MIXED = (
    "s,i,f\n"
    "x,1,1.5\n"
    ",,\n"
    '"",2,\n'
    "NA,3,2.5\n"
    "null,,\n"
    "nan,4,3\n"
    '"a,b",5,1\n'
    "N/A,6,\n"
    '"NA",,0.5\n'
)
ARROW_TYPE = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duck(path: Path, nullstr: list[str] | None = None, columns: dict[str, str] | None = None,
         select: str = "*") -> duckdb.DuckDBPyRelation:
    args = [_sql_str(str(path))]
    if nullstr is not None:
        args.append("nullstr=[" + ", ".join(_sql_str(v) for v in nullstr) + "]")
    if columns is not None:
        cols = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in columns.items())
        args.append("columns={" + cols + "}, header=true, delim=',', quote='\"'")
    return duckdb.sql(f"SELECT {select} FROM read_csv({', '.join(args)})")


def duck_columns(rel: duckdb.DuckDBPyRelation) -> dict[str, list]:
    rows = rel.fetchall()
    return {name: [r[i] for r in rows] for i, name in enumerate(rel.columns)}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    return path


def test_read_table_equals_duckdb(mixed: Path) -> None:
    rel = duck(mixed)
    table = sources.read_table(str(mixed))
    assert table.to_pydict() == duck_columns(rel)
    assert [table.schema.field(c).type for c in rel.columns] == [ARROW_TYPE[str(t)] for t in rel.types]
    nulls = duck(mixed, select="count(*) - count(s), count(*) - count(i), count(*) - count(f)").fetchall()[0]
    assert tuple(table.column(c).null_count for c in "sif") == nulls == (2, 3, 4)
    assert table.column("s").to_pylist().count("NA") == 2 and "null" in table.column("s").to_pylist()


def test_streaming_and_schema_equal_duckdb(mixed: Path) -> None:
    want = duck_columns(duck(mixed))
    batches = list(sources.iter_batches(str(mixed), "csv"))
    assert pa.Table.from_batches(batches).to_pydict() == want
    # a column selection keeps the NULL settings
    picked = pa.Table.from_batches(list(sources.iter_batches(str(mixed), "csv", columns=["s", "i"])))
    assert picked.to_pydict() == {"s": want["s"], "i": want["i"]}
    assert sources.read_table(str(mixed), columns=["s"]).column("s").to_pylist() == want["s"]
    schema = sources.read_schema(str(mixed))
    assert [schema.field(c).type for c in "sif"] == [pa.string(), pa.int64(), pa.float64()]


PREDICATES = {
    "known_s": "s IN ('x', 'NA', 'nan')",
    "nonempty_s": "length(s) > 0",
    "has_s": "s IS NOT NULL",
    "empty_s": "s <> ''",
    "big_i": "i > 2",
    "small_f": "f < 2.0",
}
PREDICATES_INDEX = {n: i for i, n in enumerate(PREDICATES)}


def duck_violations(path: Path, nullstr: list[str] | None = None) -> list[int]:
    select = ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for p in PREDICATES.values())
    return list(duck(path, nullstr, select=select).fetchall()[0])


def test_validate_counts_equal_duckdb(mixed: Path) -> None:
    rules = [{"name": n, "check": p} for n, p in PREDICATES.items()]
    result = batchaot.validate(str(mixed), rules)
    got = {r.summary()["name"]: r.summary()["violations"] for r in result.rules}
    want = duck_violations(mixed)
    assert [got[n] for n in PREDICATES] == want
    # "null", "a,b", "N/A" fail; the two empty fields are NULL, which is no violation
    assert want[PREDICATES_INDEX["known_s"]] == 3 and want[PREDICATES_INDEX["has_s"]] == 2


# with nullstr NA: NA (quoted or not) is NULL, an empty field is the empty string
NA_FILE = (
    "s,i,f\n"
    "x,1,1.5\n"
    ",2,0.5\n"
    '"",NA,2.5\n'
    "NA,3,NA\n"
    '"NA",4,3\n'
    "null,5,1\n"
)


def test_job_null_values_equal_duckdb_nullstr(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(NA_FILE)
    rel = duck(path, ["NA"])
    table = sources.read_table(str(path), csv={"null_values": ["NA"]})
    assert table.to_pydict() == duck_columns(rel)
    assert table.column("s").to_pylist() == ["x", "", "", None, None, "null"]
    assert [table.schema.field(c).type for c in "sif"] == [pa.string(), pa.int64(), pa.float64()]
    both = sources.read_table(str(path), csv={"null_values": ["NA", ""]})
    assert both.to_pydict() == duck_columns(duck(path, ["NA", ""]))
    rules = "".join(f"  - {{name: {n}, check: \"{p}\"}}\n" for n, p in PREDICATES.items())
    (tmp_path / "job.yaml").write_text(
        "name: nulls\nsource: {path: d.csv, csv: {null_values: ['NA']}}\nrules:\n" + rules)
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(tmp_path / "o"))
    got = {r["name"]: r["violations"] for r in res.to_dict()["rules"]}
    assert [got[n] for n in PREDICATES] == duck_violations(path, ["NA"])


# CSV text of a string field: unquoted/quoted empty, NULL-looking words, a quoted delimiter
STRING_FIELDS = ["", '""', "NA", '"NA"', "null", "nan", '"a,b"', "x", '"x"']
INT_FIELDS = ["", '""', "0", "7", "-3"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STRING_FIELDS), st.sampled_from(INT_FIELDS)), min_size=1, max_size=30))
def test_random_fields_equal_duckdb(rows: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        path.write_text("s,i\n" + "".join(f"{s},{i}\n" for s, i in rows))
        # DuckDB's own type detection: a column of "nan" and NULLs is DOUBLE there as here
        want = _no_nan(duck_columns(duck(path)))
        typed = _no_nan(duck_columns(duck(path, columns={"s": "VARCHAR", "i": "BIGINT"})))
        table = sources.read_table(os.fspath(path))
        assert _no_nan(table.to_pydict()) == want
        assert [table.column(c).null_count for c in "si"] == [want[c].count(None) for c in "si"]
        assert want["i"] == typed["i"] and [v is None for v in want["s"]] == [v is None for v in typed["s"]]
        # a column of NULLs only infers as the null type; any number makes it int64
        assert table.schema.field("i").type in (pa.int64(), pa.null())
        streamed = pa.Table.from_batches(list(sources.iter_batches(os.fspath(path), "csv")))
        assert _no_nan(streamed.to_pydict()) == want


def _no_nan(columns: dict[str, list]) -> dict[str, list]:
    """NaN as a marker, so that equal columns compare equal."""
    return {k: ["<NaN>" if isinstance(v, float) and v != v else v for v in vs] for k, vs in columns.items()}
