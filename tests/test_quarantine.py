"""Quarantine (valid/ and invalid/ rows) and the per-row view (Result.failed_rules,
Result.quarantine), checked against DuckDB evaluating every rule on every row.

A row breaks a rule exactly when that rule counts it as a violation: a row rule when its
predicate is FALSE (``IS FALSE``), or not TRUE for a ``strict`` rule (``IS NOT TRUE``);
``unique`` every row of a key (no NULL in it) that occurs more than once; ``not_null``
its NULL rows. DuckDB computes each row's list of broken rules from the same files;
valid + invalid must be the input rows, each once (DuckDB's EXCEPT ALL both ways), on
``validate``, in-process ``submit`` and on a local Ray — also when a worker dies right
after writing a unit's parts.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchaot
from batchaot.cli import main
from batchaot.io import units as units_mod
from click.testing import CliRunner
from conftest import random_table

pytestmark = pytest.mark.timeout(300)

STATUSES = "'new', 'paid', 'shipped', 'Paid', 'refund%', 'a_b', ''"
# (name, severity, strict, SQL predicate) of the row rules; the dataset checks follow
ROW_RULES = [
    ("i_floor", "error", False, "i > -40"),
    ("status_known", "error", True, f"s IN ({STATUSES})"),
    ("j_range", "error", False, "j BETWEEN -4 AND 5"),
    ("f_small", "warn", False, "f < 30"),
    ("g_strict", "warn", True, "g > -2.5"),
]
UNIQUE_KEY = ["i", "j", "s"]
NOT_NULL = "b"


def rule_dicts(keys: Path) -> list[dict]:
    """The rules; `keys`: the file of ids that column i references."""
    rules = [{"name": n, "check": p, "severity": sev, "strict": strict} for n, sev, strict, p in ROW_RULES]
    rules.append({"name": "ijs_unique", "unique": UNIQUE_KEY})
    rules.append({"name": "b_present", "not_null": NOT_NULL})
    rules.append({"name": "i_known", "reference": {"columns": ["i"], "dataset": str(keys), "key": ["id"]}})
    return rules


ERRORS = {r["name"] for r in rule_dicts(Path("keys")) if r.get("severity", "error") == "error"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """Ids -45..44 but multiples of 7: i (in -50..49) misses some, NULL i never does."""
    path = tmp_path_factory.mktemp("keys") / "keys.parquet"
    pq.write_table(pa.table({"id": pa.array([k for k in range(-45, 45) if k % 7], pa.int64())}), path)
    return path


def broken_sql(keys: Path) -> str:
    """DuckDB: the list of rules a row breaks, in rule order."""
    cases = [f"CASE WHEN ({p}) {'IS NOT TRUE' if strict else 'IS FALSE'} THEN '{n}' END"
             for n, _, strict, p in ROW_RULES]
    key = ", ".join(UNIQUE_KEY)
    present = " AND ".join(f"{c} IS NOT NULL" for c in UNIQUE_KEY)
    cases.append(f"CASE WHEN {present} AND count(*) OVER (PARTITION BY {key}) > 1 THEN 'ijs_unique' END")
    cases.append(f"CASE WHEN {NOT_NULL} IS NULL THEN 'b_present' END")
    cases.append(f"CASE WHEN i IS NOT NULL AND i NOT IN (SELECT id FROM '{keys}') THEN 'i_known' END")
    return f"list_filter([{', '.join(cases)}], lambda x: x IS NOT NULL)"


def invalid_count(con: duckdb.DuckDBPyConnection, relation: str, keys: Path) -> int:
    """DuckDB: rows for which not every error rule holds (each with its NULL semantics)."""
    broken = [f"({p}) {'IS NOT TRUE' if strict else 'IS FALSE'}" for _, sev, strict, p in ROW_RULES if sev == "error"]
    broken.append(" AND ".join(f"{c} IS NOT NULL" for c in UNIQUE_KEY) + " AND __n > 1")
    broken.append(f"{NOT_NULL} IS NULL")
    broken.append(f"i IS NOT NULL AND i NOT IN (SELECT id FROM '{keys}')")
    sql = (f"SELECT count(*) FROM (SELECT *, count(*) OVER (PARTITION BY {', '.join(UNIQUE_KEY)}) AS __n "
           f"FROM {relation}) WHERE {' OR '.join(broken)}")
    return con.execute(sql).fetchall()[0][0]


def oracle(relation: str, source: str, row: str, keys: Path) -> dict[tuple[str, int], list[str]]:
    """(source, row) → the rules DuckDB finds the row breaking, for rows breaking any."""
    con = duckdb.connect()
    found = con.execute(f"SELECT {source}, {row}, {broken_sql(keys)} AS failed FROM {relation}").fetchall()
    return {(s, int(r)): f for s, r, f in found if f}


def invalid_rows(found: dict) -> dict:
    return {k: v for k, v in found.items() if ERRORS & set(v)}


def listed(table: pa.Table, source="source", row="row", failed="failed_rules") -> dict:
    rows = table.select([source, row, failed]).to_pylist()
    assert len(rows) == len({(r[source], r[row]) for r in rows}), "a row listed twice"
    return {(r[source], r[row]): r[failed] for r in rows}


def same_rows(con: duckdb.DuckDBPyConnection, a: str, b: str) -> None:
    """Relations a and b hold the same rows as multisets (NULLs compare equal here)."""
    assert con.execute(f"SELECT count(*) FROM {a}").fetchall() == con.execute(f"SELECT count(*) FROM {b}").fetchall()
    for x, y in ((a, b), (b, a)):
        assert con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchall()[0][0] == 0


def check_folder(folder: Path, inputs: str, columns: list[str], expected: dict) -> None:
    """valid ∪ invalid == the input rows; invalid == the rows breaking an error rule, each
    with DuckDB's list; valid and invalid keep the input's column types."""
    con = duckdb.connect()
    cols = ", ".join(columns)
    valid = sorted((folder / "valid").glob("part-*.parquet"))
    invalid = sorted((folder / "invalid").glob("part-*.parquet"))
    assert valid and invalid
    assert not [p for p in (folder / "valid").iterdir() if ".tmp-" in p.name]
    v_rel = f"(SELECT {cols} FROM read_parquet({[str(p) for p in valid]}))"
    i_rel = f"(SELECT {cols} FROM read_parquet({[str(p) for p in invalid]}))"
    same_rows(con, f"({v_rel} UNION ALL {i_rel})", f"(SELECT {cols} FROM {inputs})")
    table = pa.concat_tables([pq.read_table(p) for p in invalid])
    assert listed(table) == invalid_rows(expected)
    stored = pq.read_schema(sorted(Path(inputs.split("'")[1]).parent.glob("*.parquet"))[0]).remove_metadata()
    for part in valid:
        assert pq.read_schema(part).remove_metadata().equals(stored)
    for part in invalid:
        assert pq.read_schema(part).remove_metadata().equals(
            stored.append(pa.field("failed_rules", pa.list_(pa.string()))).append(pa.field("source", pa.string()))
            .append(pa.field("row", pa.int64())))


@pytest.fixture(scope="module")
def files(tmp_path_factory, keys) -> Path:
    """Three Parquet files of random rows with NULLs (several units each, with small units)."""
    root = tmp_path_factory.mktemp("quarantine")
    (root / "data").mkdir()
    for k in range(3):
        pq.write_table(random_table(40 + k, n=3000), root / "data" / f"part-{k}.parquet", row_group_size=500)
    (root / "rules.yaml").write_text(json.dumps({"rules": rule_dicts(keys)}))
    return root


def job_file(root: Path, name: str, quarantine: str | None = None) -> Path:
    """A job over the files (in `root`, so that its relative paths resolve there)."""
    job = root / f"{name}.yaml"
    output = {"path": str(root / f"out-{name}")} | ({"quarantine": quarantine} if quarantine else {})
    job.write_text(json.dumps({"name": "q", "source": {"path": "data/*.parquet"},
                               "rules_from": "rules.yaml", "output": output}))
    return job


@pytest.fixture()
def small_units(monkeypatch):
    monkeypatch.setattr(units_mod, "UNIT_ROWS", 1000)   # 3 units per file


@pytest.fixture(scope="module")
def expected(files, keys) -> dict:
    glob = str(files / "data" / "*.parquet")
    return oracle(f"read_parquet('{glob}', filename=true, file_row_number=true)", "filename", "file_row_number", keys)


COLUMNS = ["i", "j", "f", "g", "dec", "s", "d", "ts", "b"]


def test_submit_in_process_splits_rows_as_duckdb(files, keys, expected, small_units, tmp_path) -> None:
    # the data exercises every rule, and rows breaking only warn rules (valid, yet listed)
    assert {r for failed in expected.values() for r in failed} == {r["name"] for r in rule_dicts(keys)}
    assert len(expected) > len(invalid_rows(expected)) > 0
    quarantine = tmp_path / "q"
    res = batchaot.Job.from_yaml(job_file(files, "in-process", str(quarantine))).run(mode="in-process")
    assert res.units == 9 and not res.errors
    check_folder(quarantine, f"read_parquet('{files}/data/*.parquet')", COLUMNS, expected)
    n_invalid = invalid_count(duckdb.connect(), f"read_parquet('{files}/data/*.parquet')", keys)
    assert n_invalid == len(invalid_rows(expected))
    assert res.quarantined == {"path": str(quarantine), "valid_rows": 9000 - n_invalid, "invalid_rows": n_invalid}
    summary = json.loads((files / "out-in-process" / "summary.json").read_text())
    assert summary["quarantine"] == res.quarantined
    assert json.loads((quarantine / "summary.json").read_text())["quarantine"] == res.quarantined
    # the per-row view of a job, from its violation parts
    assert listed(res.failed_rules()) == expected
    with pytest.raises(batchaot.errors.DataError, match="quarantine"):
        res.quarantine()
    # the command line's --quarantine overrides the job's output.quarantine
    other = tmp_path / "other"
    run = CliRunner().invoke(main, ["submit", str(job_file(files, "cli", str(quarantine))), "--mode", "in-process",
                                    "--quarantine", str(other), "--json"], catch_exceptions=False)
    assert run.exit_code == 1
    assert json.loads(run.stdout)["quarantine"] == {**res.quarantined, "path": str(other)}
    check_folder(other, f"read_parquet('{files}/data/*.parquet')", COLUMNS, expected)


def test_validate_files_and_the_cli(files, expected, tmp_path) -> None:
    data = str(files / "data" / "*.parquet")
    result = batchaot.validate(data, str(files / "rules.yaml"))
    assert listed(result.failed_rules()) == expected
    valid, invalid = result.quarantine()
    assert listed(invalid) == invalid_rows(expected)
    assert valid.num_rows + invalid.num_rows == 9000
    quarantine = tmp_path / "q"
    runner = CliRunner().invoke(main, ["validate", data, "-r", str(files / "rules.yaml"), "--quarantine",
                                       str(quarantine), "--output", str(quarantine)], catch_exceptions=False)
    assert runner.exit_code == 1
    assert f"invalid rows in {quarantine}/invalid/" in runner.stdout
    check_folder(quarantine, f"read_parquet('{data}')", COLUMNS, expected)
    assert (quarantine / "violations").is_dir()      # one folder may hold both
    doc = json.loads((quarantine / "summary.json").read_text())
    assert doc["quarantine"]["invalid_rows"] == len(invalid_rows(expected))


def test_in_memory_table(keys, tmp_path) -> None:
    table = random_table(7, n=2000)
    con = duckdb.connect()
    indexed = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    con.register("t", indexed)
    found = {(s, r): f for s, r, f in con.execute(f"SELECT '<table>', __row, {broken_sql(keys)} FROM t").fetchall() if f}
    result = batchaot.validate(table, rule_dicts(keys))
    assert listed(result.failed_rules()) == found
    valid, invalid = result.quarantine()
    assert valid.schema == table.schema
    assert listed(invalid) == invalid_rows(found)
    assert invalid.num_rows == invalid_count(con, "t", keys)
    con.register("v", valid)
    con.register("i", invalid.drop_columns(["failed_rules", "source", "row"]))
    same_rows(con, "(SELECT * FROM v UNION ALL SELECT * FROM i)", "(SELECT * EXCLUDE (__row) FROM t)")
    # written, the same split
    result = batchaot.validate(table, rule_dicts(keys), quarantine=tmp_path / "q")
    assert result.quarantined["invalid_rows"] == invalid.num_rows
    written_valid, written_invalid = pq.read_table(tmp_path / "q" / "valid"), pq.read_table(tmp_path / "q" / "invalid")
    assert written_valid.schema.remove_metadata() == table.schema
    assert listed(written_invalid) == listed(invalid)
    con.register("wv", written_valid)
    con.register("wi", written_invalid)
    con.register("mi", invalid)
    same_rows(con, "(FROM wv)", "(FROM v)")
    same_rows(con, "(FROM wi)", "(FROM mi)")


def test_column_names_that_clash_and_warn_only_rows(tmp_path) -> None:
    table = pa.table({"row": [1, 2, 3, None], "source": ["a", "b", "c", "d"], "failed_rules": [0, 0, 0, 0]})
    rules = [{"name": "pos", "check": "row > 1"}, {"name": "not_c", "check": "source <> 'c'", "severity": "warn"}]
    valid, invalid = batchaot.validate(table, rules).quarantine()
    assert valid.to_pylist() == [{"row": 2, "source": "b", "failed_rules": 0},
                                 {"row": 3, "source": "c", "failed_rules": 0},      # warn only: valid
                                 {"row": None, "source": "d", "failed_rules": 0}]   # NULL passes
    assert invalid.to_pylist() == [{"row": 1, "source": "a", "failed_rules": 0, "batchaot_failed_rules": ["pos"],
                                    "batchaot_source": "<table>", "batchaot_row": 0}]


@pytest.fixture(scope="module")
def local_ray():
    import ray
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")   # others' large processes must not kill ours
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_on_ray_a_worker_killed_after_writing_its_parts_changes_nothing(local_ray, files, expected, small_units,
                                                                         tmp_path, monkeypatch) -> None:
    """The first quarantine call of the job writes its unit's valid/ and invalid/ parts,
    then its process exits (os._exit, as a kill) before it returns: Ray restarts the actor
    and redoes the call, whose parts replace the first ones — each row still once."""
    from batchaot.distributed.actors import HOOK_ENV
    hook = tmp_path / "hook"
    hook.mkdir()
    monkeypatch.setenv(HOOK_ENV, f"{hook}:crash=quarantine")
    quarantine = tmp_path / "q"
    res = batchaot.Job.from_yaml(job_file(files, "ray", str(quarantine))).run(mode="ray", workers=2)
    assert res.mode == "ray" and res.units == 9 and not res.errors
    method, key, pid = (hook / "crashed").read_text().split()
    assert method == "quarantine"
    calls = [line.split() for line in (hook / "attempts").read_text().splitlines()]
    redone = [int(p) for m, k, p in calls if (m, k) == ("quarantine", key)]
    assert len(redone) == 2 and redone[0] == int(pid) != redone[1]
    split = [k for m, k, _ in calls if m == "quarantine"]     # every unit, the killed one twice
    assert sorted(set(split)) == sorted({k for m, k, _ in calls if m == "run"}) and len(split) == len(set(split)) + 1
    check_folder(quarantine, f"read_parquet('{files}/data/*.parquet')", COLUMNS, expected)
    assert res.quarantined["invalid_rows"] == len(invalid_rows(expected))
    assert res.quarantined["valid_rows"] + res.quarantined["invalid_rows"] == 9000


def test_a_quarantine_folder_holding_files_batchaot_did_not_write_is_refused(tmp_path) -> None:
    (tmp_path / "q" / "valid").mkdir(parents=True)
    (tmp_path / "q" / "valid" / "mine.csv").write_text("keep me")
    pq.write_table(pa.table({"x": [1, -1]}), tmp_path / "d.parquet")
    (tmp_path / "r.yaml").write_text("- {name: pos, check: 'x > 0'}\n")
    run = CliRunner().invoke(main, ["validate", str(tmp_path / "d.parquet"), "-r", str(tmp_path / "r.yaml"),
                                    "--quarantine", str(tmp_path / "q")], catch_exceptions=False)
    assert run.exit_code == 2 and "mine.csv" in run.stderr and "did not write" in run.stderr
    assert (tmp_path / "q" / "valid" / "mine.csv").read_text() == "keep me"
    (tmp_path / "job.yaml").write_text("name: c\nkind: compile\nrules_from: r.yaml\noutput: {quarantine: q}\n")
    with pytest.raises(batchaot.errors.SpecError, match="job.yaml:4: compile job 'c' has no rows to quarantine"):
        batchaot.Job.from_yaml(tmp_path / "job.yaml")


def test_failure_pairs_become_lists_whatever_their_order_and_repeats() -> None:
    """io/quarantine's numpy grouping against a plain dict of sets: pairs in any order,
    some repeated (a row met twice), some rows with none, batches cut anywhere."""
    import numpy as np
    from batchaot.io import quarantine as q
    rng = np.random.default_rng(3)
    names = [f"r{k}" for k in range(7)]
    rules = q.Rules(tuple(names), tuple(k % 3 != 2 for k in range(7)))    # r2, r5: warn
    rows, kinds = rng.integers(0, 500, 3000), rng.integers(0, 7, 3000)
    want: dict[int, set] = {}
    for r, k in zip(rows.tolist(), kinds.tolist()):
        want.setdefault(r, set()).add(k)
    failures = q.Failures.of([rows[:1000], rows[1000:]], [kinds[:1000], kinds[1000:]])
    table = pa.table({"x": pa.array(range(600))})
    got_valid, got_invalid = [], []
    for first, n in ((0, 137), (137, 1), (138, 462)):
        valid, invalid = q.split(table.slice(first, n), failures.within(first, n), rules, "f", first)
        got_valid += valid.column("x").to_pylist()
        got_invalid += invalid.to_pylist()
    bad = {r for r, ks in want.items() if any(rules.errors[k] for k in ks)}
    assert got_valid == [r for r in range(600) if r not in bad]
    assert [(d["x"], d["row"]) for d in got_invalid] == [(r, r) for r in sorted(bad)]
    assert all(d["failed_rules"] == [names[k] for k in sorted(want[d["row"]])] for d in got_invalid)
