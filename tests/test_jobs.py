"""Job files and `batchaot submit`, in-process: spec errors, outputs, compile jobs, examples."""
from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from jobdata import REPO, concat_files, make_layout


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return make_layout(tmp_path_factory.mktemp("jobs"))


def submit(*args: str):
    res = CliRunner().invoke(main, ["submit", *args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_example_jobs_run(layout, tmp_path) -> None:
    for name in ("demo", "orders_multi", "orders_csv"):
        code, out, err = submit(str(layout / "jobs" / f"{name}.yaml"), "--mode", "in-process",
                                "--output", str(tmp_path / name), "--json")
        doc = json.loads(out)
        assert code == 1 and not doc["ok"] and doc["rows"] > 0 and not doc["errors"], (name, err)
        assert any(r["violations"] for r in doc["rules"])
    code, out, _ = submit(str(layout / "jobs" / "compile_rules.yaml"), "--output", str(tmp_path / "c"), "--json")
    assert code == 0 and json.loads(out)["compiled"] == json.loads(out)["rules"] > 0


def test_submit_equals_validate_on_the_concatenated_files(layout, tmp_path) -> None:
    job = batchaot.Job.from_yaml(layout / "jobs" / "orders_multi.yaml")
    res = job.run(mode="in-process", output=str(tmp_path / "o"))
    paths = sorted(str(p) for p in (layout / "data" / "demo" / "multi").glob("*.parquet"))
    table, offsets = concat_files(paths)
    ref = batchaot.validate(table, list(job.spec.rules))
    assert [r["violations"] for r in res.to_dict()["rules"]] == [r["violations"] for r in ref.to_dict()["rules"]]
    got = {(v["rule"], offsets[v["source"]] + v["row"]) for v in res.violations.to_pylist()}
    want = {(v["rule"], v["row"]) for v in ref.violations.to_pylist()}
    assert got == want
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["rows"] == table.num_rows and summary["files"] == len(paths)


def test_unreadable_file_is_named_and_others_are_checked(layout, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in (layout / "data" / "demo" / "multi").glob("*.parquet"):
        (data / p.name).write_bytes(p.read_bytes())
    (data / "zz-broken.parquet").write_bytes(b"PAR1 garbage")
    job = tmp_path / "job.yaml"
    job.write_text(f"name: j\nsource: {{path: 'data/*.parquet'}}\nrules_from: {REPO / 'jobs/rules/orders_rows.yaml'}\n"
                   "output: {path: out}\non_error: continue\n")
    code, out, _ = submit(str(job), "--mode", "in-process", "--json")
    doc = json.loads(out)
    assert code == 1 and len(doc["errors"]) == 1 and "zz-broken.parquet" in doc["errors"][0]
    assert doc["rows"] == 20_000
    job.write_text(job.read_text().replace("on_error: continue", "on_error: stop"))
    code, _, err = submit(str(job), "--mode", "in-process")
    assert code == 2 and "zz-broken.parquet" in err and "on_error: stop" in err


def test_rerun_replaces_parts_and_counts_match_rows_written(layout, tmp_path) -> None:
    out = tmp_path / "o"
    for _ in range(2):
        res = batchaot.Job.from_yaml(layout / "jobs" / "orders_multi.yaml").run(mode="in-process", output=str(out))
    written = pq.read_table(out / "violations").num_rows
    assert written == sum(r["violations"] for r in res.to_dict()["rules"])
    assert not [p for p in os.listdir(out / "violations") if ".tmp-" in p]


@pytest.mark.parametrize("text, expected", [
    ("name: j\nsource: {path: x.parquet}\nrules: [{name: a, check: 'x > 0'}]\nworkers: 0\n", r"job.yaml:4: 'workers' must be a positive integer"),
    ("name: j\nsource: {path: x.parquet}\nrules: [{name: a, check: 'x > 0'}]\nkind: transform\n", r"job.yaml:4: 'kind' must be one of validate, compile"),
    ("name: j\nsource: {path: x.parquet}\nrules: [{name: a, check: 'x > 0'}]\non_error: ignore\n", r"job.yaml:4: 'on_error' must be one of"),
    ("name: j\nsource: {pth: x.parquet}\nrules: [{name: a, check: 'x > 0'}]\n", r"unknown source field 'pth' \(did you mean 'path'\?\)"),
    ("name: j\nsource: {path: x.parquet, format: xls}\nrules: [{name: a, check: 'x > 0'}]\n", r"unknown format 'xls'"),
    ("name: j\nrules: [{name: a, check: 'x > 0'}]\n", r"needs a 'source'"),
    ("name: j\nsource: {path: x.parquet}\n", r"has no rules"),
    ("name: j\nsource: {path: x.parquet}\nrules_from: nope.yaml\n", r"job.yaml:3: rules file 'nope.yaml' not found"),
    ("name: j\nsource: {path: x.parquet}\nrules: [{name: a, check: 'x > 0'}]\noutput: 3\n", r"job.yaml:4: 'output' must be"),
    ("name: j\nsourc: {path: x.parquet}\n", r"job.yaml:2: unknown job field 'sourc' \(did you mean 'source'\?\)"),
    ("name: j\nkind: compile\n", r"needs 'rules_from'"),
    ("name: j\nsource: {path: x.parquet\n", r"job.yaml:\d+: malformed YAML"),
])
def test_bad_job_files_exit_2_with_file_and_line(tmp_path, text: str, expected: str) -> None:
    import re
    job = tmp_path / "job.yaml"
    job.write_text(text)
    code, _, err = submit(str(job))
    assert code == 2 and re.search(expected, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_source_file_and_unwritable_output(tmp_path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nsource: {path: missing.parquet}\nrules: [{name: a, check: 'x > 0'}]\n")
    code, _, err = submit(str(job), "--mode", "in-process")
    assert code == 2 and "missing.parquet" in err


def test_compile_job_good_and_bad_rules_and_warm_cache(tmp_path, monkeypatch, layout) -> None:
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path / "cache"))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text("- {name: ok1, check: 'amount > 0'}\n- {name: typo, check: 'amuont > 0'}\n"
                                  "- {name: zero, check: '1 = 1'}\n")
    (rules / "b.yaml").write_text("- {name: ok2, check: \"status LIKE 'p%'\"}\n- {name: broken, check: 'amount >'}\n")
    (rules / "c.yaml").write_text("- {name: x, check: 'amount > 0'\n")   # malformed YAML
    job = tmp_path / "compile.yaml"
    job.write_text(f"name: c\nkind: compile\nrules_from: 'rules/*.yaml'\nschema: {{path: {layout / 'data/demo/orders.parquet'}}}\n"
                   "output: {path: out}\n")
    code, out, _ = submit(str(job), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["rules"] == 6 and doc["compiled"] == 3 and doc["failed"] == 3 and doc["zero_tick"] == 1
    table = pq.read_table(tmp_path / "out" / "compiled.parquet").to_pylist()
    by_name = {r["name"]: r for r in table}
    assert "did you mean 'amount'" in by_name["typo"]["diagnostics"] and "a.yaml:2" in by_name["typo"]["diagnostics"]
    assert "col" in by_name["broken"]["diagnostics"]
    assert any(r["file"].endswith("c.yaml") and "malformed YAML" in r["diagnostics"] for r in table)
    ok1 = by_name["ok1"]
    assert ok1["instructions_before"] >= ok1["instructions_after"] > 0 and not ok1["cached"]
    assert batchaot.Program.from_bytes(ok1["program"]).hash == ok1["hash"]
    code, out, _ = submit(str(job), "--json")
    assert json.loads(out)["cache_hits"] == 3


def test_csv_options_and_streaming(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("id;amount\n1;5\n2;-1\n3;NA\n")
    (tmp_path / "job.yaml").write_text(
        "name: c\nsource: {path: d.csv, csv: {delimiter: ';', null_values: ['NA']}}\n"
        "rules: [{name: pos, check: 'amount > 0'}, {name: strict_pos, check: 'amount > 0', strict: true}]\n")
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(tmp_path / "o"))
    assert [r["violations"] for r in res.to_dict()["rules"]] == [1, 2]
    (tmp_path / "job.yaml").write_text((tmp_path / "job.yaml").read_text().replace("delimiter: ';'", "delimitr: ';'"))
    code, _, err = submit(str(tmp_path / "job.yaml"))
    assert code == 2 and "did you mean 'delimiter'" in err


def test_dataset_checks_in_submit_equal_validate(layout, tmp_path) -> None:
    job = batchaot.Job.from_yaml(layout / "jobs" / "demo.yaml")
    assert any(not r.is_row_rule for r in job.spec.rules)
    res = job.run(mode="in-process", output=str(tmp_path / "o"))
    ref = batchaot.validate(layout / "data" / "demo" / "orders.parquet", list(job.spec.rules), now=job.spec.now)
    got = [{k: v for k, v in r.items() if k != "row_groups_proven"} for r in res.to_dict()["rules"]]
    assert got == ref.to_dict()["rules"]
    got = res.violations.sort_by([("rule", "ascending"), ("row", "ascending")])
    want = ref.violations.select(got.column_names).sort_by([("rule", "ascending"), ("row", "ascending")])
    assert got.num_rows > 0 and got.equals(want)


def test_unique_buckets_split_the_keys_evenly(layout, tmp_path) -> None:
    """What bounds a reducer's memory: each bucket holds about 1/B of the keys."""
    from batchaot.compiler import compile_rules
    from batchaot.runtime.settle import CheckGather
    from batchaot.runtime.unit import UnitRunner
    from batchaot.io.units import plan
    from batchaot.spec import load_rules
    (tmp_path / "r.yaml").write_text("- {name: u, unique: [order_id, customer_id]}\n")
    paths = sorted(str(p) for p in (layout / "data" / "demo" / "multi").glob("*.parquet"))
    units = plan(paths)
    checks = compile_rules(load_rules(str(tmp_path / "r.yaml")), pq.read_schema(paths[0]))
    runner, gather = UnitRunner([], None, checks=checks), CheckGather(checks, None)
    for unit in units:
        gather.add(*runner.run_split(unit))
    sizes = [sum(t.num_rows for pieces in items for _, t in pieces) for _, _, items in gather.jobs()]
    total = sum(u.rows for u in units)
    assert len(sizes) == checks[0].buckets and sum(sizes) == total
    assert max(sizes) <= 2 * total / len(sizes)


def test_checks_over_partly_read_data_fail_and_say_so(tmp_path) -> None:
    """on_error: continue — a unit that cannot be read leaves the checks incomplete."""
    import pyarrow as pa
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3], "x": [1, 2, 3]}), tmp_path / "d" / "a.parquet")
    pq.write_table(pa.table({"id": [1, 2, 3]}), tmp_path / "d" / "b.parquet")     # no column x
    (tmp_path / "job.yaml").write_text(
        "name: j\nsource: {path: 'd/*.parquet'}\non_error: continue\nrules:\n"
        "  - {name: x_pos, check: 'x > 0'}\n  - {name: u, unique: [id]}\n"
        "  - {name: n, row_count: {between: [1, null]}}\n")
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(tmp_path / "o"))
    rules = {r["name"]: r for r in res.to_dict()["rules"]}
    assert res.errors and "b.parquet" in res.errors[0] and not res.ok
    for name in ("u", "n"):
        assert not rules[name]["passed"] and "could not be read" in rules[name]["details"]["incomplete"]


def test_a_check_failing_inside_arrow_is_a_unit_error_here_as_on_ray(tmp_path) -> None:
    import pyarrow as pa
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"cid": pa.array([2**53 + 1], pa.int64())}), tmp_path / "d" / "a.parquet")
    pq.write_table(pa.table({"id": pa.array([1.0])}), tmp_path / "ref.parquet")
    (tmp_path / "job.yaml").write_text(
        "name: j\nsource: {path: 'd/*.parquet'}\non_error: continue\nrules:\n"
        "  - {name: r, reference: {columns: [cid], dataset: ref.parquet, key: [id]}}\n")
    code, _, err = submit(str(tmp_path / "job.yaml"), "--mode", "in-process", "--output", str(tmp_path / "o"))
    assert code in (1, 2) and "Traceback" not in err
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(tmp_path / "o"))
    assert res.errors and "a.parquet" in res.errors[0] and not res.ok


def test_partitioned_reference_over_files_of_different_widths(tmp_path, monkeypatch) -> None:
    import pyarrow as pa
    from batchaot.runtime import settle
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"cid": pa.array([1, 2, 9], pa.int64())}), tmp_path / "d" / "a.parquet")
    pq.write_table(pa.table({"cid": pa.array([3, 8, None], pa.int32())}), tmp_path / "d" / "b.parquet")
    pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int64())}), tmp_path / "ref.parquet")
    (tmp_path / "job.yaml").write_text(
        "name: j\nsource: {path: 'd/*.parquet'}\nrules:\n"
        "  - {name: r, reference: {columns: [cid], dataset: ref.parquet, key: [id]}}\n")
    job = batchaot.Job.from_yaml(tmp_path / "job.yaml")
    shared = job.run(mode="in-process", output=str(tmp_path / "s"))
    monkeypatch.setattr(settle, "SHARED_SIDE_ROWS", 0)
    parted = job.run(mode="in-process", output=str(tmp_path / "p"))
    assert shared.to_dict()["rules"] == parted.to_dict()["rules"]
    assert sorted(parted.violations["cid"].to_pylist()) == [8, 9]


def test_reducers_send_back_a_sample_but_the_counts_stay_exact(layout, tmp_path) -> None:
    """~2,000 duplicate keys over 16 buckets: each reducer returns its top ten only."""
    (tmp_path / "job.yaml").write_text(
        f"name: j\nsource: {{path: '{layout / 'data' / 'demo' / 'orders.parquet'}'}}\n"
        "rules: [{name: u, unique: [customer_id]}, {name: u2, unique: [customer_id, status]}]\n")
    job = batchaot.Job.from_yaml(tmp_path / "job.yaml")
    res = job.run(mode="in-process", output=str(tmp_path / "o"))
    ref = batchaot.validate(layout / "data" / "demo" / "orders.parquet", list(job.spec.rules), now=job.spec.now)
    got = [{k: v for k, v in r.items() if k != "row_groups_proven"} for r in res.to_dict()["rules"]]
    assert got == ref.to_dict()["rules"] and got[0]["details"]["duplicate_keys"] > 1000
    assert res.violations.num_rows == ref.violations.num_rows


def test_the_job_engine_key_reaches_the_executor_and_the_summary_says_what_ran(tmp_path, monkeypatch) -> None:
    import pyarrow as pa
    from batchaot.engine import run as engine_run
    pq.write_table(pa.table({"x": list(range(100))}), tmp_path / "d.parquet")
    made = []
    real = engine_run.Executor.__init__

    def spy(self, *args, **kwargs):
        made.append(kwargs.get("engine", "auto"))
        real(self, *args, **kwargs)
    monkeypatch.setattr(engine_run.Executor, "__init__", spy)
    for engine, said in (("vm", "vm"), (None, "vm")):          # auto runs the VM on 100 rows
        key = f"engine: {engine}\n" if engine else ""
        (tmp_path / "job.yaml").write_text(f"name: e\nsource: d.parquet\n{key}rules:\n"
                                           "  - {name: small, check: 'x < 50'}\n  - {name: always, check: '1 = 1'}\n")
        made.clear()
        doc = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(tmp_path / "o")).to_dict()
        # the runner's Executor and, for Parquet on several threads, one per morsel thread
        assert made and set(made) == {engine or "auto"} and doc["engine"] == said
    (tmp_path / "job.yaml").write_text("name: e\nsource: d.parquet\nrules:\n  - {name: always, check: '1 = 1'}\n")
    assert batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process").to_dict()["engine"] == "none"
    assert batchaot.validate(tmp_path / "d.parquet", [{"name": "s", "check": "x < 50"}]).to_dict()["engine"] == "vm"


def test_a_file_whose_name_has_glob_characters_is_read_once_by_its_name(tmp_path) -> None:
    """A folder source is expanded once: a file named `part[1].parquet` is that file, not
    the pattern matching `part1.parquet` beside it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import batchaot
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"x": [1, -1, -2]}), tmp_path / "data" / "part[1].parquet")
    pq.write_table(pa.table({"x": [5]}), tmp_path / "data" / "part1.parquet")
    job = tmp_path / "job.yaml"
    job.write_text("name: g\nsource: {path: data}\nrules: [{name: pos, check: 'x > 0'}]\n")
    res = batchaot.Job.from_yaml(job).run(mode="in-process", output=str(tmp_path / "out"))
    assert res.rows == 4 and res.to_dict()["rules"][0]["violations"] == 2
    assert sorted(v["source"].rsplit("/", 1)[-1] for v in res.violations.to_pylist()) == ["part[1].parquet"] * 2
