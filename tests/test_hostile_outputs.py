"""A run owns its output folder, and a run that cannot write ends cleanly.

- Results replace the previous run's whole (validate after submit, submit after submit,
  a compile job after either): whenever summary.json exists it counts exactly the rows of
  the parts beside it.
- A second run on a folder in use is refused with one line naming the holder's pid.
- Write failures (file-size limit, a folder where a part goes, an unwritable output or
  violations/ folder) and running out of memory are exit 2 with one line, never a
  traceback, and leave a summary saying the run failed, no parts, no staging folder.

All in-process (no Ray); the Ray side of these contracts is in test_distributed.py.
"""
from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import batchaot
from batchaot.cli import main
from batchaot.errors import OutputError
from batchaot.io import sinks
from batchaot.samples import orders

RULES = """rules:
  - {name: positive_amount, check: "amount > 0"}
  - {name: few_items, check: "quantity < 50"}
  - {name: order_id_unique, unique: [order_id]}
  - {name: mean_amount, aggregate: "avg(amount)", between: [10, 500]}
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Three files whose order ids repeat across files (unique finds duplicates in every
    bucket), and a job over them."""
    root = tmp_path_factory.mktemp("outputs")
    (root / "data").mkdir()
    for k in range(3):
        pq.write_table(orders(20_000, seed=30 + k), root / "data" / f"p{k}.parquet", row_group_size=4096)
    (root / "rules.yaml").write_text(RULES)
    (root / "job.yaml").write_text("name: outputs\nsource: {path: 'data/*.parquet'}\nrules_from: rules.yaml\n")
    return root


def cli(*args: str):
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def one_line(err: str) -> str:
    assert err.startswith("batchaot: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def consistent(out) -> dict:
    """summary.json exists and counts exactly the violating rows of the parts present."""
    summary = json.loads((out / "summary.json").read_text())
    parts = sorted((out / "violations").glob("part-*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    listed = sum(r["violations"] for r in summary["rules"] if r["kind"] not in ("aggregate", "row_count"))
    assert rows == listed, (rows, listed, [p.name for p in parts])
    assert not [p for p in os.listdir(out) if p.startswith((sinks.STAGING_PREFIX, sinks.TRASH_PREFIX))]
    assert not [p for p in os.listdir(out / "violations") if ".tmp-" in p]
    return summary


def failed_cleanly(out, reason: str) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False and summary["failed"] is True and reason in summary["error"], summary
    assert not (out / "violations").exists() or not os.listdir(out / "violations")
    assert not [p for p in os.listdir(out) if p.startswith((sinks.STAGING_PREFIX, sinks.TRASH_PREFIX))]


# -- a run owns its folder ---------------------------------------------------------------

def test_validate_after_submit_leaves_only_its_own_parts(job, tmp_path) -> None:
    out = tmp_path / "out"
    code, _, _ = cli("submit", str(job / "job.yaml"), "--mode", "in-process", "--output", str(out), "--quiet")
    assert code == 1 and len(list((out / "violations").glob("part-check*"))) > 1
    consistent(out)
    code, _, _ = cli("validate", str(job / "data" / "p0.parquet"), "--rules", str(job / "rules.yaml"),
                     "--output", str(out))
    assert code == 1
    assert sorted(os.listdir(out / "violations")) == ["part-00000.parquet"]
    summary = consistent(out)
    assert summary["rows"] == 20_000


def test_second_run_replaces_the_first_whole(job, tmp_path) -> None:
    """A rerun whose rules find fewer violating rows (and other parts) leaves no part of the
    first run behind; the API path (batchaot.validate(output=)) does the same."""
    out = tmp_path / "out"
    first = batchaot.Job.from_yaml(job / "job.yaml").run(mode="in-process", output=str(out))
    assert any(r["violations"] for r in first.to_dict()["rules"])
    (tmp_path / "one.yaml").write_text("- {name: positive_amount, check: 'amount > 0'}\n")
    (tmp_path / "job.yaml").write_text(f"name: o\nsource: {{path: '{job / 'data' / 'p1.parquet'}'}}\n"
                                       f"rules_from: {tmp_path / 'one.yaml'}\n")
    second = batchaot.Job.from_yaml(tmp_path / "job.yaml").run(mode="in-process", output=str(out))
    assert not list((out / "violations").glob("part-check*"))
    assert consistent(out)["rules"] == second.to_dict()["rules"]
    assert second.violations.num_rows == second.to_dict()["rules"][0]["violations"]
    again = batchaot.validate(job / "data" / "p2.parquet", str(job / "rules.yaml"), output=out)
    assert consistent(out)["rows"] == again.rows == 20_000


def test_compile_job_replaces_validation_results(job, tmp_path) -> None:
    out = tmp_path / "out"
    batchaot.validate(job / "data" / "p0.parquet", str(job / "rules.yaml"), output=out)
    (tmp_path / "c.yaml").write_text(f"name: c\nkind: compile\nrules_from: {job / 'rules.yaml'}\n"
                                     f"schema: {{path: {job / 'data' / 'p0.parquet'}}}\n")
    code, out_text, _ = cli("submit", str(tmp_path / "c.yaml"), "--output", str(out), "--json")
    assert json.loads(out_text)["kind"] == "compile"
    assert sorted(p for p in os.listdir(out) if not p.startswith(".")) == ["compiled.parquet", "summary.json"]


def test_a_folder_in_use_is_refused_with_the_holders_pid(job, tmp_path) -> None:
    out = tmp_path / "out"
    batchaot.validate(job / "data" / "p0.parquet", str(job / "rules.yaml"), output=out)
    before = (out / "summary.json").read_text()
    # another process holds the folder (the lock batchaot takes), as a running run would
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / sinks.LOCK)!r}, os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode()); print('held', flush=True)\n"
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (("submit", str(job / "job.yaml"), "--mode", "in-process", "--output", str(out)),
                     ("validate", str(job / "data" / "p1.parquet"), "--rules", str(job / "rules.yaml"),
                      "--output", str(out), "--json")):
            code, stdout, err = cli(*args)
            assert code == 2 and stdout == "", (stdout, err)
            assert one_line(err).strip().endswith(f"output {out} is in use by another batchaot run "
                                                  f"(pid {holder.pid})")
        assert (out / "summary.json").read_text() == before       # the holder's results untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # the holder is gone (the kernel released its lock): the folder is free again
    code, _, _ = cli("validate", str(job / "data" / "p1.parquet"), "--rules", str(job / "rules.yaml"),
                     "--output", str(out))
    assert code == 1 and consistent(out)["rows"] == 20_000


def test_one_process_cannot_run_twice_into_one_folder(tmp_path) -> None:
    with sinks.OutputRun(str(tmp_path / "o")):
        with pytest.raises(OutputError, match=rf"in use by another batchaot run \(pid {os.getpid()}\)"):
            sinks.OutputRun(str(tmp_path / "o")).open()


def test_leftovers_of_a_killed_run_are_removed(job, tmp_path) -> None:
    """A run killed before its commit leaves its staging folder and no summary change;
    the next run removes the staging folder and publishes its own results."""
    out = tmp_path / "out"
    batchaot.validate(job / "data" / "p0.parquet", str(job / "rules.yaml"), output=out)
    stale = out / f"{sinks.STAGING_PREFIX}999999-deadbeef" / "violations"
    stale.mkdir(parents=True)
    shutil.copy(out / "violations" / "part-00000.parquet", stale / "part-0000-0000.parquet")
    batchaot.validate(job / "data" / "p1.parquet", str(job / "rules.yaml"), output=out)
    assert consistent(out)["rows"] == 20_000 and not stale.exists()


@pytest.mark.parametrize("make, message", [
    (lambda out: (out / "violations" / "part-0000-0000.parquet").mkdir(parents=True), "a folder that batchaot did not write"),
    (lambda out: (out / "violations").mkdir(parents=True) or (out / "violations" / "notes.txt").write_text("mine"),
     "notes.txt: a file that batchaot did not write"),
    (lambda out: out.mkdir() or (out / "violations").write_text("x"), "violations: is not a folder"),
    (lambda out: (out / "summary.json").mkdir(parents=True), "summary.json: is not a file that batchaot wrote"),
])
def test_entries_batchaot_did_not_write_are_never_replaced(job, tmp_path, make, message) -> None:
    """A part path that is a folder, a user's file among the parts, ...: refused before any
    work starts (exit 2, one line), and left exactly as they were."""
    out = tmp_path / "out"
    make(out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    code, stdout, err = cli("submit", str(job / "job.yaml"), "--mode", "in-process", "--output", str(out), "--json")
    assert code == 2 and stdout == "" and message in one_line(err)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != sinks.LOCK) == before


# -- write failures ----------------------------------------------------------------------

def _cli_process(*args: str, preexec=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchaot.cli", *args], capture_output=True, text=True,
                          preexec_fn=preexec, cwd=cwd, timeout=300)


def test_file_size_limit_is_exit_2_with_a_failed_summary(tmp_path) -> None:
    """RLIMIT_FSIZE (ulimit -f): the write past it fails (SIGXFSZ is ignored, so the process
    is not killed) with exit 2, one line naming the part, and no parts left behind."""
    import numpy as np
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**63, (200_000, 2), dtype=np.uint64)
    pq.write_table(pa.table({"s": [f"{a:016x}{b:016x}" for a, b in words]}), tmp_path / "wide.parquet")
    (tmp_path / "r.yaml").write_text("- {name: never_x, check: \"s = 'x'\"}\n")
    limit = 4 << 20        # above any cache file a cold run writes (~0.7 MB), below the 6 MB part
    out = tmp_path / "out"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _cli_process("validate", str(tmp_path / "wide.parquet"), "--rules", str(tmp_path / "r.yaml"),
                        "--output", str(out), "--json", preexec=small_files)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    err = one_line(proc.stderr)
    assert "file-size limit" in err and f"{out}{os.sep}violations{os.sep}part-" in err
    failed_cleanly(out, "file-size limit")


@pytest.mark.parametrize("where", ["reduce", "unit"])
def test_out_of_memory_is_exit_2_with_a_failed_summary(job, tmp_path, monkeypatch, where) -> None:
    """A MemoryError after some buckets wrote their parts (as `unique` under a memory limit
    did), or pyarrow's ArrowMemoryError while a later unit is read (an ArrowException too,
    yet no unit error): no parts stay, the summary says the run failed, exit 2, one line."""
    from batchaot.runtime import plan as plan_mod
    from batchaot.runtime import unit as unit_mod
    calls = []
    if where == "reduce":
        real = plan_mod.reduce_bucket

        def starving(check, index, bucket, pieces, output, *rest):
            calls.append(bucket)
            if len(calls) > 3:
                raise MemoryError()
            return real(check, index, bucket, pieces, output, *rest)
        monkeypatch.setattr(plan_mod, "reduce_bucket", starving)
    else:
        real = unit_mod.read_unit

        def starving(unit, *args, **kwargs):
            calls.append(unit.id)
            if len(calls) > 1:
                raise pa.lib.ArrowMemoryError("malloc of size 1048576 failed")
            return real(unit, *args, **kwargs)
        monkeypatch.setattr(unit_mod, "read_unit", starving)
    out = tmp_path / "out"
    code, stdout, err = cli("submit", str(job / "job.yaml"), "--mode", "in-process", "--output", str(out), "--json")
    # (units: morsels of the next unit may be read ahead on other threads before it stops)
    assert (len(calls) == 4 if where == "reduce" else len(calls) >= 2) and code == 2 and stdout == ""
    assert "out of memory" in one_line(err)
    failed_cleanly(out, "out of memory")


@pytest.mark.parametrize("failing", ["part-0", "part-check000-b0003"])
def test_a_write_error_is_exit_2_not_a_unit_error(job, tmp_path, monkeypatch, failing) -> None:
    """A part that cannot be written (a unit's, or a bucket's after three buckets wrote
    theirs) fails the run: exit 2, no parts left — not a unit error (which would report
    the file as unreadable and exit 1)."""
    from batchaot.runtime import unit as unit_mod
    real = unit_mod.pq.ParquetWriter

    class Full(real):
        def write_table(self, *args, **kwargs):
            if failing in os.path.basename(self.where):
                raise OSError(28, "No space left on device")
            return super().write_table(*args, **kwargs)

    monkeypatch.setattr(unit_mod.pq, "ParquetWriter", Full)
    out = tmp_path / "out"
    code, _, err = cli("submit", str(job / "job.yaml"), "--mode", "in-process", "--output", str(out), "--quiet")
    assert code == 2 and "no space left on device" in one_line(err)
    assert f"{out}{os.sep}violations{os.sep}{failing}" in err
    failed_cleanly(out, "no space left")


def _without_root_powers():
    """When the tests run as root (which writes anywhere), the CLI process runs without the
    capabilities that bypass file permissions (dropped from its bounding set before exec)."""
    if os.geteuid() != 0:
        return None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2

    def drop() -> None:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


@pytest.mark.parametrize("where", ["output", "violations"])
def test_unwritable_folders_are_refused_before_any_work(job, tmp_path, where) -> None:
    shutil.copy(job / "data" / "p0.parquet", tmp_path / "d.parquet")
    shutil.copy(job / "rules.yaml", tmp_path / "r.yaml")
    out = tmp_path / "out"
    (out / "violations").mkdir(parents=True)
    pq.write_table(pa.table({"rule": ["x"]}), out / "violations" / "part-00000.parquet")
    locked = out if where == "output" else out / "violations"
    locked.chmod(0o555)
    try:
        proc = _cli_process("validate", "d.parquet", "--rules", "r.yaml", "--output", "out", "--json",
                            preexec=_without_root_powers(), cwd=tmp_path)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    err = one_line(proc.stderr)
    assert "not writable" in err and ("out/violations" in err) == (where == "violations"), err
    assert sorted(os.listdir(out / "violations")) == ["part-00000.parquet"]
    assert not (out / "summary.json").exists()
