"""The ablation report: every configuration counts the same, and the report shows what
each part did (instructions saved by the optimizer, row groups zero-tick skipped)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from batchaot.distributed import Job
from batchaot.report import ablation as abl
from batchaot.samples import orders


def test_ablation_runs_every_configuration_with_equal_counts(tmp_path) -> None:
    pq.write_table(orders(60_000, seed=5), tmp_path / "o.parquet", row_group_size=5000)
    (tmp_path / "job.yaml").write_text(
        "name: abl\nsource: {path: o.parquet}\nrules:\n"
        "  - {name: id_positive, check: 'order_id > 0'}\n"
        "  - {name: in_2024, check: \"created_at >= DATE '2024-01-01'\"}\n"
        "  - {name: late_ids, check: 'order_id > 5000 AND 1 + 1 = 2'}\n")
    report = abl.ablation(Job.from_yaml(tmp_path / "job.yaml").spec, repeat=1, ray=False)
    names = [r["config"] for r in report["results"]]
    parts = report["parts"]
    assert names[:2] == ["all parts", "no parts"] and len(names) == 2 + 2 * len(parts)
    assert report["counts"] == [0, 0, 5000]
    ins = {r["config"]: r["instructions"] for r in report["results"]}
    assert ins["without optimizer"] > ins["all parts"]
    assert set(report["verdicts"]) == set(parts)
    skipped = {r["config"]: r["row_groups_skipped"] for r in report["results"]}
    assert skipped["no parts"] == 0 and skipped["without zero_tick"] == 0
    assert skipped["all parts"] == 11            # every group but the first is proven
    assert skipped["only zero_tick"] == 0        # unfolded `1 + 1 = 2` proves nothing: the parts compound
    files = abl.write(report, str(tmp_path / "out"))
    assert json.loads(open(files[0]).read())["job"] == "abl"
    assert "all parts" in abl.table(report)
