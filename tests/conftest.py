"""Shared test helpers: random Arrow tables with NULLs, and DuckDB as the oracle."""
from __future__ import annotations

import datetime as dt
import decimal
import os
import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from batchaot.compiler.cache import cache_root

# the cache root when the session started: `make`'s warm-up built the AOT module there
_SESSION_CACHE_ROOT = cache_root()

STATUSES = ["new", "paid", "shipped", "Paid", "refund%", "a_b", "", "ünï", "x@y.z", "NEW "]


def random_table(seed: int, n: int = 200, null_rate: float = 0.15) -> pa.Table:
    """ints, floats (with NaN, inf, -0.0), decimals, strings, dates, timestamps, bools."""
    rng = np.random.default_rng(seed)

    def mask() -> np.ndarray:
        return rng.random(n) < null_rate

    i = rng.integers(-50, 50, n)
    j = rng.integers(-5, 6, n)
    f = np.round(rng.normal(0, 20, n), 2)
    specials = rng.random(n)
    f[specials < 0.03] = np.nan
    f[(specials >= 0.03) & (specials < 0.05)] = np.inf
    f[(specials >= 0.05) & (specials < 0.07)] = -0.0
    g = rng.uniform(-3, 3, n)
    dec = [decimal.Decimal(int(x)).scaleb(-2) for x in rng.integers(-100000, 100000, n)]
    s = rng.choice(STATUSES, n)
    d0 = dt.date(2024, 1, 1)
    d = [d0 + dt.timedelta(days=int(x)) for x in rng.integers(-400, 400, n)]
    ts = [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=int(x)) for x in rng.integers(-10**7, 10**7, n)]
    b = rng.random(n) < 0.5
    return pa.table({
        "i": pa.array(i, pa.int64(), mask=mask()),
        "j": pa.array(j, pa.int32(), mask=mask()),
        "f": pa.array(f, pa.float64(), mask=mask()),
        "g": pa.array(g, pa.float64(), mask=mask()),
        "dec": pa.array(dec, pa.decimal128(10, 2), mask=mask()),
        "s": pa.array(s, pa.string(), mask=mask()),
        "d": pa.array(d, pa.date32(), mask=mask()),
        "ts": pa.array(ts, pa.timestamp("us"), mask=mask()),
        "b": pa.array(b, pa.bool_(), mask=mask()),
    })


class Oracle:
    """DuckDB counts for a predicate: violations (FALSE) and strict violations (NOT TRUE)."""

    def __init__(self):
        self.con = duckdb.connect()
        # batchaot never aborts a run on one row's arithmetic: x % 0 is NULL
        self.con.execute("SET error_on_division_by_zero = false")

    def counts(self, table: pa.Table, pred: str) -> tuple[int, int]:
        self.con.register("t", table)
        try:
            row = self.con.execute(
                f"SELECT count(*) FILTER (WHERE NOT ({pred})), "
                f"count(*) FILTER (WHERE ({pred}) IS NOT TRUE) FROM t").fetchall()[0]
        finally:
            self.con.unregister("t")
        return int(row[0]), int(row[1])


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    return Oracle()


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory):
    """A fresh fused-kernel cache for one test module (BATCHAOT_CACHE_DIR), restored after:
    a module that compiles kernels proves it on its own, not on what an earlier run left."""
    path = tmp_path_factory.mktemp("kernels")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BATCHAOT_CACHE_DIR", str(path))
        yield path



@pytest.fixture(scope="module")
def aot_module():
    """The ahead-of-time kernels (engine/aot.py) in the cache root in force: copied from
    the session's (where `make`'s warm-up built them) or built (~30 s). Never skipped: a
    test that forces the exports must run them."""
    from batchaot.engine import aot

    targets = [aot.module_path(name) for name in aot.ENTRIES]
    built = [os.path.join(_SESSION_CACHE_ROOT, "aot", t.name) for t in targets]
    if not all(t.exists() for t in targets):
        if all(os.path.exists(b) for b in built):
            os.makedirs(targets[0].parent, mode=0o700, exist_ok=True)
            for b, t in zip(built, targets):
                shutil.copy2(b, t)
        else:
            aot.build()
    aot.forget()
    yield targets
    aot.forget()
