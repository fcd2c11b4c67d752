"""Runs the C unit tests of native/ (optimizer, with its semantic fuzz, and pool),
plain and under ASan/UBSan.

Under CI (the CI environment variable set, as CI services do) a sanitizer run that
cannot happen is a failure, never a skip; elsewhere it is a skip that says why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"
CC = os.environ.get("CC", "cc")
SANITIZE = "-fsanitize=address,undefined"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def cannot_run(reason: str) -> None:
    """Fails under CI, skips elsewhere; either way says why."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the C and sanitizer tests must run, not skip)",
                    pytrace=False)
    pytest.skip(reason)


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        cannot_run(f"needs {' and '.join(missing)} on PATH")


def sanitizer_problem() -> str | None:
    """None if this compiler builds, and this machine runs, an ASan/UBSan binary;
    else what went wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text("#include <stdlib.h>\n"
                       "int main(void) { char *p = malloc(4); p[0] = 1; free(p); return 0; }\n")
        built = subprocess.run([CC, SANITIZE, str(src), "-o", str(exe)], capture_output=True, text=True)
        if built.returncode != 0:
            return (f"{CC} cannot build {SANITIZE} binaries here (exit {built.returncode})"
                    + _detail(built.stderr))
        ran = subprocess.run([str(exe)], capture_output=True, text=True)
        if ran.returncode != 0:
            return f"an {SANITIZE} binary does not run here (exit {ran.returncode})" + _detail(ran.stderr)
    return None


def _detail(stderr: str) -> str:
    return f": {stderr.strip()[-500:]}" if stderr.strip() else ""


def require_sanitizers() -> None:
    need_tools(CC)
    problem = sanitizer_problem()
    if problem:
        cannot_run(problem)


def make(target: str) -> subprocess.CompletedProcess:
    # the default fuzz (BA_FUZZ / BA_FUZZ_SEED are for deep runs by hand)
    env = {k: v for k, v in os.environ.items() if k not in ("BA_FUZZ", "BA_FUZZ_SEED")}
    return subprocess.run(["make", "-C", str(NATIVE), target], capture_output=True, text=True,
                          timeout=600, env=env)


def test_c_unit_tests():
    need_tools("make", CC)
    result = make("test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_optimizer: " in result.stdout and "test_pool: " in result.stdout
    assert result.stdout.count(" 0 failed") == 2, result.stdout
    assert "semantic fuzz: 20000 programs" in result.stdout, result.stdout


def test_c_unit_tests_under_asan_and_ubsan():
    need_tools("make")
    require_sanitizers()
    result = make("asan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" 0 failed") == 2, result.stdout
    assert "semantic fuzz: 20000 programs" in result.stdout, result.stdout


def test_ci_turns_a_missing_sanitizer_into_a_failure(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        cannot_run("no sanitizer here")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no sanitizer here"):
        cannot_run("no sanitizer here")
