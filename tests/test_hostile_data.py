"""Hostile and unusual data (issue 13's probe): every case gets DuckDB's answer or one
clear line naming the file and the column, never a traceback; `validate` and `submit`
agree on the same input.

A row violates a rule iff its predicate is FALSE (strict: NOT TRUE); DuckDB is the oracle
wherever it answers. Where DuckDB raises instead (timestamps widened past 64 bits), the
exact answer computed with Python integers is the oracle, and DuckDB is checked against it
wherever it does answer.
"""
from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import os
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from batchaot.errors import BatchaotError, DataError, RuleError

D = decimal.Decimal


def duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")       # batchaot reads TIMESTAMPTZ in UTC
    con.execute("SET error_on_division_by_zero = false")
    return con


def duck_counts(con, table: pa.Table, pred: str) -> tuple[int, int]:
    con.register("t", table)
    try:
        return tuple(int(x) for x in con.execute(
            f"SELECT count(*) FILTER (WHERE NOT ({pred})), "
            f"count(*) FILTER (WHERE ({pred}) IS NOT TRUE) FROM t").fetchall()[0])
    finally:
        con.unregister("t")


def counts(data, preds: list[str]) -> list[tuple[int, int]]:
    """(violations, strict violations) per predicate, from one validate call."""
    rules = [r for k, p in enumerate(preds) for r in ({"name": f"l{k}", "check": p},
                                                       {"name": f"s{k}", "check": p, "strict": True})]
    found = {r["name"]: r["violations"] for r in batchaot.validate(data, rules).to_dict()["rules"]}
    return [(found[f"l{k}"], found[f"s{k}"]) for k in range(len(preds))]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def write_job(folder, name: str, paths, rules: list[dict], on_error: str = "continue") -> str:
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump({"name": name, "source": {"path": [str(p) for p in paths]}, "rules": rules,
                   "output": {"path": str(os.path.join(folder, f"out-{name}"))}, "on_error": on_error}, f)
    return path


def submit(job_file: str):
    return batchaot.Job.from_yaml(job_file).run(mode="in-process")


# --- 1. decimals of every width -------------------------------------------------------

DEC_VALUES = [D("1.50"), D("-2.25"), None, D("0.00"), D("12345.67"), D("-0.01"), D("9999999.99"),
              D("-9999999.99"), D("0.01"), None, D("1.49"), D("-1.50")]
DEC_PREDS = ["d > 0", "d = 1.5", "d BETWEEN -1 AND 1.5", "d * 2 < d + 1", "d IN (0, -0.01, 12345.67)",
             "d + 0.005 > 0", "CAST(d AS DOUBLE) < 1", "abs(d) >= 2.25"]


@pytest.mark.parametrize("width", [32, 64, 128, 256])
def test_decimals_of_every_width_read_right(width) -> None:
    con = duck()
    make = {32: pa.decimal32, 64: pa.decimal64, 128: pa.decimal128, 256: pa.decimal256}[width]
    precision = 9 if width == 32 else 18
    values = [None if v is None else (v if width != 32 else v.scaleb(-4).quantize(D("0.01"))) for v in DEC_VALUES]
    full = pa.array(values * 3, make(precision, 2))
    arr = full.slice(5, 2 * len(values))                 # an offset into the buffer, too
    table = pa.table({"d": arr})
    oracle = pa.table({"d": arr.cast(pa.decimal128(precision, 2))})   # DuckDB reads no decimal256
    assert counts(table, DEC_PREDS) == [duck_counts(con, oracle, p) for p in DEC_PREDS]


def test_wide_decimals_are_refused_clearly() -> None:
    for t in (pa.decimal128(19, 2), pa.decimal256(40, 2)):
        with pytest.raises(RuleError) as err:
            batchaot.validate(pa.table({"d": pa.array([D("1.00")], t)}), [{"name": "r", "check": "d > 0"}])
        assert "column 'd'" in one_line(err.value) and "precision" in str(err.value)


# --- 2. timestamps of different units, dates, time zones -------------------------------

_UNITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
S_EXTREMES = [0, -1, 1, 32503680000, -32503680000, 253402300799, -30610224000, 86399, -86401,
              9_000_000_000, -9_223_372_036, 9_223_372_036]


def _ts_table() -> pa.Table:
    """Every unit, with and without a time zone, plus date32/date64, holding values that
    overflow when widened to a finer unit (year 3000 in seconds vs nanoseconds, year 940
    in milliseconds ...), values one tick apart across units, and NULLs."""
    n = len(S_EXTREMES)
    rng = np.random.default_rng(13)
    cols = {}
    for unit, scale in _UNITS.items():
        limit = (2**63 - 1) // 10 ** scale
        base = [s * 10 ** scale for s in S_EXTREMES if abs(s) <= limit]
        base += [int(x) for x in rng.integers(-10**9, 10**9, n)]          # near the epoch
        base += [-(2**63) + 1, 2**63 - 1, 10 ** scale - 1, -(10 ** scale) + 1]
        vals = (base * 3)[: 3 * n]
        for tz in (None, "UTC") if unit in ("s", "ns") else (None,):
            name = f"t_{unit}" + ("_tz" if tz else "")
            cols[name] = pa.array([None if k % 7 == 3 else v for k, v in enumerate(vals)],
                                  pa.timestamp(unit, tz=tz))
    days = [s // 86400 for s in S_EXTREMES] + [0, -1, 1, 2_932_896, -719_162]
    cols["d32"] = pa.array([None if k % 5 == 1 else (days * 4)[k] for k in range(3 * n)], pa.date32())
    ms = [0, -1, 1, 86_400_000 - 1, -86_400_001, 86_400_000 * 3 + 5, -86_400_000 * 700_000, 86_400_000 * 365]
    cols["d64"] = pa.array([None if k % 6 == 2 else (ms * 5)[k] for k in range(3 * n)], pa.date64())
    return pa.table(cols)


def _exact(arr: pa.Array) -> list:
    """Values as Python ints in nanoseconds (unbounded), as DuckDB reads them: a
    timestamp of ±(2^63-1) ticks or a date32 of ±(2^31-1) days is ±infinity."""
    t = arr.type
    raw = arr.cast(pa.int64()).to_pylist() if not pa.types.is_date(t) else \
        arr.view(pa.int32() if pa.types.is_date32(t) else pa.int64()).to_pylist()
    if pa.types.is_timestamp(t):
        return [None if v is None else _inf(v, 2**63 - 1) or v * 10 ** (9 - _UNITS[t.unit]) for v in raw]
    if pa.types.is_date32(t):
        return [None if v is None else _inf(v, 2**31 - 1) or v * 86400 * 10**9 for v in raw]
    # date64: milliseconds to days truncated toward zero (DuckDB)
    return [None if v is None else int(v / 86_400_000) * 86400 * 10**9 if abs(v) < 2**52
            else (abs(v) // 86_400_000) * (1 if v >= 0 else -1) * 86400 * 10**9 for v in raw]


def _inf(v: int, top: int) -> float | None:
    return float("inf") if v == top else float("-inf") if v == -top else None


_OPS = {"<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
        ">=": lambda x, y: x >= y, "=": lambda x, y: x == y, "<>": lambda x, y: x != y}


def test_timestamps_of_different_units_compare_exactly() -> None:
    table = _ts_table()
    con = duck()
    names = table.column_names
    preds, expected = [], []
    for a in names:
        for b in names:
            if a == b:
                continue
            for op in ("<", "<=", "=", "<>") if a < b else (">", ">="):
                x, y = _exact(table[a].combine_chunks()), _exact(table[b].combine_chunks())
                truth = [None if u is None or v is None else _OPS[op](u, v) for u, v in zip(x, y)]
                preds.append(f"{a} {op} {b}")
                expected.append((truth.count(False), len(truth) - truth.count(True)))
    got = counts(table, preds)
    assert got == expected
    answered = 0
    for pred, want in zip(preds, expected):
        try:
            assert duck_counts(con, table, pred) == want, pred    # the oracle agrees with DuckDB
            answered += 1
        except duckdb.Error:
            pass                       # DuckDB: "Could not convert Timestamp to higher precision"
    assert answered > 40


def test_timestamp_literals_beyond_the_nanosecond_range_compare_exactly() -> None:
    # 2^63-2 ns is 2262-04-11 23:47:16.854775806; ±(2^63-1) is ±infinity to DuckDB
    table = pa.table({"t": pa.array([0, -1, 2**63 - 2, None, -(2**63) + 2, 2**63 - 1, -(2**63) + 1],
                                    pa.timestamp("ns"))})
    assert counts(table, ["t < TIMESTAMP '3000-01-01'", "t > TIMESTAMP '0940-06-01 12:00:00'",
                          "t <> DATE '2500-01-01'", "t > TIMESTAMP_S '2262-04-11 23:47:16'",
                          "t >= TIMESTAMP '2262-04-11 23:47:16.854776'"]) == \
        [(1, 2), (1, 2), (0, 1), (4, 5), (5, 6)]


# --- 3. timestamp literals as DuckDB reads them -----------------------------------------

H = 3600 * 10**6
LITERAL_PREDS = [
    "tz = '1970-01-01 10:00:00+05:00'", "n = '1970-01-01 10:00:00+05:00'",
    "tz = TIMESTAMP '1970-01-01 10:00:00+05:00'", "n = TIMESTAMP '1970-01-01 10:00:00+05:00'",
    "n = TIMESTAMPTZ '1970-01-01 10:00:00+05:00'", "tz = TIMESTAMPTZ '1970-01-01 10:00:00+05:00'",
    "n = CAST('1970-01-01 10:00:00+05:00' AS TIMESTAMPTZ)", "tz = '1970-01-01 05:00:00'",
    "n = '1970-01-01T10:00:00Z'", "n <> '1970-01-01 10:00:00 Europe/Paris'",
    "tz > TIMESTAMPTZ '1970-01-01 11:00:00 Europe/Paris'", "n >= TIMESTAMP '1970-01-01 10:00:00 +0530'",
    "ns > TIMESTAMP '1970-01-01 10:00:00'", "ns >= TIMESTAMP_NS '1970-01-01 10:00:00.000000001'",
    "ns = TIMESTAMP_NS '1970-01-01 10:00:00.0000000019'", "n = TIMESTAMP '1970-01-01 10:00:00.0000009'",
    "s < TIMESTAMP_S '1970-01-01 09:59:59.5'", "s = TIMESTAMP_S '1969-12-31 23:59:59.5'",
    "s = TIMESTAMP_S '1969-12-31 23:59:59.6'", "ms = TIMESTAMP_MS '1969-12-31 23:59:59.9995'",
    "s = '1970-01-01 10:00:00.4'", "n = TIMESTAMP '1970-01-01 24:00:00'", "n > TIMESTAMP '1970-1-1 1:2:3'",
    "d < TIMESTAMP '1970-01-01 00:00:00.000001'", "d <= TIMESTAMP_NS '1969-12-31 23:59:59.999999999'",
    "n BETWEEN DATE '1970-01-01' AND TIMESTAMP_S '1970-01-01 06:00:00'",
    "ns IN (TIMESTAMP '1970-01-01 05:00:00', n)", "d64 = d", "d64 < DATE '1970-01-01'",
    "tz > TIMESTAMP '9999-12-31 23:59:59'", "n < TIMESTAMP '0001-01-01'",
]


def test_timestamp_literals_are_read_as_duckdb_reads_them() -> None:
    table = pa.table({
        "tz": pa.array([10 * H, 5 * H, None, -1, 0], pa.timestamp("us", tz="UTC")),
        "n": pa.array([10 * H, 5 * H, 7, -1, 24 * H], pa.timestamp("us")),
        "ns": pa.array([10 * H * 1000 + 1, 5 * H * 1000, 0, -1, 10 * H * 1000 + 2], pa.timestamp("ns")),
        "s": pa.array([36000, 18000, 0, -1, None], pa.timestamp("s")),
        "ms": pa.array([-1, 0, 1, -2, None], pa.timestamp("ms")),
        "d": pa.array([0, 1, -1, None, 2], pa.date32()),
        "d64": pa.array([-1, 86_400_000, -86_400_001, None, 172_800_000 - 1], pa.date64()),
    })
    con = duck()
    assert counts(table, LITERAL_PREDS) == [duck_counts(con, table, p) for p in LITERAL_PREDS]


def test_bad_timestamp_literals_are_refused_in_one_line() -> None:
    table = pa.table({"n": pa.array([0], pa.timestamp("us"))})
    for lit in ("2024-02-30", "2024-01-01 10:00:60", "2024-01-01 24:00:01", "20240101",
                "2024-01-01 10:00:00 Not/AZone"):
        with pytest.raises(RuleError) as err:
            batchaot.validate(table, [{"name": "r", "check": f"n > TIMESTAMPTZ '{lit}'"}])
        assert "not a valid" in one_line(err.value)


# --- 4. string_view ------------------------------------------------------------------------

SV_PREDS = ["s = 'bb'", "s IN ('a', 'ccc', 'zz')", "length(s) > 1", "s LIKE 'b%'", "upper(s) <> 'A'",
            "regexp_matches(s, '^c+$')", "s > 'b'", "s IS NULL", "starts_with(s, 'c')"]


def test_string_view_columns_are_read() -> None:
    values = ["a", "bb", None, "ccc", "a much longer string than twelve bytes", "", "bb"] * 700
    arr = pa.array(values, pa.string_view()).slice(3)
    table = pa.table({"s": arr})
    con = duck()
    assert counts(table, SV_PREDS) == [duck_counts(con, table, p) for p in SV_PREDS]
    small = pa.table({"s": pa.array(values[:40], pa.string_view())})       # the pyarrow path too
    assert counts(small, SV_PREDS) == [duck_counts(con, small, p) for p in SV_PREDS]
    res = batchaot.validate(small, [{"name": "u", "unique": ["s"]}, {"name": "r", "check": "s <> 'bb'"}])
    assert [r["violations"] for r in res.to_dict()["rules"]] == [duck_counts(
        con, small, "s NOT IN (SELECT s FROM t GROUP BY s HAVING count(*) > 1) OR s IS NULL")[0],
        duck_counts(con, small, "s <> 'bb'")[0]]
    assert res.violations.num_rows > 0


def test_string_view_files_under_validate_and_submit(tmp_path) -> None:
    table = pa.table({"s": pa.array(["x", "yy", None, "x"] * 10, pa.string_view())})
    path = tmp_path / "v.arrow"
    feather.write_feather(table, path)
    rules = [{"name": "r", "check": "s = 'x'"}]
    assert batchaot.validate(str(path), rules).to_dict()["rules"][0]["violations"] == 10
    assert submit(write_job(tmp_path, "sv", [path], rules)).to_dict()["rules"][0]["violations"] == 10


# --- 5. compressed CSV / JSONL ---------------------------------------------------------------

RULES_AC = [{"name": "pos", "check": "a > 0"}, {"name": "rc", "row_count": {"between": [1, None]}}]


@pytest.mark.parametrize("ext", [".csv.gz", ".tsv.gz", ".jsonl.gz", ".csv.bz2", ".csv.zst", ".ndjson.gz"])
def test_compressed_text_files_validate_and_submit(tmp_path, ext) -> None:
    table = pa.table({"a": [1, -2, 3, 4, None], "s": ["x", "y", "z", None, "w"]})
    plain = tmp_path / ("d" + ext.rsplit(".", 1)[0])
    if ".csv" in ext or ".tsv" in ext:
        pacsv.write_csv(table, plain, pacsv.WriteOptions(delimiter="\t" if ".tsv" in ext else ","))
    else:
        plain.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    codec = ext.rsplit(".", 1)[1]
    packed = tmp_path / ("d" + ext)
    with pa.CompressedOutputStream(str(packed), {"gz": "gzip", "bz2": "bz2", "zst": "zstd"}[codec]) as out:
        out.write(plain.read_bytes())
    want = [r["violations"] for r in batchaot.validate(str(plain), RULES_AC).to_dict()["rules"]]
    assert want == [1, 0]
    assert [r["violations"] for r in batchaot.validate(str(packed), RULES_AC).to_dict()["rules"]] == want
    code, out, _ = cli("validate", str(packed), "--rules", _rules_file(tmp_path, RULES_AC), "--json")
    assert code == 1 and json.loads(out)["rows"] == 5
    os.unlink(plain)
    res = submit(write_job(tmp_path, "gz", [tmp_path], RULES_AC))       # a folder finds it
    assert res.files == [str(packed)] and [r["violations"] for r in res.to_dict()["rules"]] == want


def _rules_file(folder, rules: list[dict]) -> str:
    path = os.path.join(folder, "rules.yaml")
    with open(path, "w") as f:
        json.dump({"rules": rules}, f)
    return path


def test_compressed_binary_formats_are_refused_clearly(tmp_path) -> None:
    path = tmp_path / "d.parquet.gz"
    path.write_bytes(gzip.compress(b"PAR1"))
    with pytest.raises(DataError) as err:
        batchaot.validate(str(path), RULES_AC)
    assert "d.parquet.gz" in one_line(err.value) and "decompress" in str(err.value)


# --- 6. zero rows ---------------------------------------------------------------------------

def _empty_files(tmp_path) -> list:
    schema = pa.schema([("a", pa.int64()), ("s", pa.string())])
    empty = schema.empty_table()
    files = [tmp_path / "one_empty_group.parquet", tmp_path / "no_groups.parquet",
             tmp_path / "e.arrow", tmp_path / "e.csv"]
    pq.write_table(empty, files[0])
    with pq.ParquetWriter(files[1], schema):
        pass
    feather.write_feather(empty, files[2])
    files[3].write_text("a,s\n")
    assert pq.ParquetFile(files[1]).metadata.num_row_groups == 0
    return files


def test_zero_rows_are_evaluated_alike_by_validate_and_submit(tmp_path) -> None:
    rules = [{"name": "pos", "check": "a > 0"}, {"name": "pos_strict", "check": "a > 0", "strict": True},
             {"name": "rc", "row_count": {"between": [1, None]}},
             {"name": "rc0", "row_count": {"equals": 0}}]
    for path in _empty_files(tmp_path):
        docs = [batchaot.validate(str(path), rules).to_dict(),
                submit(write_job(tmp_path, path.stem + path.suffix[1:], [path], rules)).to_dict()]
        for doc in docs:
            assert doc["rows"] == 0, path
            assert [(r["passed"], r["violations"]) for r in doc["rules"]] == \
                [(True, 0), (True, 0), (False, 0), (True, 0)], (path, doc)
        code, out, err = cli("validate", str(path), "--rules", _rules_file(tmp_path, rules), "--json")
        assert code == 1 and json.loads(out)["rows"] == 0, err
    res = batchaot.validate(pa.table({"a": pa.array([], pa.int64())}), rules)
    assert [r["passed"] for r in res.to_dict()["rules"]] == [True, True, False, True]


# --- 7. schema drift across files -------------------------------------------------------------

def test_a_file_lacking_a_column_fails_alike_first_or_last(tmp_path) -> None:
    good = tmp_path / "good.parquet"
    bad = tmp_path / "bad.parquet"
    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"a": [1, -2, 3], "s": ["x", "y", "z"]}), good)
    pq.write_table(pa.table({"s": ["x", "y"]}), bad)
    pq.write_table(pa.table({"a": ["1", "2"], "s": ["x", "y"]}), typed)
    rules = [{"name": "pos", "check": "a > 0"}]
    outcomes = []
    for order in ([bad, good], [good, bad], [typed, good], [good, typed]):
        res = submit(write_job(tmp_path, "drift", order, rules))
        drifted = order[0] if order[0] != good else order[1]
        assert res.exit_code == 1 and len(res.errors) == 1, res.errors
        assert str(drifted) in res.errors[0] and "'a'" in res.errors[0] or "a that" in res.errors[0]
        outcomes.append((res.rows, res.to_dict()["rules"][0]["violations"]))
        with pytest.raises(DataError) as err:
            submit(write_job(tmp_path, "drift_stop", order, rules, on_error="stop"))
        assert str(drifted) in one_line(err.value) and "on_error: stop" in str(err.value)
    assert outcomes == [(3, 1)] * 4
    with pytest.raises(RuleError) as err:            # a column no file has is the rule's fault
        submit(write_job(tmp_path, "nowhere", [bad, good], [{"name": "r", "check": "zz > 0"}]))
    assert "unknown column 'zz'" in one_line(err.value)
    with pytest.raises(DataError) as err:            # validate reads its files as one table
        batchaot.validate([str(good), str(bad)], rules)
    assert str(bad) in one_line(err.value) and "no column 'a'" in str(err.value)


# --- 8. row-group statistics: proven groups are not decoded, by validate and submit -----------

def _corrupt_pages(path, table: pa.Table, **kw) -> None:
    pq.write_table(table, path, compression="snappy", **kw)
    raw = bytearray(path.read_bytes())
    for i in range(8, min(len(raw) // 3, 3000)):
        raw[i] = 0xAB
    path.write_bytes(bytes(raw))


def test_corrupt_pages_under_a_proven_rule_agree(tmp_path) -> None:
    path = tmp_path / "corrupt.parquet"
    _corrupt_pages(path, pa.table({"a": pa.array(range(1, 100_001), pa.int64())}), row_group_size=25_000)
    proven = [{"name": "pos", "check": "a > -100"}]
    unproven = [{"name": "pos", "check": "a > 5"}]
    v = batchaot.validate(str(path), proven).to_dict()
    s = submit(write_job(tmp_path, "c", [path], proven)).to_dict()
    assert (v["ok"], v["rows"], v["row_groups_skipped"]) == (s["ok"], s["rows"], s["row_groups_skipped"]) \
        == (True, 100_000, 4)
    with pytest.raises(DataError) as err:
        batchaot.validate(str(path), unproven)
    assert str(path) in one_line(err.value)
    res = submit(write_job(tmp_path, "c2", [path], unproven))
    assert not res.ok and str(path) in res.errors[0]
    # a dataset check needs the rows: no skipping, and so no pass
    with pytest.raises(DataError):
        batchaot.validate(str(path), proven + [{"name": "rc", "row_count": {"between": [1, None]}}])


def _proofs_hold(path, table: pa.Table, preds: list[str]) -> int:
    """validate's answers with statistics equal DuckDB's over the whole table; returns how
    many row groups were skipped."""
    con = duck()
    res = batchaot.validate(str(path), [{"name": f"r{k}", "check": p} for k, p in enumerate(preds)])
    assert [r["violations"] for r in res.to_dict()["rules"]] == [duck_counts(con, table, p)[0] for p in preds]
    return res.row_groups_skipped


def test_statistics_of_every_type_prove_soundly(tmp_path) -> None:
    n = 4000
    rng = np.random.default_rng(5)
    base = np.sort(rng.integers(-10**6, 10**6, n))
    f = base.astype(np.float64)
    f[rng.random(n) < 0.01] = np.nan                       # NaN in float columns: never pruned
    table = pa.table({
        "i": pa.array(base),
        "f": pa.array(f),
        "dec": pa.array([D(int(x)).scaleb(-2) for x in base], pa.decimal128(12, 2)),
        "ns": pa.array(base * 10**9 + 7, pa.timestamp("ns")),
        "tz": pa.array(base * 10**6, pa.timestamp("us", tz="Asia/Kolkata")),
        "ms": pa.array(base * 1000 + 1, pa.timestamp("ms")),
        "d": pa.array((base // 1000).astype(np.int32), pa.date32()),
        "u": pa.array(np.abs(base), pa.uint32()),
        "s": pa.array([f"k{x:08d}" for x in np.abs(base)]),
    })
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path, row_group_size=500)
    preds = ["i > -2000000", "f > -2000000", "f < 2000000", "dec > -20000", "ns > TIMESTAMP '1960-01-01'",
             "ns <= TIMESTAMP_NS '1970-01-12 13:46:40.000000007'", "tz > TIMESTAMPTZ '1969-12-20 00:00:00+05:30'",
             "tz < TIMESTAMP '1970-01-01 00:16:40'", "ms >= TIMESTAMP_MS '1969-12-20 10:00:00.001'",
             "d > DATE '1960-01-01'", "u >= 0", "s >= 'k'", "i > 0"]
    assert _proofs_hold(path, table, preds) == 0           # some rule is unproven in each group
    skipped = sum(_proofs_hold(path, table, [p]) for p in preds)
    assert skipped >= 8 * 3                                # most bounds do prove
    for p in ("f < 2000000", "u >= 0", "s >= 'k'"):        # NaN, unsigned, strings: never
        assert _proofs_hold(path, table, [p]) == 0
    nostats = tmp_path / "nostats.parquet"
    pq.write_table(table, nostats, row_group_size=500, write_statistics=False)
    assert _proofs_hold(nostats, table, ["i > -2000000"]) == 0


def test_nanosecond_statistics_do_not_crash_submit(tmp_path) -> None:
    path = tmp_path / "ns.parquet"
    t = pa.table({"t": pa.array([1704103200123456789, 1704103200123456999], pa.timestamp("ns"))})
    pq.write_table(t, path)
    rules = [{"name": "r", "check": "t <= TIMESTAMP_NS '2024-01-01 10:00:00.123456998'"}]
    res = submit(write_job(tmp_path, "ns", [path], rules))
    assert res.to_dict()["rules"][0]["violations"] == 1 and res.row_groups_skipped == 0


# --- 9. exotic types, corrupt files, huge cells, many chunks ----------------------------------

EXOTIC = {
    "st": pa.array([{"x": 1}] * 4, pa.struct([("x", pa.int64())])),
    "li": pa.array([[1]] * 4, pa.list_(pa.int64())),
    "mp": pa.array([[("a", 1)]] * 4, pa.map_(pa.string(), pa.int64())),
    "bi": pa.array([b"a"] * 4, pa.binary()),
    "lb": pa.array([b"a"] * 4, pa.large_binary()),
    "fb": pa.array([b"abc"] * 4, pa.binary(3)),
    "du": pa.array([1] * 4, pa.duration("s")),
    "ti": pa.array([1] * 4, pa.time64("us")),
    "iv": pa.array([pa.MonthDayNano([1, 2, 3])] * 4, pa.month_day_nano_interval()),
}


def test_exotic_types_are_refused_in_one_line_and_ignored_when_unread(tmp_path) -> None:
    table = pa.table({"a": [1, -2, 3, 4], **EXOTIC})
    assert batchaot.validate(table, [{"name": "r", "check": "a > 0"}]).to_dict()["rules"][0]["violations"] == 1
    path = tmp_path / "exotic.arrow"
    feather.write_feather(table, path)
    for name in EXOTIC:
        for rule in ({"name": "r", "check": f"{name} IS NOT NULL"},
                     {"name": "g", "aggregate": f"max({name})", "between": [0, 1]}):
            with pytest.raises(BatchaotError) as err:
                batchaot.validate(str(path), [rule])
            assert f"'{name}'" in one_line(err.value) or f"({name})" in str(err.value)
        try:       # keys: bytes, durations and times compare; nested values and intervals do not
            res = batchaot.validate(str(path), [{"name": "u", "unique": [name]}])
            assert res.to_dict()["rules"][0]["violations"] == 4 and name in ("bi", "lb", "fb", "du", "ti")
        except BatchaotError as exc:
            assert f"'{name}'" in one_line(exc) and name in ("st", "li", "mp", "iv")
        # not_null reads validity only: any type will do
        assert batchaot.validate(str(path), [{"name": "n", "not_null": name}]).ok
    code, _, err = cli("validate", str(path), "--rules", _rules_file(tmp_path, [{"name": "r", "check": "st > 0"}]))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'st'" in err


def test_float16_and_uint64(tmp_path) -> None:
    con = duck()
    h = pa.array(np.array([1.5, -2, np.nan, 0, 3, -0.0, np.inf], dtype=np.float16))
    table = pa.table({"h": h})
    preds = ["h > 1", "h = 0", "h < 'inf'", "h IS NULL OR h <> h"]
    oracle = pa.table({"h": h.cast(pa.float32())})
    assert counts(table, preds) == [duck_counts(con, oracle, p) for p in preds]
    res = batchaot.validate(table, [{"name": "g", "aggregate": "max(h)", "between": [0, 10]}])
    assert res.to_dict()["rules"][0]["value"] in (3.0, None)
    fits = pa.table({"u": pa.array([0, 1, 2**63 - 1, None, 2**40], pa.uint64())})
    preds = ["u > 1", "u = 9223372036854775807", "u + 0 < 2", "u BETWEEN 1 AND 2"]
    assert counts(fits, preds) == [duck_counts(con, fits, p) for p in preds]
    big = pa.table({"u": pa.array([1, 2**64 - 1, None], pa.uint64())})
    path = tmp_path / "u.parquet"
    pq.write_table(big, path)
    with pytest.raises(DataError) as err:
        batchaot.validate(str(path), [{"name": "r", "check": "u > 0"}])
    assert str(path) in one_line(err.value) and "'u'" in str(err.value)
    res = submit(write_job(tmp_path, "u", [path], [{"name": "r", "check": "u > 0"}]))
    assert not res.ok and str(path) in res.errors[0] and "'u'" in res.errors[0]
    res = batchaot.validate(big, [{"name": "k", "unique": ["u"]}, {"name": "n", "not_null": "u", "mostly": 0.5}])
    assert res.ok                                           # checks read uint64 whole


def _corrupt_files(tmp_path) -> list:
    t = pa.table({"a": list(range(1000)), "s": [f"v{i % 7}" for i in range(1000)]})
    pq.write_table(t, tmp_path / "ok.parquet", row_group_size=100)
    pacsv.write_csv(t, tmp_path / "ok.csv")
    feather.write_feather(t, tmp_path / "ok.arrow")
    lines = "".join(json.dumps(r) + "\n" for r in t.to_pylist())
    p, c, a = ((tmp_path / n).read_bytes() for n in ("ok.parquet", "ok.csv", "ok.arrow"))
    g = gzip.compress(c)
    made = {
        "trunc.parquet": p[: len(p) // 2], "footer.parquet": p[:-12] + b"\xff" * 8 + p[-4:],
        "zero.parquet": b"", "magic.parquet": b"PAR1" + b"\0" * 10 + b"PAR1",
        "extra.csv": b"a,s\n1,x\n2,y,z\n", "garbage.csv": bytes(range(256)) * 20, "empty.csv": b"",
        "trunc.csv.gz": g[: len(g) // 2], "garbage.csv.gz": b"\x1f\x8b\x08" + bytes(range(200)),
        "notgz.csv.gz": c, "trunc.jsonl": lines[: len(lines) // 2].encode(),
        "badline.jsonl": b'{"a": 1, "s": "x"}\n{"a": 2, "s": \n', "empty.jsonl": b"",
        "mixed.jsonl": b'{"a": 1, "s": "x"}\n{"a": "str", "s": "y"}\n', "array.jsonl": b"[1, 2]\n",
        "trunc.jsonl.gz": gzip.compress(lines.encode())[:300], "trunc.arrow": a[: len(a) // 2],
        "garbage.arrow": bytes(range(256)) * 10,
    }
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    pages = tmp_path / "pages.parquet"
    _corrupt_pages(pages, t)
    return [tmp_path / n for n in made] + [pages]


def test_corrupt_and_truncated_files_name_the_file_in_one_line(tmp_path) -> None:
    rules = [{"name": "pos", "check": "a >= 0"}, {"name": "sl", "check": "length(s) < 100"}]
    for path in _corrupt_files(tmp_path):
        with pytest.raises(BatchaotError) as err:
            batchaot.validate(str(path), rules)
        assert path.name in one_line(err.value), err.value
        try:
            res = submit(write_job(tmp_path, "bad", [path, tmp_path / "ok.parquet"], rules))
        except BatchaotError as exc:                # the only file it could bind to is gone
            assert path.name in one_line(exc), exc
            continue
        assert res.exit_code == 1 and len(res.errors) == 1 and path.name in res.errors[0]
        assert "\n" not in res.errors[0] and res.rows == 1000


def test_ten_megabyte_cells(tmp_path) -> None:
    big = "x" * (10 << 20)
    t = pa.table({"a": [1, 2, 3], "s": [big, "short", big + "y"]})
    pq.write_table(t, tmp_path / "big.parquet")
    pacsv.write_csv(t, tmp_path / "big.csv")
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
    (tmp_path / "big.csv.gz").write_bytes(gzip.compress((tmp_path / "big.csv").read_bytes()))
    rules = [{"name": "long", "check": "length(s) < 1000"}, {"name": "x", "check": "s LIKE 'x%y'"}]
    for name in ("big.parquet", "big.csv", "big.jsonl", "big.csv.gz"):
        path = tmp_path / name
        want = [2, 2]
        assert [r["violations"] for r in batchaot.validate(str(path), rules).to_dict()["rules"]] == want
        res = submit(write_job(tmp_path, "big", [path], rules))
        assert [r["violations"] for r in res.to_dict()["rules"]] == want


def test_many_chunks_and_row_groups_stay_fast_and_right(tmp_path) -> None:
    n = 20_000
    many = pa.Table.from_batches([pa.record_batch({"a": [i, -i], "s": ["p", "q"]}) for i in range(n)])
    assert many.column("a").num_chunks == n
    rules = [{"name": "pos", "check": "a >= 0"}, {"name": "q", "check": "s <> 'q'"}]
    want = [n - 1, n]
    started = time.perf_counter()
    res = batchaot.validate(many, rules)
    assert [r["violations"] for r in res.to_dict()["rules"]] == want
    assert res.violations.num_rows == sum(want)
    assert sorted(res.violations.filter(pa.compute.equal(res.violations["rule"], "pos"))["row"]
                  .to_pylist())[:3] == [3, 5, 7]
    arrow, parquet = tmp_path / "many.arrow", tmp_path / "many.parquet"
    with pa.OSFile(str(arrow), "wb") as f, pa.ipc.new_file(f, many.schema) as w:
        for b in many.to_batches():
            w.write_batch(b)
    pq.write_table(many, parquet, row_group_size=20)
    for path in (arrow, parquet):
        assert [r["violations"] for r in batchaot.validate(str(path), rules).to_dict()["rules"]] == want
        assert [r["violations"] for r in submit(write_job(tmp_path, "many", [path], rules)).to_dict()["rules"]] == want
    assert time.perf_counter() - started < 120


def test_skipped_row_groups_keep_row_numbers_of_the_file(tmp_path) -> None:
    """Row groups proven by statistics are left out of what validate holds in memory; the
    violations still name each failing row by its number within its file, as submit does."""
    a = np.arange(10_000)
    a[[17, 5_003, 9_998]] = -5                             # three failing rows in three groups
    table = pa.table({"a": a, "b": np.arange(10_000) % 3})
    paths = [tmp_path / "p1.parquet", tmp_path / "p2.parquet"]
    for p in paths:
        pq.write_table(table, p, row_group_size=1000)
    rules = [{"name": "pos", "check": "a >= 0"}, {"name": "b", "check": "b < 3"}]
    res = batchaot.validate([str(p) for p in paths], rules)
    assert res.row_groups_skipped == 14 and res.rows == 20_000
    got = sorted(zip(res.violations["source"].to_pylist(), res.violations["row"].to_pylist()))
    assert got == sorted((str(p), r) for p in paths for r in (17, 5_003, 9_998))
    job = submit(write_job(tmp_path, "rows", paths, rules))
    assert job.row_groups_skipped == 14
    assert sorted(zip(job.violations["source"].to_pylist(), job.violations["row"].to_pylist())) == got


def test_duplicate_column_names_are_refused_when_read(tmp_path) -> None:
    t = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, -4]), pa.array([1, 1])], names=["a", "a", "c"])
    path = tmp_path / "dup.parquet"
    pq.write_table(t, path)
    for data in (t, str(path)):
        for rule in ({"name": "r", "check": "a > 0"}, {"name": "u", "unique": ["a"]}):
            with pytest.raises(RuleError) as err:
                batchaot.validate(data, [rule])
            assert "'a'" in one_line(err.value) or "column(s) a" in str(err.value)
        res = batchaot.validate(data, [{"name": "r", "check": "c > 0"}, {"name": "u", "unique": ["c"]}])
        assert [r["violations"] for r in res.to_dict()["rules"]] == [0, 2]


def test_cast_to_a_coarser_timestamp_unit_rounds_as_duckdb() -> None:
    import duckdb
    t = pa.table({"n": pa.array([1_500_000, -1_500_000, 2_499_999, 2_500_000, 0, None], pa.timestamp("us"))})
    con = duckdb.connect()
    con.register("t", t)
    for pred in ("CAST(n AS TIMESTAMP_S) = TIMESTAMP '1970-01-01 00:00:02'",
                 "CAST(n AS TIMESTAMP_S) < TIMESTAMP '1969-12-31 23:59:59'",
                 "CAST(n AS TIMESTAMP_MS) > TIMESTAMP '1970-01-01 00:00:01.5'"):
        got = batchaot.validate(t, [{"name": "x", "check": pred}]).summary.to_pylist()[0]["violations"]
        want = con.execute(f"SELECT count(*) FILTER (WHERE NOT ({pred})) FROM t").fetchone()[0]
        assert got == want, pred


def test_dictionary_whose_dictionary_holds_null(tmp_path) -> None:
    """A row whose index points at a NULL dictionary entry is NULL, as DuckDB reads it:
    every kind of rule sees it so, in memory (chunks with dictionaries of their own) and
    from an Arrow IPC file."""
    d = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 1, 0, 2], pa.int8()), pa.array(["a", None, "b"]))
    table = pa.table({"s": pa.chunked_array([d, d.slice(1), pa.DictionaryArray.from_arrays(
        pa.array([0, 0], pa.int8()), pa.array(["b"]))])})
    path = str(tmp_path / "t.arrow")
    feather.write_feather(pa.table({"s": d}), path, compression="uncompressed")
    rules = [{"name": "nn", "not_null": "s"}, {"name": "present", "check": "s IS NOT NULL"},
             {"name": "known", "check": "s IN ('a')"}, {"name": "u", "unique": "s"}]
    for data, held in ((table, table), (path, pa.table({"s": d}))):
        con = duck()
        con.register("t", held.cast(pa.schema([("s", pa.string())])))
        nulls, not_a = con.execute("SELECT count(*) FILTER (WHERE s IS NULL), "
                                   "count(*) FILTER (WHERE NOT (s IN ('a'))) FROM t").fetchone()
        dups = con.execute("SELECT coalesce(sum(n), 0) FROM (SELECT count(*) n FROM t WHERE s IS NOT NULL "
                           "GROUP BY s HAVING count(*) > 1)").fetchone()[0]
        assert nulls > held["s"].null_count          # the dictionary's NULLs are NULLs too
        got = {r["name"]: r["violations"] for r in batchaot.validate(data, rules).to_dict()["rules"]}
        assert got == {"nn": nulls, "present": nulls, "known": not_a, "u": dups}, data
