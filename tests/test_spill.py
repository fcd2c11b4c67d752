"""unique and a partitioned reference under a memory budget: buckets spill to disk, the
answer stays DuckDB's, and a run under an address-space limit that cannot hold the keys
finishes with the right count instead of running out of memory."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchaot
from batchaot.errors import SpecError
from batchaot.job import parse_size
from batchaot.runtime import settle, spill

REPO = Path(__file__).resolve().parent.parent
FILES = 4
ROWS = 60_000          # per file: each file is a unit, so pieces arrive unit by unit

JOB = """name: spill
source: {path: 'd/*.parquet'}
rules:
  - {name: id_unique, unique: [id]}
  - {name: email_unique, unique: [email]}
  - {name: pair_unique, unique: [id, email]}
  - {name: cust_known, reference: {columns: [cust], dataset: cust.parquet, key: [cid]}}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four files with duplicate ids and emails (within and across files), NULL keys, and
    customers missing from the referenced file."""
    root = tmp_path_factory.mktemp("spill")
    (root / "d").mkdir()
    rng = np.random.default_rng(11)
    for f in range(FILES):
        ids = pa.array(rng.integers(0, FILES * ROWS * 3, ROWS), mask=rng.random(ROWS) < 0.01)
        emails = pa.array([f"u{x}@example.com" for x in rng.integers(0, FILES * ROWS * 2, ROWS)])
        cust = pa.array(rng.integers(0, 50_000, ROWS), pa.int32())
        pq.write_table(pa.table({"id": ids, "email": emails, "cust": cust}), root / "d" / f"p{f}.parquet",
                       row_group_size=20_000)
    pq.write_table(pa.table({"cid": np.unique(rng.integers(0, 50_000, 40_000))}), root / "cust.parquet")
    (root / "job.yaml").write_text(JOB)
    return root


def duckdb_counts(root: Path) -> dict[str, int]:
    t = f"read_parquet('{root}/d/*.parquet')"
    dup = "SELECT count(*) FROM {t} WHERE ({k}) IN (SELECT {k} FROM {t} WHERE {nn} GROUP BY {k} HAVING count(*) > 1)"
    q = {"id_unique": dup.format(t=t, k="id", nn="id IS NOT NULL"),
         "email_unique": dup.format(t=t, k="email", nn="email IS NOT NULL"),
         "pair_unique": dup.format(t=t, k="id, email", nn="id IS NOT NULL AND email IS NOT NULL"),
         "cust_known": f"SELECT count(*) FROM {t} WHERE cust IS NOT NULL AND cust NOT IN "
                       f"(SELECT cid FROM '{root}/cust.parquet' WHERE cid IS NOT NULL)"}
    return {name: duckdb.sql(sql).fetchall()[0][0] for name, sql in q.items()}


def counts(result) -> dict[str, int]:
    return {r["name"]: r["violations"] for r in result.to_dict()["rules"]}


@pytest.mark.parametrize("partitioned", [False, True], ids=["shared_reference", "partitioned_reference"])
def test_a_tiny_budget_spills_and_gives_duckdbs_answer(data, tmp_path, monkeypatch, partitioned) -> None:
    if partitioned:
        monkeypatch.setattr(settle, "SHARED_SIDE_ROWS", 0)
    job = batchaot.Job.from_yaml(data / "job.yaml")
    held = job.run(mode="in-process", output=str(tmp_path / "held"))
    spilled = job.run(mode="in-process", output=str(tmp_path / "spilled"), memory_budget="1MiB")
    expected = duckdb_counts(data)
    assert counts(held) == counts(spilled) == expected
    assert min(expected.values()) > 0 or expected["pair_unique"] == 0
    assert held.spilled_bytes == 0 and "spilled_bytes" not in held.to_dict()
    assert spilled.spilled_bytes > 1 << 20 and spilled.to_dict()["spilled_bytes"] == spilled.spilled_bytes
    # the same violating rows, and no spill file left in the output folder
    key = ["rule", "source", "row"]
    assert held.violations.sort_by([(k, "ascending") for k in key]).select(key).equals(
        spilled.violations.sort_by([(k, "ascending") for k in key]).select(key))
    assert not [p for p in (tmp_path / "spilled").rglob("*") if ".spill-" in str(p)]


def test_the_budget_sets_the_number_of_buckets(data, tmp_path) -> None:
    """More rows than a bucket's share of the budget: more buckets, each a power of two."""
    assert spill.buckets_for(rows=1000, row_bytes=24, budget=1 << 30, least=16) == 16
    assert spill.buckets_for(rows=100_000_000, row_bytes=24, budget=1 << 30, least=16) == 16
    assert spill.buckets_for(rows=400_000_000, row_bytes=48, budget=1 << 30, least=16) == 128
    assert spill.buckets_for(rows=10**12, row_bytes=48, budget=1 << 20, least=16) == spill.MAX_BUCKETS
    job = batchaot.Job.from_yaml(data / "job.yaml")
    res = job.run(mode="in-process", output=str(tmp_path / "o"), memory_budget="1MiB")
    assert res.ok is False and counts(res) == duckdb_counts(data)


def test_spilled_pieces_read_back_equal_with_their_metadata(tmp_path) -> None:
    store = spill.SpillStore(budget=1, parent=str(tmp_path))
    table = pa.table({"row": pa.array([5, 6, 7], pa.uint32()), "k": ["a", None, "c"]}) \
        .replace_schema_metadata({"row0": "100"})
    buckets: list[list[list]] = [[[]]]
    store.add(buckets, 0, 0, [("f.parquet", table.slice(1, 2)), ("g.parquet", table)])
    store.add(buckets, 0, 0, [("h.parquet", table.slice(0, 0))])
    item = buckets[0][0][0]
    # past the budget once; an empty item holds no bytes and stays in memory
    assert isinstance(item, spill.Spilled) and store.spills == 1 and store.held == 0
    assert isinstance(buckets[0][0][1], list)
    back = spill.pieces_of(item)
    assert [s for s, _ in back] == ["f.parquet", "g.parquet"]
    assert back[0][1].equals(table.slice(1, 2)) and back[1][1].schema.metadata == {b"row0": b"100"}
    assert spill.pieces_of(buckets[0][0][1])[0][1].num_rows == 0
    folder = store.folder
    store.close()
    assert folder is not None and not os.path.exists(folder)


@pytest.mark.parametrize("value, size", [("512MB", 512 * 10**6), ("2 GiB", 2 << 30), ("1.5GB", 1_500_000_000),
                                         (4 << 20, 4 << 20)])
def test_sizes_read_as_users_write_them(value, size) -> None:
    assert parse_size(value, "memory_budget") == size


@pytest.mark.parametrize("value", ["lots", "12 parsecs", "-3GB", True, 1000, "0.5KB"])
def test_a_bad_size_is_one_clear_line(value) -> None:
    with pytest.raises(SpecError, match=r"memory_budget must be (a size such as 512MB|at least 1MiB)"):
        parse_size(value, "memory_budget")


def test_the_job_key_and_the_cli_flag(data, tmp_path) -> None:
    (tmp_path / "d").symlink_to(data / "d")
    (tmp_path / "cust.parquet").symlink_to(data / "cust.parquet")
    (tmp_path / "job.yaml").write_text(JOB + "memory_budget: 1MiB\n")
    doc = _cli(["submit", str(tmp_path / "job.yaml"), "--mode", "in-process", "--json", "-o", str(tmp_path / "a")])
    assert doc["spilled_bytes"] > 0
    doc = _cli(["submit", str(tmp_path / "job.yaml"), "--mode", "in-process", "--json", "-o", str(tmp_path / "b"),
                "--memory-budget", "64GiB"])
    assert "spilled_bytes" not in doc
    done = subprocess.run([sys.executable, "-m", "batchaot.cli", "submit", str(tmp_path / "job.yaml"),
                           "--memory-budget", "plenty"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "plenty" in done.stderr


def _cli(args: list[str], preexec=None) -> dict:
    done = subprocess.run([sys.executable, "-m", "batchaot.cli", *args], capture_output=True, text=True,
                          cwd=REPO, preexec_fn=preexec, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


# --- an address-space limit the keys do not fit in ----------------------------------

# What the limit leaves above the runtime's own peak (Numba's LLVM, pyarrow, thread
# stacks: about 1.8 GB of address space on 2 cores): enough for one unit's working set
# (2M rows decoded, hashed and partitioned), not for the keys of 36M rows, whose bucket
# pieces take about 1.5 GB.
HEADROOM = 640 << 20
KEY_ROWS = 36_000_000

PEAK = "import resource, runpy, sys\nsys.argv = ['batchaot'] + sys.argv[1:]\ntry:\n    " \
       "runpy.run_module('batchaot.cli', run_name='__main__')\nfinally:\n    " \
       "print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0], file=sys.stderr)"


def _emails(path: Path, rows: int) -> None:
    duckdb.sql(f"COPY (SELECT 'user-' || (hash(i) % {rows * 8}) || '@example.com' AS email FROM range({rows}) t(i)) "
               f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1048576)")


@pytest.mark.timeout(900)
def test_unique_under_an_address_space_limit_the_keys_do_not_fit(tmp_path) -> None:
    """The limit is the runtime's own peak (measured on a small file, same job) plus
    HEADROOM; the keys' bucket pieces are several times HEADROOM. Holding them fails
    (out of memory, exit 2); the default budget, which reads the limit, spills and gets
    DuckDB's count."""
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    _emails(tmp_path / "small" / "e.parquet", 200_000)
    _emails(tmp_path / "big" / "e.parquet", KEY_ROWS)
    for size in ("small", "big"):
        (tmp_path / f"{size}.yaml").write_text(
            f"name: e\nsource: {{path: '{size}/e.parquet'}}\nrules: [{{name: u, unique: [email]}}]\n")
    done = subprocess.run([sys.executable, "-c", PEAK, "submit", str(tmp_path / "small.yaml"), "--mode",
                           "in-process", "--json", "-o", str(tmp_path / "o0")],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    peak = int(done.stderr.strip().splitlines()[-1]) << 10
    limit = peak + HEADROOM

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    held = subprocess.run([sys.executable, "-m", "batchaot.cli", "submit", str(tmp_path / "big.yaml"),
                           "--mode", "in-process", "--json", "-o", str(tmp_path / "o1"), "--memory-budget", "64GiB"],
                          capture_output=True, text=True, cwd=REPO, preexec_fn=limited, timeout=600)
    assert held.returncode == 2 and "out of memory" in held.stderr, held.stderr[-2000:]
    doc = _cli(["submit", str(tmp_path / "big.yaml"), "--mode", "in-process", "--json", "-o", str(tmp_path / "o2")],
               preexec=limited)
    t = f"'{tmp_path}/big/e.parquet'"
    expected = duckdb.sql(f"SELECT count(*) FROM {t} WHERE email IN "
                          f"(SELECT email FROM {t} GROUP BY email HAVING count(*) > 1)").fetchall()[0][0]
    assert doc["rules"][0]["violations"] == expected > 0
    assert doc["spilled_bytes"] > 2 * HEADROOM and doc["units"] > 10
