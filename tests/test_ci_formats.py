"""--junit FILE and --format github on validate and submit: the structure CI systems read,
counts equal to DuckDB's, exit codes unchanged (0 pass, 1 an error rule failed, 2 bad input)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from click.testing import CliRunner

from batchaot.cli import main
from batchaot.report import ci

RULES = [
    ("positive, amount: yes", "amount > 0", "error"),
    ("known_status", "status IN ('new', 'paid')", "warn"),
    ("small_qty", "qty < 1000", "error"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ci")
    table = pa.table({"amount": pa.array([5.0, -1.0, None, 0.0, 3.0, 2.5]),
                      "status": pa.array(["new", "odd", "paid", None, "<b>x</b>", "new"]),
                      "qty": pa.array([1, 2, 3, 4, 5, None], pa.int64())})
    pq.write_table(table, root / "d.parquet")
    lines = "".join(f"  - {{name: \"{n}\", check: \"{c}\", severity: {s}}}\n" for n, c, s in RULES)
    (root / "rules.yaml").write_text("rules:\n" + lines)
    (root / "job.yaml").write_text(f"name: ci-job\nsource: {{path: d.parquet}}\nrules:\n{lines}"
                                   "output: {path: out}\n")
    con = duckdb.connect()
    con.register("t", table)
    counts = {n: con.execute(f"SELECT count(*) FILTER (WHERE NOT ({c})) FROM t").fetchall()[0][0]
              for n, c, _ in RULES}
    con.close()
    return root, counts


def _run(*args):
    """The CLI in this process: .returncode, .stdout, .stderr as from a subprocess."""
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    res.returncode = res.exit_code
    return res


@pytest.mark.parametrize("command", ["validate", "submit"])
def test_junit_has_one_testcase_per_rule_with_counts(inputs, command) -> None:
    root, counts = inputs
    junit = root / f"{command}.xml"
    args = (["validate", root / "d.parquet", "-r", root / "rules.yaml"] if command == "validate"
            else ["submit", root / "job.yaml", "--mode", "in-process", "-q"])
    proc = _run(*args, "--junit", junit)
    assert proc.returncode == 1, proc.stderr                   # an error rule failed
    tree = ET.parse(junit)
    root_el = tree.getroot()
    assert root_el.tag == "testsuites"
    (suite,) = root_el.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [n for n, _, _ in RULES]
    failing_errors = [n for n, _, s in RULES if s == "error" and counts[n]]
    assert suite.get("tests") == str(len(RULES)) and suite.get("failures") == str(len(failing_errors))
    for case, (name, check, severity) in zip(cases, RULES):
        failure = case.find("failure")
        if severity == "error" and counts[name]:
            assert failure is not None
            assert failure.get("message").startswith(f"{counts[name]:,} violations")
            assert check in failure.text
        else:
            assert failure is None
        if severity == "warn" and counts[name]:
            assert f"{counts[name]:,} violations" in case.find("system-out").text


def test_github_annotations(inputs) -> None:
    root, counts = inputs
    proc = _run("validate", root / "d.parquet", "-r", root / "rules.yaml", "--format", "github")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    errors = [l for l in lines if l.startswith("::error ")]
    warnings = [l for l in lines if l.startswith("::warning ")]
    assert len(errors) == sum(1 for n, _, s in RULES if s == "error" and counts[n])
    assert len(warnings) == sum(1 for n, _, s in RULES if s == "warn" and counts[n])
    # a property value escapes ',' and ':' (the rule name has both), the message escapes '%'
    first = errors[0]
    assert "title=batchaot%3A rule positive%2C amount%3A yes failed" in first
    assert f"::{counts['positive, amount: yes']:,} violations (" in first and "%25 of 6 rows)" in first
    assert "file=" in first and ",line=" in first
    assert lines[-1].startswith("::notice title=batchaot::6 rows, validation failed")


def test_passing_run_exits_0_and_junit_has_no_failure(tmp_path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "d.parquet")
    (tmp_path / "r.yaml").write_text("rules:\n  - {name: pos, check: \"x > 0\"}\n")
    proc = _run("validate", tmp_path / "d.parquet", "-r", tmp_path / "r.yaml", "--junit", tmp_path / "j.xml",
                "--format", "github")
    assert proc.returncode == 0
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.find("testcase/failure") is None
    assert proc.stdout.splitlines() == ["::notice title=batchaot::2 rows, all error rules passed"]


def test_bad_input_exits_2_with_an_error_testcase(tmp_path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "d.parquet")
    (tmp_path / "r.yaml").write_text("rules:\n  - {name: pos, check: \"nope > 0\"}\n")
    proc = _run("validate", tmp_path / "d.parquet", "-r", tmp_path / "r.yaml", "--junit", tmp_path / "j.xml")
    assert proc.returncode == 2 and "nope" in proc.stderr
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("errors") == "1" and "nope" in suite.find("testcase/error").get("message")


def test_junit_survives_text_xml_cannot_hold() -> None:
    summary = {"ok": False, "rows": 1, "rules": [
        {"name": "r", "kind": "check", "severity": "error", "passed": False, "violations": 1, "rows": 1,
         "failing_fraction": 1.0, "check": "s = '\x1b[31m<&>'", "value": None, "details": None}]}
    doc = ET.fromstring(ci.junit(summary).split("\n", 1)[1])
    assert "<&>" in doc.find("testsuite/testcase/failure").text


def test_unreadable_file_and_stopped_rules_in_junit_github_and_report(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "data" / "a.parquet")
    (tmp_path / "data" / "b.parquet").write_bytes(b"PAR1 not parquet at all PAR1")
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nsource: {path: 'data/*.parquet'}\nrules:\n  - {name: pos, check: \"x > 0\"}\n"
                   "output: {path: out}\n")
    proc = _run("submit", job, "--mode", "in-process", "-q", "--junit", tmp_path / "j.xml", "--format", "github")
    assert proc.returncode == 1                    # unchecked data never passes
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    (error,) = suite.findall("testcase/error")
    assert "b.parquet" in error.get("message") and suite.get("errors") == "1"
    assert any(l.startswith("::error title=batchaot%3A input not checked::") and "b.parquet" in l
               for l in proc.stdout.splitlines())
    assert "Inputs not checked" in (tmp_path / "out" / "report.html").read_text()
    job.write_text("name: j\nsource: {path: 'data/a.parquet'}\nrules:\n"
                   "  - {name: shape, schema: {columns: {y: int64}}}\n  - {name: pos, check: \"x > 0\"}\n")
    proc = _run("submit", job, "--mode", "in-process", "-q", "--junit", tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert proc.returncode == 1 and suite.get("skipped") == "1" and suite.get("failures") == "1"
    assert "before any row was read" in suite.find("testcase/skipped").get("message")
