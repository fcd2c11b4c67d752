"""Test data for jobs: the example jobs' folder layout, recreated under a temp dir."""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batchaot.samples import customers, orders, write_orders

REPO = Path(__file__).resolve().parent.parent


def make_layout(root: Path, rows: int = 20_000, files: int = 3) -> Path:
    """root/jobs (copied from the repo), root/data/demo/{orders.parquet, customers.parquet,
    multi/, orders.csv}."""
    shutil.copytree(REPO / "jobs", root / "jobs")
    demo = root / "data" / "demo"
    demo.mkdir(parents=True)
    table = orders(rows, seed=3)
    pq.write_table(table, demo / "orders.parquet", row_group_size=4096)
    pq.write_table(customers(max(rows // 10, 2), seed=3), demo / "customers.parquet")
    write_orders(str(demo / "multi"), rows, files, seed=11)
    pacsv.write_csv(table, demo / "orders.csv")
    return root


def concat_files(paths: list[str]) -> tuple[pa.Table, dict[str, int]]:
    """The files as one table, and each file's first row in it."""
    tables = [pq.read_table(p) for p in paths]
    offsets, start = {}, 0
    for p, t in zip(paths, tables):
        offsets[p] = start
        start += t.num_rows
    return pa.concat_tables(tables), offsets
