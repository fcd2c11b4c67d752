"""Runs the C unit tests of native/ (optimizer and pool), plain and under ASan/UBSan."""
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

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which(CC) is None,
                                reason="needs make and a C compiler")


def make(target: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(NATIVE), target], capture_output=True, text=True,
                          timeout=600)


def sanitizers_work() -> bool:
    """Can this compiler build, and this machine run, an ASan/UBSan binary?"""
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text("int main(void) { return 0; }\n")
        built = subprocess.run([CC, SANITIZE, str(src), "-o", str(exe)], capture_output=True)
        return built.returncode == 0 and subprocess.run([str(exe)], capture_output=True).returncode == 0


def test_c_unit_tests():
    result = make("test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_c_unit_tests_under_asan_and_ubsan():
    if not sanitizers_work():
        pytest.skip(f"{CC} cannot build or run {SANITIZE} binaries here")
    result = make("asan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout
