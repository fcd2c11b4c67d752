"""Synthetic sample data: orders with a realistic sprinkle of bad rows, and their customers.

    python -m batchaot.samples data/demo --rows 200000

Used by `make demo`, the examples in jobs/, the tests and the benchmarks.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STATUSES = np.array(["new", "paid", "shipped", "delivered", "cancelled", "refunded"])
DOMAINS = np.array(["example.com", "mail.test", "shop.example", "corp.test"])
DAY_US = 86_400_000_000


def orders(rows: int = 100_000, seed: int = 42, bad_rate: float = 0.002, first_id: int = 1) -> pa.Table:
    """Orders with ~bad_rate of rows breaking each demo rule, and some NULLs; order ids
    count up from `first_id` (a few repeat: see _duplicate_some)."""
    rng = np.random.default_rng(seed)

    def bad() -> np.ndarray:
        return rng.random(rows) < bad_rate

    order_id = np.arange(first_id, first_id + rows, dtype=np.int64)
    customer_id = rng.integers(1, max(rows // 10, 2), rows)
    amount = np.round(rng.lognormal(3.5, 0.8, rows), 2)
    amount[bad()] *= -1
    discount = np.round(amount * rng.uniform(0, 0.3, rows), 2)
    quantity = rng.integers(1, 20, rows).astype(np.int32)
    quantity[bad()] = 0
    status = rng.choice(STATUSES, rows, p=[0.1, 0.3, 0.3, 0.25, 0.03, 0.02]).astype(object)
    status[bad()] = "lost"
    users = np.char.add("user", rng.integers(0, 10**6, rows).astype(str))
    email = np.char.add(np.char.add(users, "@"), rng.choice(DOMAINS, rows)).astype(object)
    email[bad()] = "not-an-email"
    created = (np.datetime64("2024-01-01") + rng.integers(0, 365, rows).astype("timedelta64[D]"))
    shipped_us = created.astype("datetime64[us]").astype(np.int64) + rng.integers(0, 10 * DAY_US, rows)
    early = bad()
    shipped_us[early] -= 30 * DAY_US
    not_shipped = np.isin(status, ["new", "paid", "cancelled"])
    _duplicate_some(order_id, seed, bad_rate)
    return pa.table({
        "order_id": order_id,
        "customer_id": pa.array(customer_id, pa.int64()),
        "amount": pa.array(amount, pa.float64(), mask=rng.random(rows) < 0.001),
        "discount": pa.array(discount, pa.float64()),
        "quantity": pa.array(quantity, pa.int32()),
        "status": pa.array(status, pa.string()),
        "email": pa.array(email, pa.string(), mask=rng.random(rows) < 0.01),
        "created_at": pa.array(created, pa.date32()),
        "shipped_at": pa.array(shipped_us, pa.timestamp("us"), mask=not_shipped),
    })


def _duplicate_some(order_id: np.ndarray, seed: int, bad_rate: float) -> None:
    """A few orders recorded twice (the id of the order before): what `unique` catches.

    A generator of its own, so every other column stays as it was without duplicates.
    """
    rng = np.random.default_rng([seed, 1])
    again = np.flatnonzero(rng.random(len(order_id)) < bad_rate / 20)
    order_id[again[again > 0]] -= 1


def customers(rows: int, seed: int = 42, missing: int = 5) -> pa.Table:
    """Customers 1..rows, except `missing` ids that some orders still point to."""
    rng = np.random.default_rng([seed, 2])
    ids = np.arange(1, rows + 1, dtype=np.int64)
    gone = rng.choice(ids, size=min(missing, rows - 1), replace=False)
    ids = ids[~np.isin(ids, gone)]
    return pa.table({
        "id": ids,
        "country": pa.array(rng.choice(["DE", "FR", "US", "JP", "BR"], len(ids)), pa.string()),
        "signup": pa.array(np.datetime64("2020-01-01") + rng.integers(0, 1500, len(ids)).astype("timedelta64[D]"),
                           pa.date32()),
    })


def write_orders(folder: str, rows: int, files: int = 1, seed: int = 42,
                 with_customers: bool | None = None) -> list[str]:
    """Write `files` Parquet files of orders (row groups of 64k rows) into `folder`.

    With `with_customers` (default: for a single file) also customers.parquet, holding every
    customer id the orders use but a few. Multi-file folders get none by default: jobs read
    them with a `*.parquet` glob, which must match orders only.
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    per_file = -(-rows // files)
    for k in range(files):
        n = min(per_file, rows - k * per_file)
        table = orders(n, seed + k, first_id=k * per_file + 1)     # ids go on across files
        path = os.path.join(folder, f"orders-{k:03d}.parquet" if files > 1 else "orders.parquet")
        pq.write_table(table, path, row_group_size=65_536)
        paths.append(path)
    if with_customers if with_customers is not None else files == 1:
        pq.write_table(customers(max(per_file // 10, 2), seed), os.path.join(folder, "customers.parquet"))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    for path in write_orders(args.folder, args.rows, args.files, args.seed):
        print(f"wrote {path}")
    if args.files == 1:
        print(f"wrote {os.path.join(args.folder, 'customers.parquet')}")


if __name__ == "__main__":
    main()
