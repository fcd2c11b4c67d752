"""The metrics history (--history / history:), change and anomaly checks, `batchaot history`.

Expected values come from DuckDB (the metrics of each table) and from numpy/statistics
(z-scores, modified z-scores), never from batchaot itself.
"""
from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from batchaot.errors import HistoryError, SpecError
from batchaot.io.history import History
from jobdata import REPO

DAYS = [f"2024-05-{d:02d}" for d in range(1, 29)]


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def orders(n: int, seed: int, mean: float = 50.0, bad: int = 0) -> pa.Table:
    """n rows of amounts around `mean` (some NULL), the first `bad` of them negative."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.normal(mean, 5.0, n), 2)
    amount[:bad] = -1.0
    return pa.table({"amount": pa.array(amount, mask=rng.random(n) < 0.05)})


def duck(table: pa.Table, sql: str):
    con = duckdb.connect()
    con.register("t", table)
    return con.execute(sql).fetchone()[0]


def details(result, name: str) -> dict:
    return next(r.summary() for r in result.rules if r.spec.name == name)


# --- the file: two writers at once, foreign and newer files ---------------------------

# The store alone, without importing the whole package (numba, pyarrow): a child starts in
# a fraction of a second, so both writers really overlap.
LIGHT = textwrap.dedent(f"""
    import sys, types
    package = types.ModuleType("batchaot")
    package.__path__ = [{str(REPO / "batchaot")!r}]
    sys.modules["batchaot"] = package
""")

WRITER = LIGHT + textwrap.dedent("""
    import os, sys, time
    from batchaot.io.history import History, RunRecord, utc_text
    path, me, runs, flag_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    open(os.path.join(flag_dir, me), "w").close()
    while len([f for f in os.listdir(flag_dir) if "." not in f]) < 2:   # start appending together
        time.sleep(0.001)
    with History(path, version="test") as h:      # both may create the new file at once
        for i in range(runs):
            rec = RunRecord(job=me, series=me, rules_hash="h", sources=[me], started=utc_text(),
                            finished=utc_text(), rows=i, verdict="pass", now=None, version="test")
            h.append(rec, [("", "row_count", i)] + [(f"r{k}", "violations", i * k) for k in range(20)])
            if i == 0:                            # then wait for the other's first run: they interleave
                open(os.path.join(flag_dir, me + ".first"), "w").close()
                other = os.path.join(flag_dir, ("b" if me == "a" else "a") + ".first")
                deadline = time.monotonic() + 60
                while not os.path.exists(other) and time.monotonic() < deadline:
                    time.sleep(0.001)
""")


def test_two_processes_append_to_one_file_at_once(tmp_path) -> None:
    path, flags = tmp_path / "h.sqlite", tmp_path / "flags"
    flags.mkdir()
    runs = 100
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), me, str(runs), str(flags)],
                              stderr=subprocess.PIPE, text=True) for me in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for me in ("a", "b"):
        assert db.execute("SELECT count(*), sum(rows) FROM runs WHERE job = ?", (me,)).fetchone() == \
            (runs, sum(range(runs)))
        # every run has all its metrics (one transaction each), with its own values
        assert db.execute("SELECT count(*), sum(m.value) FROM metrics m JOIN runs r ON r.id = m.run_id "
                          "WHERE r.job = ?", (me,)).fetchone() == \
            (runs * 21, sum(range(runs)) * (1 + sum(range(20))))
    # they did run at once: each appended its first run before the other its last
    spans = db.execute("SELECT job, min(id), max(id) FROM runs GROUP BY job").fetchall()
    (_, a0, a1), (_, b0, b1) = spans
    assert a0 < b1 and b0 < a1
    assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_foreign_damaged_and_newer_files_are_refused(tmp_path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all\n" * 200)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).executescript("CREATE TABLE customers (id INT); INSERT INTO customers VALUES (1);")
    newer = tmp_path / "newer.sqlite"
    History(newer, version="0.1.0").close()
    sqlite3.connect(newer).executescript("INSERT INTO schema_version VALUES (99, '9.0');")
    zero = tmp_path / "zero.sqlite"
    sqlite3.connect(zero).executescript("CREATE TABLE schema_version (version INTEGER, written_by TEXT);"
                                        "INSERT INTO schema_version VALUES (0, 'x');")
    app = tmp_path / "app.sqlite"
    sqlite3.connect(app).executescript("PRAGMA application_id = 1234;")
    want = {text: "not an SQLite database", other: "without a schema_version table",
            newer: "schema version 99 (written by batchaot 9.0); this batchaot reads up to version 1",
            zero: "schema version 0 is not one batchaot ever wrote", app: "another application"}
    for path, message in want.items():
        with pytest.raises(HistoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
            History(path)
    (tmp_path / "r.yaml").write_text("- {name: pos, check: 'amount > 0'}\n")
    pq.write_table(orders(10, 1), tmp_path / "d.parquet")
    for path, message in want.items():
        code, _, err = run("validate", str(tmp_path / "d.parquet"), "-r", str(tmp_path / "r.yaml"),
                           "--history", str(path))
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert text.read_text().startswith("not a database")           # left as it was
    code, _, err = run("history", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "no history file there" in err and not (tmp_path / "missing.sqlite").exists()
    # a file this version wrote opens again, in another process too
    ours = tmp_path / "ours.sqlite"
    History(ours, version="0.1.0").close()
    subprocess.run([sys.executable, "-c", LIGHT + "from batchaot.io.history import History\n"
                    "History(sys.argv[1], create=False).close()", str(ours)], check=True)


# --- change and anomaly over sequences of runs -----------------------------------------

RULES = [
    {"name": "pos", "check": "amount > 0"},
    {"name": "volume_steady", "change": {"metric": "row_count", "max_pct": 20}},
    {"name": "fewer_bad", "change": {"metric": "violations(pos)", "max_increase": 5}},
    {"name": "nulls_steady", "change": {"metric": "null_fraction(amount)", "max_increase": 0.05}},
    {"name": "amount_z", "anomaly": {"metric": "avg(amount)", "method": "zscore", "window": 10,
                                     "threshold": 3, "min_runs": 4}},
    {"name": "amount_mad", "anomaly": {"metric": "avg(amount)", "method": "mad", "window": 10,
                                       "min_runs": 4}},
]


def test_change_and_anomaly_on_sequences_of_runs(tmp_path) -> None:
    history = tmp_path / "h.sqlite"
    # six steady days, then a day with a volume spike, more bad rows and a shifted mean
    tables = [orders(1000 + 10 * (d % 3), seed=d) for d in range(6)] + [orders(1600, seed=9, mean=80.0, bad=40)]
    counts = [duck(t, "SELECT count(*) FROM t") for t in tables]
    bad = [duck(t, "SELECT count(*) FILTER (WHERE NOT (amount > 0)) FROM t") for t in tables]
    nulls = [duck(t, "SELECT avg(CASE WHEN amount IS NULL THEN 1.0 ELSE 0.0 END) FROM t") for t in tables]
    means = [duck(t, "SELECT avg(amount) FROM t") for t in tables]
    for day, table in enumerate(tables):
        result = batchaot.validate(table, RULES, history=history, now=DAYS[day])
        if day == 0:           # nothing to compare with: every history check passes, and says why
            for name in ("volume_steady", "fewer_bad", "nulls_steady", "amount_z", "amount_mad"):
                s = details(result, name)
                assert s["passed"] and s["details"]["history"] == "insufficient" and s["details"]["runs"] == 0
            continue
        vol = details(result, "volume_steady")
        assert vol["value"] == counts[day] and vol["details"]["previous"] == counts[day - 1]
        assert vol["details"]["previous_at"].startswith(DAYS[day - 1])
        assert vol["passed"] == (abs(counts[day] - counts[day - 1]) / counts[day - 1] * 100 <= 20)
        fewer = details(result, "fewer_bad")
        assert (fewer["value"], fewer["details"]["previous"]) == (bad[day], bad[day - 1])
        assert fewer["passed"] == (bad[day] - bad[day - 1] <= 5)
        nf = details(result, "nulls_steady")
        assert nf["value"] == pytest.approx(nulls[day]) and nf["passed"] == (nulls[day] - nulls[day - 1] <= 0.05)
        past = means[max(0, day - 10):day][::-1]
        for name in ("amount_z", "amount_mad"):
            s = details(result, name)
            assert s["value"] == pytest.approx(means[day])
            if len(past) < 4:
                assert s["passed"] and s["details"] == {**s["details"], "history": "insufficient", "runs": len(past)}
                continue
            if name == "amount_z":
                score = (means[day] - np.mean(past)) / np.std(past, ddof=1)
                limit = 3.0
            else:
                med = np.median(past)
                score = 0.6745 * (means[day] - med) / np.median(np.abs(np.array(past) - med))
                limit = 3.5
            assert s["details"]["score"] == pytest.approx(score) and s["details"]["runs"] == len(past)
            assert s["passed"] == (abs(score) <= limit)
    # the known outcomes: steady days pass, the spike day fails every check
    assert result.verdict == "fail"
    assert {n for n in ("volume_steady", "fewer_bad", "amount_z", "amount_mad")
            if not details(result, n)["passed"]} == {"volume_steady", "fewer_bad", "amount_z", "amount_mad"}
    db = sqlite3.connect(history)
    assert [r[0] for r in db.execute("SELECT verdict FROM runs ORDER BY id")] == ["pass"] * 6 + ["fail"]
    recorded = [r[0] for r in db.execute("SELECT value FROM metrics WHERE rule = '' AND metric = 'avg(amount)' "
                                         "ORDER BY run_id")]
    assert recorded == pytest.approx(means)


def test_steady_series_is_not_flagged_and_a_backfilled_run_sees_only_earlier_ones(tmp_path) -> None:
    history = tmp_path / "h.sqlite"
    rules = [{"name": "amount_mad", "anomaly": {"metric": "avg(amount)", "window": 30, "min_runs": 5}},
             {"name": "volume", "change": {"metric": "row_count", "max_pct": 10}}]
    tables = [orders(2000, seed=100 + d) for d in range(12)]
    for day in range(10):
        result = batchaot.validate(tables[day], rules, history=history, now=DAYS[10 + day])
        assert result.ok, result.to_dict()
    # a run dated before all of them has no history at all
    early = batchaot.validate(tables[10], rules, history=history, now=DAYS[0])
    assert details(early, "volume")["details"]["history"] == "insufficient"
    # one dated between day 3 and 4 compares with day 3
    mid = batchaot.validate(tables[11], rules, history=history, now=DAYS[13] + "T12:00:00")
    assert details(mid, "volume")["details"]["previous_at"].startswith(DAYS[13])
    # its window: days 1-4 and the backfilled run before them
    assert details(mid, "amount_mad")["details"]["runs"] == 5


def test_history_checks_need_a_history_and_valid_fields(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text("- {name: pos, check: 'amount > 0'}\n"
                                     "- {name: vol, change: {metric: row_count, max_pct: 20}}\n")
    pq.write_table(orders(10, 1), tmp_path / "d.parquet")
    code, _, err = run("validate", str(tmp_path / "d.parquet"), "-r", str(tmp_path / "r.yaml"))
    assert code == 2 and "r.yaml:2: rule 'vol': a change check compares" in err and "--history" in err
    (tmp_path / "job.yaml").write_text("name: j\nsource: d.parquet\nrules_from: r.yaml\n")
    code, _, err = run("submit", str(tmp_path / "job.yaml"), "--mode", "in-process")
    assert code == 2 and "give --history PATH" in err
    for field, message in (("history: 5", "job.yaml:4: 'history' must be a database file path"),
                           ("history: h.sqlite\nkind: compile", "a compile job has none to record")):
        (tmp_path / "job.yaml").write_text(f"name: j\nsource: d.parquet\nrules_from: r.yaml\n{field}\n")
        code, _, err = run("submit", str(tmp_path / "job.yaml"))
        assert code == 2 and message in err, err
    bad = {"change: {metric: row_count}": "needs a limit",
           "change: {metric: 'violations(nope)', max_increase: 1}": "no rule named 'nope'",
           "change: {metric: 'violations(x)', max_increase: 1}": "this rule's own count",
           "change: {metric: 'median(amount)', max_pct: 1}": "unsupported aggregate",
           "anomaly: {metric: row_count, method: iqr}": "method' must be one of zscore, mad",
           "anomaly: {metric: row_count, window: 3, min_runs: 5}": "larger than the window",
           "change: {metric: row_count, max_pct: 5, typo: 1}": "unknown change field 'typo'"}
    for body, message in bad.items():
        (tmp_path / "b.yaml").write_text(f"- {{name: pos, check: 'amount > 0'}}\n- {{name: x, {body}}}\n")
        code, _, err = run("validate", str(tmp_path / "d.parquet"), "-r", str(tmp_path / "b.yaml"),
                           "--history", str(tmp_path / "h.sqlite"))
        assert code == 2 and message in err, (body, err)


# --- the report's sparklines ------------------------------------------------------------

def test_report_shows_each_rules_violations_over_the_recorded_runs(tmp_path) -> None:
    (tmp_path / "rules.yaml").write_text("- {name: pos, check: 'amount > 0'}\n")
    history, counts = tmp_path / "h.sqlite", []
    for d in range(4):
        table = orders(400, seed=d, bad=d)
        pq.write_table(table, tmp_path / f"day{d}.parquet")
        counts.append(duck(table, "SELECT count(*) FILTER (WHERE NOT (amount > 0)) FROM t"))
        code, _, err = run("validate", str(tmp_path / f"day{d}.parquet"), "-r", str(tmp_path / "rules.yaml"),
                           "--history", str(history), "--output", str(tmp_path / f"out{d}"))
        assert code in (0, 1), err
    assert len(set(counts)) > 1                       # a trend, not a flat line
    page = (tmp_path / "out2" / "report.html").read_text()
    shown = ", ".join(f"{c:,}" for c in counts[:3])    # run 3's page: runs 1-3, not the later 4th
    assert page.count('<svg class="spark"') == 1 and f"violations in the last 3 runs: {shown}" in page
    assert run("report", str(tmp_path / "out2"))[0] == 0          # rebuilt after run 4: the same trail
    assert f"violations in the last 3 runs: {shown}" in (tmp_path / "out2" / "report.html").read_text()
    assert '<svg class="spark"' not in (tmp_path / "out0" / "report.html").read_text()   # one run: no line
    history.unlink()                                   # history gone: the page still builds, without one
    assert run("report", str(tmp_path / "out3"))[0] == 0
    assert '<svg class="spark"' not in (tmp_path / "out3" / "report.html").read_text()


# --- validate and submit record; `batchaot history` shows them -----------------------

def test_validate_and_submit_record_and_history_shows_the_trend(tmp_path) -> None:
    days = [orders(500 + 50 * d, seed=d, bad=d) for d in range(3)]
    for d, table in enumerate(days):
        pq.write_table(table, tmp_path / f"day{d}.parquet")
    (tmp_path / "rules.yaml").write_text(
        "- {name: pos, check: 'amount > 0'}\n"
        "- {name: mean_amount, aggregate: 'avg(amount)', between: [0, 1000]}\n"
        "- {name: vol, change: {metric: row_count, max_pct: 50}}\n")
    history = tmp_path / "h.sqlite"
    for d in range(2):          # validate: today's file against yesterday's, through the rules file
        code, out, _ = run("validate", str(tmp_path / f"day{d}.parquet"), "-r", str(tmp_path / "rules.yaml"),
                           "--history", str(history), "--json")
        doc = json.loads(out)
        assert code == (0 if d == 0 else 1) and doc["history"]["run"] == d + 1
    vol = doc["rules"][2]["details"]
    assert (vol["previous"], vol["previous_run"]) == (550 - 50, 1)
    db = sqlite3.connect(history)
    for run_id, table in ((1, days[0]), (2, days[1])):
        m = dict(((r, k), v) for r, k, v in db.execute("SELECT rule, metric, value FROM metrics WHERE run_id = ?",
                                                        (run_id,)))
        assert m[("", "row_count")] == duck(table, "SELECT count(*) FROM t")
        assert m[("pos", "violations")] == duck(table, "SELECT count(*) FILTER (WHERE NOT (amount > 0)) FROM t")
        assert m[("", "avg(amount)")] == pytest.approx(duck(table, "SELECT avg(amount) FROM t"))
        assert m[("mean_amount", "value")] == pytest.approx(m[("", "avg(amount)")])
        assert m[("", "duration_s")] > 0 and m[("pos", "passed")] == (run_id == 1)
    job, series, sources = db.execute("SELECT job, series, sources FROM runs WHERE id = 2").fetchone()
    assert job == "rules" and json.loads(series) == {"rules": str(tmp_path / "rules.yaml")}
    assert json.loads(sources) == [str(tmp_path / "day1.parquet")]

    # submit (in-process) records too, under the job's name and its own series
    (tmp_path / "job.yaml").write_text("name: daily\nsource: day2.parquet\nrules_from: rules.yaml\n"
                                       "history: h.sqlite\noutput: {path: out}\n")
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process")
    assert res.history == {"path": str(history), "run": 3}
    code, out, _ = run("submit", str(tmp_path / "job.yaml"), "--mode", "in-process", "-q",
                       "--history", str(history))
    assert code == 1 and "baseline of vol: run 3 (" in out and f"recorded as run 4 in {history}" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["history"] == {"path": str(history), "run": 4}
    vol = next(r for r in summary["rules"] if r["name"] == "vol")["details"]
    assert vol["previous_run"] == 3 and vol["change"] == 0          # not run 2: another series
    rows = db.execute("SELECT job, rows FROM runs WHERE id IN (3, 4)").fetchall()
    assert rows == [("daily", duck(days[2], "SELECT count(*) FROM t"))] * 2

    code, out, _ = run("history", str(tmp_path / "job.yaml"), "--metric", "AVG(amount)", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["job"] == "daily" and [r["id"] for r in doc["runs"]] == [4, 3]
    assert [p["run"] for p in doc["trends"]["avg(amount)"]] == [3, 4]
    code, out, _ = run("history", str(history), "--metric", "violations(pos)", "--last", "3")
    assert code == 0 and "violations(pos)" in out and "daily" in out and "rules" in out
    line = next(l for l in out.splitlines() if "violations(pos)" in l)
    assert any(c in line for c in "▁▂▃▄▅▆▇█")


def test_sparkline_scales_low_to_high() -> None:
    from batchaot.report.history import sparkline
    assert sparkline([0, 7, 3.5, None, 7]) == "▁█▅ █"
    assert sparkline([2, 2]) == "▄▄" and sparkline([]) == ""


def test_demo_job_keeps_a_history() -> None:
    job = batchaot.Job.from_yaml(REPO / "jobs" / "demo.yaml")
    assert job.spec.history is not None and job.spec.history.endswith("history.sqlite")
    with pytest.raises(SpecError, match="no 'history:' file"):
        from batchaot.report.history import target
        target(str(REPO / "jobs" / "orders_multi.yaml"), None)


def test_a_change_check_added_later_finds_the_aggregate_rule_s_past_values(tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {name: mean, aggregate: 'avg(amount)', between: [0, 100]}\n")
    before, after = orders(300, seed=1), orders(300, seed=2, mean=56.0)
    first = batchaot.validate(before, str(rules), history=tmp_path / "h.sqlite")
    rules.write_text(rules.read_text() + "- {name: mean_steady, change: {metric: 'AVG(amount)', max_pct: 5}}\n")
    second = batchaot.validate(after, str(rules), history=tmp_path / "h.sqlite")
    s = details(second, "mean_steady")
    old, new = duck(before, "SELECT avg(amount) FROM t"), duck(after, "SELECT avg(amount) FROM t")
    assert s["details"]["previous_run"] == first.history["run"]
    assert s["details"]["previous"] == pytest.approx(old) and s["value"] == pytest.approx(new)
    assert s["passed"] == (abs(new - old) / old * 100 <= 5) and not s["passed"]
