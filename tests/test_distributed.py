"""`submit` on a local Ray: 1 and N workers give exactly the in-process answer, and a
worker killed mid-run (while validating a unit, or inside a reduce call) changes nothing:
the killed call is retried on the restarted actor, counted once, its part written once.

Retries are seen through the workers' test hook (batchaot.distributed.worker.TestHook,
BATCHAOT_TEST_HOOK): every run/reduce call appends "<method> <key> <pid>" to a file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import batchaot
from batchaot.distributed.actors import HOOK_ENV
from batchaot.io import units as units_mod
from batchaot.samples import customers, orders
from jobdata import REPO, concat_files

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def local_ray():
    # The machine is shared with other test runs: Ray's memory monitor must not kill a
    # worker because someone else's process is large (it did, making a test flaky).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    (root / "data").mkdir()
    for k in range(3):
        pq.write_table(orders(40_000, seed=20 + k), root / "data" / f"part-{k}.parquet", row_group_size=4096)
    pq.write_table(customers(3_000, seed=5, missing=40), root / "customers.parquet")
    job = root / "job.yaml"
    job.write_text(f"name: dist\nsource: {{path: 'data/*.parquet'}}\n"
                   f"rules_from: {REPO / 'jobs/rules/orders_rows.yaml'}\n"
                   "rules:\n" + "".join(f"  - {r}\n" for r in DATASET_RULES))
    return root, job


# Dataset-level checks ride along with the row rules: their partials cross units (and
# files, and workers), and ids repeat across the three files, so unique finds duplicates
# that no single unit can see.
DATASET_RULES = [
    "{name: email_shape, check: \"email LIKE '%@%'\"}",
    "{name: order_id_unique, unique: [order_id]}",
    "{name: customer_status_unique, unique: [customer_id, status], where: 'amount > 400'}",
    "{name: email_present, not_null: email, mostly: 0.99}",
    "{name: mean_amount, aggregate: 'avg(amount)', between: [10, 500]}",
    "{name: distinct_customers, aggregate: 'count_distinct(customer_id)', between: [1, null]}",
    "{name: rows, row_count: {between: [1, null]}}",
    "{name: customer_known, reference: {columns: [customer_id], dataset: customers.parquet, key: [id]}}",
]


@pytest.fixture()
def small_units(monkeypatch):
    monkeypatch.setattr(units_mod, "UNIT_ROWS", 8192)   # 5 units per file, 15 in all


def outcome(res) -> tuple[list, set]:
    return summary_outcome(res.to_dict(), res.violations)


def summary_outcome(summary: dict, violations) -> tuple[list, set]:
    """Per-rule counts and the set of violating (rule, source, row): what must not change."""
    counts = [(r["name"], r["rows"], r["violations"], r["null_rows"], r["value"], r["passed"], _details(r))
              for r in summary["rules"]]
    rows = {(v["rule"], v["source"], v["row"]) for v in violations.to_pylist()}
    return counts, rows


@pytest.fixture(scope="module")
def calm(local_ray, job_file, tmp_path_factory):
    """The job on 2 workers, in small units, with nothing killed: the answer to compare with."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(units_mod, "UNIT_ROWS", 8192)
        res = batchaot.Job.from_yaml(job_file[1]).run(mode="ray", workers=2,
                                                      output=str(tmp_path_factory.mktemp("calm")))
    return outcome(res)


def _details(rule: dict):
    """Details, with floats rounded: sums of partials differ in the last bits by split."""
    d = rule["details"] or {}
    return json.dumps({k: round(v, 9) if isinstance(v, float) else v for k, v in d.items()}, sort_keys=True)


def test_one_and_two_workers_equal_in_process_and_validate(local_ray, job_file, small_units, tmp_path) -> None:
    root, job_path = job_file
    job = batchaot.Job.from_yaml(job_path)
    base = job.run(mode="in-process", output=str(tmp_path / "local"))
    assert base.units == 15
    for workers in (1, 2):
        res = job.run(mode="ray", workers=workers, output=str(tmp_path / f"w{workers}"))
        assert res.mode == "ray" and res.workers == workers
        assert outcome(res) == outcome(base)
    paths = sorted(str(p) for p in (root / "data").glob("*.parquet"))
    table, offsets = concat_files(paths)
    ref = batchaot.validate(table, list(job.spec.rules))
    assert [r["violations"] for r in ref.to_dict()["rules"]] == [c[2] for c in outcome(base)[0]]
    assert {(v["rule"], v["row"]) for v in ref.violations.to_pylist()} == \
        {(rule, offsets[src] + row) for rule, src, row in outcome(base)[1]}
    found = {r["name"]: r for r in base.to_dict()["rules"]}
    files = f"read_parquet('{root}/data/*.parquet')"
    dup, missing = duckdb.sql(
        f"SELECT (SELECT count(*) FROM {files} JOIN (SELECT order_id FROM {files} GROUP BY order_id "
        f"HAVING count(*) > 1) USING (order_id)), (SELECT count(*) FROM {files} t WHERE customer_id IS NOT NULL "
        f"AND customer_id NOT IN (SELECT id FROM '{root}/customers.parquet'))").fetchall()[0]
    assert found["order_id_unique"]["violations"] == dup > 0
    assert found["customer_known"]["violations"] == missing > 0


def attempts(folder) -> dict[tuple[str, str], list[int]]:
    """(method, key) → the pids that started that call, in order (the test hook's log)."""
    found: dict = defaultdict(list)
    for line in (folder / "attempts").read_text().splitlines():
        method, key, pid = line.split()
        found[(method, key)].append(int(pid))
    return found


def no_duplicate_rows(res) -> None:
    """Every violating row once, and as many rows in the parts as the summary counts
    (dataset checks that list no rows, such as aggregates, count 0 rows)."""
    rows = [(v["rule"], v["source"], v["row"]) for v in res.violations.to_pylist()]
    assert len(rows) == len(set(rows))
    listed = {r["name"] for r in res.to_dict()["rules"] if r["kind"] in ("check", "unique", "reference", "not_null")}
    assert len(rows) == sum(r["violations"] for r in res.to_dict()["rules"] if r["name"] in listed)


def kill_when_held(hook: Path) -> threading.Thread:
    """SIGKILLs, from outside, the process whose `run` call the test hook holds (hold=run):
    the kill lands inside a unit, whatever the timing of the other worker."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while not (hook / "held").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = (hook / "held").read_text() if (hook / "held").exists() else ""
        if text.endswith("\n"):
            os.kill(int(text.split()[2]), signal.SIGKILL)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_killed_worker_changes_nothing(local_ray, job_file, calm, small_units, tmp_path, monkeypatch) -> None:
    _, job_path = job_file
    job = batchaot.Job.from_yaml(job_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    monkeypatch.setenv(HOOK_ENV, f"{hook}:hold=run")
    watcher = kill_when_held(hook)
    rough = job.run(mode="ray", workers=2, output=str(tmp_path / "rough"))
    watcher.join()
    method, key, pid = (hook / "held").read_text().split()
    # the held unit was started again, by another process, after the kill
    calls = attempts(hook)
    pids = calls[(method, key)]
    assert method == "run" and len(pids) >= 2 and pids[0] == int(pid) != pids[-1], calls
    assert not rough.errors
    assert outcome(rough) == calm
    no_duplicate_rows(rough)
    assert not [p for p in os.listdir(tmp_path / "rough" / "violations") if ".tmp-" in p]


def test_worker_killed_inside_a_reduce_call_changes_nothing(local_ray, job_file, calm, small_units, tmp_path,
                                                            monkeypatch) -> None:
    """The first reduce call of the job writes its bucket's part, then its process exits
    (os._exit, as a kill) before it returns: Ray restarts the actor and redoes the call."""
    _, job_path = job_file
    job = batchaot.Job.from_yaml(job_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    monkeypatch.setenv(HOOK_ENV, f"{hook}:crash=reduce")
    rough = job.run(mode="ray", workers=2, output=str(tmp_path / "rough"))
    method, key, pid = (hook / "crashed").read_text().split()
    assert method == "reduce"
    pids = attempts(hook)[("reduce", key)]
    assert len(pids) == 2 and pids[0] == int(pid) != pids[1], pids      # killed inside, then retried
    assert not rough.errors
    assert outcome(rough) == calm
    no_duplicate_rows(rough)
    assert not [p for p in os.listdir(tmp_path / "rough" / "violations") if ".tmp-" in p]


def test_json_stdout_is_one_object_when_a_worker_dies(local_ray, job_file, calm, tmp_path) -> None:
    """`submit --json` in its own process, on this module's Ray: a worker dies in the middle
    of a unit, Ray prints "(raylet) A worker died ..." lines, and they go to stderr; the
    answer is the calm run's (in other units: one per file here)."""
    _, job_path = job_file
    hook = tmp_path / "hook"
    hook.mkdir()
    env = dict(os.environ, **{HOOK_ENV: f"{hook}:crash=run"})
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.run([sys.executable, "-m", "batchaot.cli", "submit", str(job_path), "--address", address,
                           "--workers", "2", "--output", str(tmp_path / "out"), "--json"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert (hook / "crashed").exists(), proc.stderr
    doc = json.loads(proc.stdout)                # exactly one JSON object, nothing around it
    assert proc.returncode == 1 and doc["mode"] == "ray" and not doc["errors"], proc.stderr
    assert doc == json.loads((tmp_path / "out" / "summary.json").read_text())
    parts = sorted((tmp_path / "out" / "violations").glob("part-*.parquet"))
    rows = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
    assert summary_outcome(doc, rows) == calm
    assert "worker died" in proc.stderr.lower() or "retried" in proc.stderr.lower(), proc.stderr


@pytest.fixture()
def kept(local_ray):
    """Worker actors kept between runs for a minute; none kept after the test."""
    from batchaot.distributed import keep_workers
    keep_workers(60)
    yield
    keep_workers(0)


def free_cpus(expected: float, within: float = 20.0) -> float:
    """Ray's free CPUs, once they reach `expected` (or after `within` seconds)."""
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU", 0.0) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return ray.available_resources().get("CPU", 0.0)


def test_kept_workers_serve_the_next_run(kept, job_file, calm, small_units, tmp_path, monkeypatch) -> None:
    """With keep_workers(), a second run is served by the first run's worker processes
    (no actor started), with the same answer; release_workers() gives their CPUs back."""
    from batchaot.distributed import release_workers
    job = batchaot.Job.from_yaml(job_file[1])
    pids = []
    for k in range(2):
        hook = tmp_path / f"hook{k}"
        hook.mkdir()
        monkeypatch.setenv(HOOK_ENV, str(hook))
        res = job.run(mode="ray", workers=2, output=str(tmp_path / f"out{k}"))
        assert outcome(res) == calm and not res.errors
        pids.append({pid for calls in attempts(hook).values() for pid in calls})
    assert len(pids[0]) == 2 and pids[1] == pids[0]
    assert ray.available_resources().get("CPU", 0.0) == 0.0        # held by the kept actors
    release_workers()
    assert free_cpus(2.0) == 2.0


def test_kept_workers_go_after_their_idle_time(local_ray, job_file, calm, small_units, tmp_path) -> None:
    from batchaot.distributed import keep_workers
    from batchaot.distributed.actors import KEPT
    keep_workers(3)
    try:
        res = batchaot.Job.from_yaml(job_file[1]).run(mode="ray", workers=2, output=str(tmp_path / "out"))
        assert outcome(res) == calm
        assert len(KEPT.members) == 2                   # kept at the end of the run ...
        assert free_cpus(2.0) == 2.0 and not KEPT.members   # ... and gone 3 s later
    finally:
        keep_workers(0)


def test_a_restarted_worker_is_not_kept(kept, job_file, calm, small_units, tmp_path, monkeypatch) -> None:
    """A worker that died in a run (its call redone by the restarted actor) is not kept:
    the next run starts a new actor in its place, with its whole restart budget."""
    from batchaot.distributed.actors import KEPT
    job = batchaot.Job.from_yaml(job_file[1])
    hook = tmp_path / "hook"
    hook.mkdir()
    monkeypatch.setenv(HOOK_ENV, f"{hook}:crash=run")
    rough = job.run(mode="ray", workers=2, output=str(tmp_path / "rough"))
    assert (hook / "crashed").exists() and outcome(rough) == calm
    assert len(KEPT.members) == 1
    crashed = int((hook / "crashed").read_text().split()[2])
    monkeypatch.setenv(HOOK_ENV, str(tmp_path))
    again = job.run(mode="ray", workers=2, output=str(tmp_path / "again"))
    assert outcome(again) == calm
    later = {pid for calls in attempts(tmp_path).values() for pid in calls}
    assert len(later) == 2 and crashed not in later


def test_actors_started_before_planning_go_when_the_plan_fails(local_ray, job_file, tmp_path,
                                                              monkeypatch) -> None:
    """mode "ray" starts Ray's actors before the footers are read and the rules compiled
    (driver.early_launch); a rule that does not bind ends the run with its error, and
    those actors go with it."""
    from batchaot.distributed import actors
    started = []
    real = actors.start_members
    monkeypatch.setattr(actors, "start_members", lambda n: started.append(n) or real(n))
    root, _ = job_file
    job = tmp_path / "bad.yaml"
    job.write_text(f"name: bad\nsource: {{path: '{root}/data/*.parquet'}}\n"
                   "rules: [{name: r, check: 'no_such_column > 0'}]\n")
    with pytest.raises(batchaot.RuleError, match="no_such_column"):
        batchaot.Job.from_yaml(job).run(mode="ray", workers=2, output=str(tmp_path / "out"))
    assert started == [2]                   # both started before the rule failed to bind
    assert free_cpus(2.0) == 2.0


def test_compile_job_on_ray(local_ray, tmp_path, monkeypatch) -> None:
    from batchaot.io import sources
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path / "cache"))
    pq.write_table(orders(100, seed=1), tmp_path / "schema.parquet")
    for k in range(5):
        (tmp_path / f"r{k}.yaml").write_text(f"- {{name: a{k}, check: 'amount > {k}'}}\n- {{name: b{k}, check: 'nope > 1'}}\n")
    (tmp_path / "job.yaml").write_text("name: c\nkind: compile\nrules_from: 'r*.yaml'\nschema: {path: schema.parquet}\n")
    res = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="ray")
    doc = res.to_dict()
    assert doc["mode"] == "ray" and doc["compiled"] == 5 and doc["failed"] == 5
    assert res.table["file"].to_pylist() == sorted(res.table["file"].to_pylist())
    assert sources.read_schema(str(tmp_path / "schema.parquet"))
    # files the cache answers whole never reach Ray; the others do, and the order holds
    for k in range(5):
        (tmp_path / f"r{k}.yaml").write_text(f"- {{name: a{k}, check: 'amount > {k}'}}\n")
    job = batchaot.Job.from_yaml(tmp_path / "job.yaml")
    first = job.run(mode="ray")
    assert first.to_dict()["mode"] == "ray" and first.to_dict()["cache_hits"] == 5   # programs cached
    again = job.run(mode="ray")
    assert again.to_dict()["mode"] == "in-process" and again.table["cached"].to_pylist() == [True] * 5
    (tmp_path / "r2.yaml").write_text("- {name: a2, check: 'amount > 22'}\n- {name: c2, check: 'quantity > 0'}\n")
    mixed = job.run(mode="ray")
    assert mixed.to_dict()["mode"] == "ray"
    assert mixed.table["name"].to_pylist() == ["a0", "a1", "a2", "c2", "a3", "a4"]


def test_driver_holds_only_references_to_unique_buckets(local_ray, job_file, small_units, tmp_path,
                                                         monkeypatch) -> None:
    """Keys stay in the object store: the driver sees references, each reducer one bucket."""
    from batchaot.runtime import settle as gather_mod
    seen: list = []
    original = gather_mod.CheckGather.add

    def spy(self, result, bucket_items):
        seen.extend(bucket_items)
        original(self, result, bucket_items)

    monkeypatch.setattr(gather_mod.CheckGather, "add", spy)
    _, job_path = job_file
    job = batchaot.Job.from_yaml(job_path)
    job.run(mode="ray", workers=2, output=str(tmp_path / "o"))
    # 2 unique checks × 16 buckets per unit, 15 units
    assert len(seen) == 15 * 2 * 16 and all(isinstance(x, ray.ObjectRef) for x in seen)


def test_large_reference_is_partitioned_with_the_same_answer(local_ray, job_file, small_units, tmp_path,
                                                            monkeypatch) -> None:
    """Past runtime.settle.SHARED_SIDE_ROWS both sides are hash-partitioned over the workers."""
    from batchaot.runtime import settle
    _, job_path = job_file
    job = batchaot.Job.from_yaml(job_path)
    shared = job.run(mode="in-process", output=str(tmp_path / "shared"))
    monkeypatch.setattr(settle, "SHARED_SIDE_ROWS", 0)
    for mode, workers in (("in-process", None), ("ray", 2)):
        res = job.run(mode=mode, workers=workers, output=str(tmp_path / f"part-{mode}"))
        assert outcome(res) == outcome(shared)
    # the reference check is the 7th check: its missing rows were found bucket by bucket
    parts = os.listdir(tmp_path / "part-ray" / "violations")
    assert any(p.startswith("part-check006-b") for p in parts)
    assert not any(p.startswith("part-check006-b") for p in os.listdir(tmp_path / "shared" / "violations"))


def test_history_checks_on_ray_equal_in_process(local_ray, job_file, tmp_path) -> None:
    """change checks travel to the workers with their baseline; violations(rule) is taken
    after the merge: a Ray run and an in-process run against the same baseline agree."""
    root, _ = job_file
    job = tmp_path / "hist.yaml"
    job.write_text(f"name: dist-history\nsource: {{path: '{root}/data/*.parquet'}}\n"
                   f"history: {tmp_path / 'h.sqlite'}\nrules:\n"
                   "  - {name: email_shape, check: \"email LIKE '%@%'\"}\n"
                   "  - {name: volume, change: {metric: row_count, max_pct: 1}}\n"
                   "  - {name: bad_emails, change: {metric: violations(email_shape), max_increase: 0}}\n"
                   "  - {name: mean_amount, change: {metric: 'avg(amount)', max_pct: 1}, where: 'quantity > 1'}\n"
                   "  - {name: email_nulls, anomaly: {metric: 'null_fraction(email)', min_runs: 2}}\n")
    first = batchaot.Job.from_yaml(job).run(mode="in-process", now="2024-05-01")
    assert all(r["details"].get("history") == "insufficient" for r in first.to_dict()["rules"][1:])
    on_ray = batchaot.Job.from_yaml(job).run(mode="ray", workers=2, now="2024-05-02",
                                             output=str(tmp_path / "ray"))
    here = batchaot.Job.from_yaml(job).run(mode="in-process", now="2024-05-02", output=str(tmp_path / "here"))
    assert on_ray.mode == "ray" and outcome(on_ray) == outcome(here)
    found = {r["name"]: r for r in on_ray.to_dict()["rules"]}
    assert found["bad_emails"]["value"] == found["email_shape"]["violations"] > 0
    for name in ("volume", "bad_emails", "mean_amount"):       # the same data: no change at all
        assert found[name]["passed"] and found[name]["details"]["previous_run"] == first.history["run"]
        assert found[name]["details"]["change"] == 0
    assert found["email_nulls"]["details"] == {**found["email_nulls"]["details"], "history": "insufficient", "runs": 1}
