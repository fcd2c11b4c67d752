"""Hostile input against the compiled tiers: nothing from rules or data becomes code, and
nothing loaded from the kernel cache runs unless it verifies.

(Rules-file, data-file and output cases live in test_hostile_rules.py,
test_hostile_data.py and test_hostile_outputs.py.)
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import batchaot
from batchaot.engine import fused
from batchaot.engine.run import Executor

REPO = Path(__file__).resolve().parents[1]

# A rule name that is a small Python program: were it pasted into kernel source, the
# import would run it (it did once: a comment line, then code on the next line).
EVIL_NAMES = [
    "x\nimport os; open(os.environ['BATCHAOT_PWNED'], 'w').write('ran')\n#",
    "x\r\nimport os; open(os.environ['BATCHAOT_PWNED'], 'w').write('ran')\r\n#",
    "\"\"\"\nimport os; open(os.environ['BATCHAOT_PWNED'], 'w').write('ran')\n\"\"\"",
    "x\n    return 0, 0\n",
]

_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np, pyarrow as pa
    import batchaot
    from batchaot.engine import fused
    from batchaot.engine.run import Executor
    names = json.loads(sys.argv[1])
    n = 5000
    table = pa.table({"a": np.arange(n), "b": np.arange(n) % 7})
    # through the compiler API, which takes any name (rules files refuse control characters)
    progs = [batchaot.compile("a > 5 AND b < 6", table.schema, name=name) for name in names]
    with Executor(engine="fused") as ex:
        out = ex.evaluate(progs, table.to_batches())
    print(json.dumps({"violations": [o.violations for o in out], "stats": dict(fused.STATS)}))
""")


def _fresh(names: list[str], cache: Path, pwned: Path) -> dict:
    env = dict(os.environ, BATCHAOT_CACHE_DIR=str(cache), BATCHAOT_PWNED=str(pwned))
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _RUN, json.dumps(names)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _expected() -> int:
    a = np.arange(5000)
    return int(np.count_nonzero(~((a > 5) & (a % 7 < 6))))


def test_rule_names_never_reach_kernel_source_and_never_run(tmp_path) -> None:
    pwned = tmp_path / "pwned"
    first = _fresh(EVIL_NAMES, tmp_path / "cache", pwned)
    second = _fresh(EVIL_NAMES, tmp_path / "cache", pwned)     # from the disk cache
    assert not pwned.exists()
    assert first["violations"] == second["violations"] == [_expected()] * len(EVIL_NAMES)
    assert second["stats"].get("compiles", 0) == 0 and second["stats"].get("disk_hits", 0) >= 1
    for src in (tmp_path / "cache" / "kernels").glob("bk_*.py"):
        text = src.read_text()
        assert "BATCHAOT_PWNED" not in text and "import os" not in text


def test_renaming_a_rule_reuses_its_kernel(kernel_cache) -> None:
    table = pa.table({"a": np.arange(3000), "b": np.arange(3000) % 7})
    one = batchaot.compile("a * 2 > b + 11", table.schema, name="first name")
    two = batchaot.compile("a * 2 > b + 11", table.schema, name="another\nname")
    k1 = fused.get_kernel(fused.RuleSet.build([one]), [False, False])
    k2 = fused.get_kernel(fused.RuleSet.build([two]), [False, False])
    assert k1.key == k2.key and k1.path.read_text() == k2.path.read_text()


def test_kernel_cache_folder_is_private(kernel_cache) -> None:
    table = pa.table({"a": np.arange(3000)})
    prog = batchaot.compile("a - 3 <> 9", table.schema)
    kernel = fused.get_kernel(fused.RuleSet.build([prog]), [False])
    mode = stat.S_IMODE(os.stat(kernel.path.parent).st_mode)
    assert mode == 0o700, oct(mode)


def test_an_open_cache_folder_of_ours_is_closed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BATCHAOT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "kernels").mkdir(parents=True)
    os.chmod(tmp_path / "cache" / "kernels", 0o777)
    table = pa.table({"a": np.arange(3000)})
    prog = batchaot.compile("a + 4 <> 17", table.schema)
    fused.get_kernel(fused.RuleSet.build([prog]), [False])
    assert stat.S_IMODE(os.stat(tmp_path / "cache" / "kernels").st_mode) == 0o700


@pytest.mark.parametrize("damage", ["append", "replace", "foreign_manifest"])
def test_tampered_numba_cache_files_are_rebuilt_not_loaded(tmp_path, damage) -> None:
    cache, pwned = tmp_path / "cache", tmp_path / "pwned"
    name = ["plain"]
    _fresh(name, cache, pwned)
    kernels = cache / "kernels"
    files = list((kernels / "__pycache__").glob("bk_*.nb*"))
    assert files, "numba wrote no cache files"
    for f in files:
        if damage == "append":
            with open(f, "ab") as fh:
                fh.write(b"tampered")
        elif damage == "replace":
            f.write_bytes(b"\x80\x04K\x01.")          # a different, valid pickle
    if damage == "foreign_manifest":
        for m in kernels.glob("*.manifest.json"):
            m.write_text(json.dumps({f.name: "0" * 64 for f in files}))
    again = _fresh(name, cache, pwned)
    assert again["stats"].get("cache_rejected", 0) >= 1
    assert again["stats"].get("disk_hits", 0) == 0 and again["stats"].get("compiles", 0) >= 1
    assert again["violations"] == [_expected()]
    healed = _fresh(name, cache, pwned)                  # the rebuilt entry verifies
    assert healed["stats"].get("disk_hits", 0) >= 1 and not healed["stats"].get("cache_rejected")


def test_numba_cache_dir_is_honoured_and_verified(tmp_path) -> None:
    env_cache = tmp_path / "numba"
    os.environ["NUMBA_CACHE_DIR"] = str(env_cache)
    try:
        code = _RUN.replace("import json, sys", "import json, sys, os")
        env = dict(os.environ, BATCHAOT_CACHE_DIR=str(tmp_path / "cache"),
                   BATCHAOT_PWNED=str(tmp_path / "pwned"))
        runs = [subprocess.run([sys.executable, "-c", code, json.dumps(["n"])], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=300) for _ in range(2)]
    finally:
        os.environ.pop("NUMBA_CACHE_DIR")
    stats = [json.loads(r.stdout.strip().splitlines()[-1])["stats"] for r in runs]
    assert stats[0].get("compiles") == 1 and stats[1].get("disk_hits") == 1, stats
    assert list(env_cache.rglob("bk_*.nbi"))


def test_kernel_source_holds_only_generated_text(kernel_cache) -> None:
    schema = pa.schema([("weird\ncolumn'\"", pa.int64()), ("s", pa.string())])
    prog = batchaot.compile({"name": "r", "check": "\"weird\ncolumn'\"\"\" > 3 AND s <> 'x\n)import os'"},
                            schema)
    src = fused.generate(fused.RuleSet.build([prog]), [True, True])
    assert "weird" not in src and "import os" not in src and "column" not in src


def test_executor_gives_same_counts_with_hostile_names() -> None:
    table = pa.table({"a": pa.array([1, -2, None, 4], pa.int64())})
    progs = [batchaot.compile("a > 0", table.schema, name=n) for n in EVIL_NAMES]
    with Executor(engine="vm") as ex:
        out = ex.evaluate(progs, table.to_batches())
    assert [o.violations for o in out] == [1] * len(EVIL_NAMES)


def test_rules_files_refuse_control_characters_in_names(tmp_path) -> None:
    from batchaot.errors import BatchaotError
    rules = tmp_path / "rules.yaml"
    rules.write_text('rules:\n  - {name: "x\\nimport os", check: "a > 0"}\n')
    table = pa.table({"a": pa.array([1, 2], pa.int64())})
    with pytest.raises(BatchaotError, match="rules.yaml:2"):
        batchaot.validate(table, str(rules))
