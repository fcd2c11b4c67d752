"""A 2-node Ray cluster (ray.cluster_utils) runs a job with the same answer as one process,
and cluster.yaml is a launcher file that Ray's own schema accepts."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

import batchaot
from batchaot.io import units as units_mod
from batchaot.samples import orders
from jobdata import REPO

pytestmark = pytest.mark.timeout(300)


def test_cluster_yaml_passes_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["head_node_type"] in config["available_node_types"]
    assert any("pip install" in c and "batchaot" in c for c in config["setup_commands"])
    with pytest.raises(Exception):
        validate_config(prepare_config(dict(config, max_workers="many")))


@pytest.fixture(scope="module")
def two_nodes():
    # a shared machine: Ray's memory monitor must not kill workers for others' memory use
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_two_node_cluster_equals_in_process(two_nodes, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(units_mod, "UNIT_ROWS", 8192)
    (tmp_path / "data").mkdir()
    for k in range(2):
        pq.write_table(orders(30_000, seed=40 + k), tmp_path / "data" / f"p{k}.parquet", row_group_size=4096)
    (tmp_path / "job.yaml").write_text(f"name: c2\nsource: {{path: 'data/*.parquet'}}\n"
                                       f"rules_from: {REPO / 'jobs/rules/orders_rows.yaml'}\n")
    job = batchaot.Job.from_yaml(tmp_path / "job.yaml")
    assert len(ray.nodes()) == 2
    here = job.run(mode="in-process", output=str(tmp_path / "here"))
    there = job.run(mode="ray", workers=2, output=str(tmp_path / "there"))
    assert there.mode == "ray" and there.workers == 2
    assert there.to_dict()["rules"] == here.to_dict()["rules"]
    assert violation_keys(there) == violation_keys(here)


def violation_keys(result) -> list[tuple]:
    return sorted((v["rule"], v["source"], v["row"]) for v in result.violations.to_pylist())
