"""The CLI: exit codes 0/1/2, one JSON object with --json, one clear line on bad input."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batchaot.cli import main

RULES = """rules:
  - {name: positive, check: "amount > 0"}
  - {name: known_status, check: "status IN ('paid', 'new')", severity: warn}
"""


@pytest.fixture()
def files(tmp_path):
    table = pa.table({"amount": pa.array([1.0, -2.0, None, 4.0]),
                      "status": ["paid", "lost", "new", None],
                      "empty": pa.nulls(4)})
    pq.write_table(table, tmp_path / "data.parquet")
    pq.write_table(table.filter(pa.compute.greater(table["amount"], 0)), tmp_path / "good.parquet")
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_failing_rule_exits_1_and_json_is_one_object(files) -> None:
    code, out, _ = run("validate", str(files / "data.parquet"), "--rules", str(files / "rules.yaml"), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["rows"] == 4
    positive, status = doc["rules"]
    assert (positive["name"], positive["severity"], positive["passed"], positive["violations"]) == \
        ("positive", "error", False, 1)
    assert (status["severity"], status["passed"], status["violations"]) == ("warn", False, 1)


def test_passing_data_exits_0(files) -> None:
    code, out, _ = run("validate", str(files / "good.parquet"), "--rules", str(files / "rules.yaml"))
    assert code == 0, out
    assert "all error rules passed" in out


def test_warn_only_failure_exits_0(files) -> None:
    (files / "warn.yaml").write_text("- {name: s, check: \"status = 'paid'\", severity: warn}\n")
    code, out, _ = run("validate", str(files / "data.parquet"), "--rules", str(files / "warn.yaml"), "--json")
    assert code == 0 and json.loads(out)["rules"][0]["passed"] is False


def test_output_dir_has_summary_and_violations(files) -> None:
    out_dir = files / "out"
    code, _, _ = run("validate", str(files / "data.parquet"), "--rules", str(files / "rules.yaml"),
                     "--output", str(out_dir))
    assert code == 1
    summary = json.loads((out_dir / "summary.json").read_text())
    parts = sorted(os.listdir(out_dir / "violations"))
    assert parts and all(p.startswith("part-") and p.endswith(".parquet") for p in parts)
    violations = pq.read_table(out_dir / "violations").to_pylist()
    assert len(violations) == sum(r["violations"] for r in summary["rules"])
    assert {(v["rule"], v["row"]) for v in violations} == {("positive", 1), ("known_status", 1)}
    assert next(v for v in violations if v["rule"] == "positive")["amount"] == -2.0


def test_inspect_shows_listings_and_zero_tick(files) -> None:
    (files / "z.yaml").write_text("- {name: z, check: 'amount > 0 OR 1 = 1'}\n"
                                  "- {name: p, check: 'amount + 1 > 2 * 3'}\n")
    code, out, _ = run("inspect", str(files / "z.yaml"), "--schema", str(files / "data.parquet"))
    assert code == 0
    assert "before optimization" in out and "after optimization" in out
    assert "zero-tick: z" in out
    code, out, _ = run("inspect", str(files / "z.yaml"), "--schema", str(files / "data.parquet"), "--json")
    info = {r["name"]: r for r in json.loads(out)["rules"]}
    assert info["z"]["zero_tick"] and not info["p"]["zero_tick"]
    assert info["p"]["after"] < info["p"]["before"]


def _bad(files, *args) -> str:
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert err.startswith("batchaot: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_line(files, tmp_path) -> None:
    data, rules = str(files / "data.parquet"), str(files / "rules.yaml")
    (files / "broken.yaml").write_text("rules:\n  - {name: a, check: 'x'\n")
    assert "broken.yaml:" in _bad(files, "validate", data, "--rules", str(files / "broken.yaml"))
    (files / "col.yaml").write_text("- {name: a, check: 'amuont > 0'}\n")
    assert "did you mean 'amount'" in _bad(files, "validate", data, "--rules", str(files / "col.yaml"))
    (files / "type.yaml").write_text("- {name: a, check: \"amount > 'abc'\"}\n")
    assert "type mismatch" in _bad(files, "validate", data, "--rules", str(files / "type.yaml"))
    (files / "fn.yaml").write_text("- {name: a, check: 'sqrt(amount) > 1'}\n")
    assert "unsupported SQL construct" in _bad(files, "validate", data, "--rules", str(files / "fn.yaml"))
    (files / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    assert "corrupt.parquet" in _bad(files, "validate", str(files / "corrupt.parquet"), "--rules", rules)
    assert "no such file" in _bad(files, "validate", str(files / "missing.parquet"), "--rules", rules)
    pq.write_table(pa.table({"amount": pa.array([], pa.float64()), "status": pa.array([], pa.string())}),
                   files / "empty.parquet")
    code, out, _ = run("validate", str(files / "empty.parquet"), "--rules", rules, "--json")
    assert code == 0 and json.loads(out)["rows"] == 0      # empty data is data: row rules pass
    blocker = files / "file-not-dir"
    blocker.write_text("x")
    assert "not writable" in _bad(files, "validate", data, "--rules", rules, "--output", str(blocker / "out"))


def test_null_only_column_is_checked_not_refused(files) -> None:
    (files / "n.yaml").write_text("- {name: a, check: 'empty > 0'}\n- {name: b, check: 'empty > 0', strict: true}\n")
    code, out, _ = run("validate", str(files / "data.parquet"), "--rules", str(files / "n.yaml"), "--json")
    lax, strict = json.loads(out)["rules"]
    assert code == 1 and lax["violations"] == 0 and lax["null_rows"] == 4 and strict["violations"] == 4


@pytest.mark.parametrize("fmt", ["csv", "arrow", "jsonl"])
def test_other_formats(files, fmt) -> None:
    table = pq.read_table(files / "good.parquet").drop(["empty"])
    path = files / f"good.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(table, path)
    elif fmt == "arrow":
        import pyarrow.feather as feather
        feather.write_feather(table, path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n")
    code, out, _ = run("validate", str(path), "--rules", str(files / "rules.yaml"), "--json")
    assert code == 0, out
    assert json.loads(out)["rows"] == 2


def test_warmup_fills_the_numba_cache_of_the_runtime(tmp_path, monkeypatch) -> None:
    """`batchaot warmup` runs the runtime's kernels once, so they are in Numba's cache; a
    Program that travelled by pickle (the quarantine's, to a Ray worker) keeps read-only
    arrays, the one VM specialisation that warm-up compiles."""
    import pickle

    import batchaot
    from batchaot.engine import vm

    result = CliRunner().invoke(main, ["warmup", "--rows", "3000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "runtime kernels compiled and cached in" in result.output
    assert len(vm.run.signatures) == 1 and (vm.run.stats.cache_hits or vm.run.stats.cache_misses)
    program = batchaot.compile("a > 0", pa.schema([("a", pa.int64())]))
    back = pickle.loads(pickle.dumps(program))
    assert not any(getattr(back, n).flags.writeable for n in ("code", "kval", "kvalid", "code0", "kval0", "kvalid0"))
    assert back.to_bytes() == program.to_bytes()


def test_a_small_job_does_not_import_pandas(tmp_path) -> None:
    """pyarrow imports pandas (a third of a second) on its first pa.array()/pa.scalar() of
    Python values or np.asarray of an Arrow array; a string-rule job must not pay it."""
    import subprocess
    import sys

    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"s": ["a", "b", None, "c"] * 50, "x": list(range(200))}), data)
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {name: s_in, check: \"s IN ('a', 'b')\"}\n  - {name: x_pos, check: x > 0}\n"
                     "  - {name: s_like, check: \"s LIKE '%a%' OR length(s) = 1\"}\n")
    code = ("import sys\nfrom batchaot.cli import main\nsys.argv = ['batchaot', 'validate', sys.argv[1], '-r', sys.argv[2],"
            " '--json']\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint('pandas' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(data), str(rules)], capture_output=True, text=True)
    assert json.loads(done.stdout)["rules"][0]["violations"] == 50
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
