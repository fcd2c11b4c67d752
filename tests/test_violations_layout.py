"""One violations layout (batchaot/io/violations.py): `validate --output` and `submit
--output` write the same Parquet schema and the same rows for the same data and rules —
row rules and dataset checks, a data column named like a layout column (`row`), a
dictionary-encoded string column, several files and row groups, in-process and through
the CLI. (tests/test_distributed.py compares a Ray run with an in-process one.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchaot
from batchaot.io import violations

RULES = """
- {name: positive, check: "amount > 0"}
- {name: row_small, check: '"row" < 900'}
- {name: status_ok, check: "status IN ('paid', 'new')", severity: warn}
- {name: ids_unique, unique: [id]}
- {name: pair_unique, unique: [status, id]}
- {name: amount_present, not_null: amount, mostly: 0.5}
- {name: known_customer, reference: {columns: [cust], dataset: customers.parquet, key: [cid]}}
- {name: mean_amount, aggregate: "avg(amount)", between: [0, 1]}
"""


def _file(rng, n: int, first_id: int) -> pa.Table:
    ids = np.arange(first_id, first_id + n)
    ids[::97] = first_id                             # duplicate keys
    amount = rng.normal(5, 10, n)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "amount": pa.array(amount, pa.float64(), mask=rng.random(n) < 0.05),
        "status": pa.array(rng.choice(["paid", "new", "lost"], n)).dictionary_encode(),
        "row": pa.array(rng.integers(0, 1000, n), pa.int32()),   # named like a layout column
        "cust": pa.array(rng.integers(0, 60, n), pa.int64()),
    })


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    rng = np.random.default_rng(11)
    for k in range(2):
        pq.write_table(_file(rng, 3000, k * 2500), root / f"part{k}.parquet", row_group_size=700)
    pq.write_table(pa.table({"cid": pa.array(np.arange(0, 50), pa.int64())}), root / "customers.parquet")
    (root / "rules.yaml").write_text(RULES)
    (root / "job.yaml").write_text("name: layout\nsource: {path: 'part*.parquet'}\nrules:\n"
                                   + "".join("  " + line + "\n" for line in RULES.strip().splitlines()))
    return root


def _parts(out) -> list[pa.Schema]:
    return [pq.read_schema(p) for p in violations.parts(str(out))]


def _rows(out) -> pa.Table:
    table = pq.read_table(os.path.join(out, "violations"))
    return table.sort_by([("rule", "ascending"), ("source", "ascending"), ("row", "ascending")])


def _same(a, b) -> None:
    schemas = _parts(a) + _parts(b)
    assert schemas and all(s.equals(schemas[0]) for s in schemas), schemas
    names = schemas[0].names
    assert names[:3] == ["rule", "source", "row"] and "value_row" in names and "row" not in names[3:]
    assert pa.types.is_string(schemas[0].field("status").type)      # dictionaries unwrapped
    got, want = _rows(a), _rows(b)
    assert got.num_rows > 0 and got.equals(want)
    assert set(got["rule"].to_pylist()) == {"positive", "row_small", "status_ok", "ids_unique",
                                            "pair_unique", "amount_present", "known_customer"}


def test_validate_and_submit_write_the_same_violations(data, tmp_path) -> None:
    files = sorted(str(p) for p in data.glob("part*.parquet"))
    v = batchaot.validate(files, str(data / "rules.yaml"), output=tmp_path / "v")
    s = batchaot.Job.from_yaml(data / "job.yaml").run(mode="in-process", output=str(tmp_path / "s"))
    _same(tmp_path / "v", tmp_path / "s")
    # and the in-memory answers agree with the files
    assert v.violations.schema.equals(_parts(tmp_path / "v")[0])
    assert s.violations.schema.equals(v.violations.schema)
    assert [r["violations"] for r in v.to_dict()["rules"]] == [r["violations"] for r in s.to_dict()["rules"]]


def test_the_command_lines_write_the_same_violations(data, tmp_path) -> None:
    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "batchaot.cli", *args], capture_output=True, text=True,
                              cwd=data)
        assert proc.returncode == 1, proc.stderr[-2000:]
        return json.loads(proc.stdout)
    # submit names sources as the job resolves them (absolute paths): validate is given those
    v = cli("validate", str(data / "part0.parquet"), str(data / "part1.parquet"), "--rules", "rules.yaml", "--output",
            str(tmp_path / "v"), "--json")
    s = cli("submit", "job.yaml", "--mode", "in-process", "--output", str(tmp_path / "s"), "--json")
    _same(tmp_path / "v", tmp_path / "s")
    assert v["engine"] != "none" and s["engine"] != "none"


def test_the_layout_is_the_rules_not_the_failures() -> None:
    schema = pa.schema([("source", pa.dictionary(pa.int8(), pa.string())), ("x", pa.int32())])
    layout = violations.layout(schema, ["x", "source", "x"])
    assert layout.names == ["rule", "source", "row", "x", "value_source"]
    assert layout.field("value_source").type == pa.string()
    shaped = violations.shaped(pa.table({"rule": pa.array(["r"]).dictionary_encode(), "row": [3],
                                         "source": ["f"], "x": pa.array([1], pa.int64())}), layout)
    assert shaped.schema.equals(layout) and shaped.to_pylist() == [
        {"rule": "r", "source": "f", "row": 3, "x": 1, "value_source": None}]
