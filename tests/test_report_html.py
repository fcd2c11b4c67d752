"""report.html in a real headless Chromium: the page's script runs without errors, every
rule's name and count is on the page (counts equal to DuckDB's), and values or names
holding markup stay text. Under CI=true a browser that cannot run fails the test."""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from batchaot.report import html

XSS = "<script>alert(1)</script>"
RULES = [
    {"name": "positive_amount", "check": "amount > 0", "description": "no refunds <i>here</i>"},
    {"name": "status_known <img src=x onerror=alert(2)>", "check": "status IN ('new', 'paid')", "severity": "warn"},
    {"name": "id_unique", "unique": ["id"]},
    {"name": "mean_amount", "aggregate": "avg(amount)", "between": [0, 10]},
    {"name": "ids_small", "check": "id < 1000"},
    {"name": "early", "check": "ts < TIMESTAMP '2024-01-01 10:00:00'"},
]
NS_TEXT = "2024-01-01 10:00:00.123456999"     # beyond what Python's datetime holds


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _no_browser(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: the report test needs a headless Chromium: {why}")
    pytest.skip(why)


def dump_dom(path: str, profile: str, fragment: str = "") -> str:
    """The DOM after the page's scripts ran, from headless Chromium (no network needed)."""
    binary = _browser()
    if binary is None:
        _no_browser("no chromium on PATH (apt-get install chromium)")
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--no-first-run", "--virtual-time-budget=2000",
           "--dump-dom", f"file://{os.path.abspath(path)}{fragment}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _no_browser(f"chromium did not run: {exc}")
    if proc.returncode != 0 or "<html" not in proc.stdout:
        _no_browser(f"chromium failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    return proc.stdout


class _Page(HTMLParser):
    """What the test reads from the dumped DOM: elements by tag, rule rows and the text
    of their cells, the root's attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, int] = {}
        self.attributes: set[str] = set()
        self.root: dict = {}
        self.rules: dict[str, dict] = {}
        self._rule: str | None = None
        self._cell: str | None = None
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes |= set(a)
        if tag == "html":
            self.root = a
        if tag == "tr" and "rule" in (a.get("class") or "").split():
            self._rule = a["data-name"]
            self.rules[self._rule] = {"status": a["data-status"], "violations": "", "text": "",
                                      "hidden": "hidden" in a}
        if tag == "td" and self._rule and "violations" in (a.get("class") or "").split():
            self._cell = "violations"

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._rule:
            self.rules[self._rule]["text"] += data
            if self._cell:
                self.rules[self._rule][self._cell] += data.strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    table = pa.table({"id": pa.array([1, 2, 2, 4, 5000, 6], pa.int64()),
                      "amount": pa.array([5.0, -1.0, None, 3.0, 2.0, -7.5]),
                      "status": pa.array(["new", XSS, "paid", None, "odd", "new"]),
                      "ts": pa.array([1704103200123456999] + [0] * 5, pa.timestamp("ns"))})
    pq.write_table(table, root / "d.parquet")
    con = duckdb.connect()
    con.register("t", table)
    expected = {r["name"]: con.execute(f"SELECT count(*) FILTER (WHERE NOT ({r['check']})) FROM t").fetchall()[0][0]
                for r in RULES if "check" in r}
    expected["id_unique"] = con.execute("SELECT coalesce(sum(c), 0) FROM (SELECT count(*) c FROM t "
                                        "GROUP BY id HAVING count(*) > 1)").fetchall()[0][0]
    expected["mean_amount"] = 0          # a dataset-level fact: no violating rows
    con.close()
    out = root / "out"
    result = batchaot.validate(str(root / "d.parquet"), RULES, output=str(out))
    return root, out, result, expected


def test_report_is_written_with_the_run_and_self_contained(run) -> None:
    _, out, result, _ = run
    text = (out / "report.html").read_text(encoding="utf-8")
    assert not result.ok
    assert "http://" not in text and "https://" not in text      # nothing to fetch
    page = _Page()
    page.feed(text)
    assert not {"link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert not {"src", "href"} & page.attributes
    assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_report_in_chromium(run, tmp_path) -> None:
    _, out, result, expected = run
    page = _Page()
    page.feed(dump_dom(str(out / "report.html"), str(tmp_path / "profile")))
    assert page.root.get("data-report-ready") == "ok", "the page's script did not finish"
    assert "data-report-error" not in page.root
    assert page.tags.get("script") == 1 and "img" not in page.tags      # nothing injected
    assert set(page.rules) == {r["name"] for r in RULES}
    summary = {r["name"]: r for r in result.to_dict()["rules"]}
    for name, row in page.rules.items():
        assert int(row["violations"].replace(",", "")) == expected[name] == summary[name]["violations"]
        assert row["status"] == html.status(summary[name])
        assert name in row["text"]                                     # the name, as text
    assert XSS in "".join(page.texts)                                  # the value, as text
    assert NS_TEXT in page.rules["early"]["text"]
    assert "no refunds <i>here</i>" in page.rules["positive_amount"]["text"]


def test_filter_by_status_from_the_link(run, tmp_path) -> None:
    _, out, _, _ = run
    page = _Page()
    page.feed(dump_dom(str(out / "report.html"), str(tmp_path / "profile"), "#status=fail"))
    assert page.root.get("data-report-ready") == "ok" and "data-report-error" not in page.root
    shown = {name for name, row in page.rules.items() if not row["hidden"]}
    assert shown and shown == {name for name, row in page.rules.items() if row["status"] == "fail"}


def test_submit_writes_the_report_and_report_rebuilds_it(run, tmp_path) -> None:
    root, _, _, expected = run
    job = tmp_path / "job.yaml"
    job.write_text(f"name: r\nsource: {{path: {root / 'd.parquet'}}}\n"
                   "rules:\n  - {name: ids_small, check: \"id < 1000\"}\noutput: {path: out}\n")
    def cli(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    proc = cli("submit", str(job), "--mode", "in-process", "-q")
    assert proc.exit_code == 1 and "report.html" in proc.stdout
    report = tmp_path / "out" / "report.html"
    first = report.read_text(encoding="utf-8")
    report.unlink()
    proc = cli("report", str(tmp_path / "out"))
    assert proc.exit_code == 0 and report.exists()
    assert report.read_text(encoding="utf-8") == first
    assert f">{expected['ids_small']}</td>" in first
    missing = cli("report", str(tmp_path))
    assert missing.exit_code == 2 and "summary.json" in missing.stderr
