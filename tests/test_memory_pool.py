"""A run makes jemalloc (or the system allocator) pyarrow's default pool in its process,
unless ARROW_DEFAULT_MEMORY_POOL chose one (batchaot/io/memory.py says why)."""
from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from jobdata import REPO

RUN = """
import pyarrow as pa, batchaot
before = pa.default_memory_pool().backend_name
batchaot.validate(pa.table({"x": [1, -2]}), [{"name": "pos", "check": "x > 0"}])
print(before, pa.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize("chosen", [None, "mimalloc", "system"])
def test_a_run_takes_jemalloc_unless_the_user_chose_a_pool(chosen) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    done = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, cwd=REPO, env=env,
                          check=True)
    before, after = done.stdout.split()
    if chosen is None:
        assert after in ("jemalloc", "system") and after != "mimalloc"
    else:
        assert before == after == chosen


def test_under_an_address_space_limit_the_pool_stays() -> None:
    """A second allocator's mappings would count against the limit too (io/memory.py)."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    done = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, cwd=REPO, env=env,
                          check=True, preexec_fn=limited)
    before, after = done.stdout.split()
    assert before == after
