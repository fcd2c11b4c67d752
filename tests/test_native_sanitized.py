"""The cffi extension itself under AddressSanitizer and UndefinedBehaviorSanitizer.

``native/build.py --sanitized`` compiles the very sources of ``batchaot._native``
with ASan/UBSan into a temporary folder; a subprocess with the ASan runtime
preloaded (a Python extension cannot bring it in later) loads that module in place
of the installed one and runs the byte-for-byte optimizer fuzz (C against
twin.py) and the pool tests with it. Any finding aborts that process. A canary
first proves the sanitizer is live there: an out-of-bounds read must be caught.

Under CI a sanitizer that cannot run fails these tests (see test_native_c.py).
This file is also the subprocess's entry point:
``python tests/test_native_sanitized.py MODULE.so (--canary | PYTEST ARGS...)``.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_in_place_of_native(module_path: str):
    """Makes the module at module_path *be* batchaot._native for this process."""
    spec = importlib.util.spec_from_file_location("batchaot._native", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["batchaot._native"] = module
    from batchaot import native
    assert native.lib is module.lib, "batchaot.native did not pick up the sanitized module"
    return module


def _canary(module) -> None:
    """Validates a program whose ncode runs one instruction past its malloc'd array."""
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    n = 64
    size = n * module.ffi.sizeof("ba_insn")
    buf = libc.malloc(size)
    ctypes.memset(buf, 0, size)            # NOP 0 0 0: valid, so validation reads on
    prog = module.ffi.new("ba_program *")
    prog.code = module.ffi.cast("ba_insn *", buf)
    prog.ncode = n + 1
    prog.nregs = 1
    print("canary: validating", flush=True)
    module.lib.ba_validate(prog)
    print("canary: not caught", flush=True)


if __name__ == "__main__":
    native_module = _load_in_place_of_native(sys.argv[1])
    if sys.argv[2:] == ["--canary"]:
        _canary(native_module)
        sys.exit(0)
    import pytest
    sys.exit(pytest.main(sys.argv[2:]))


# ------------------------------------------------------------------------ tests

import pytest  # noqa: E402

from test_native_c import CC, cannot_run, require_sanitizers  # noqa: E402

# The byte-for-byte fuzz (C optimizer vs twin.py, all passes, single passes,
# hypothesis, malformed programs) and the pool's tests.
SANITIZED_TESTS = ["tests/test_optimizer_fuzz.py", "tests/test_pool.py"]
FINDING = re.compile(r"ERROR: \w*Sanitizer|runtime error:")


def _load_build_script():
    spec = importlib.util.spec_from_file_location("batchaot_native_build", ROOT / "native" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory) -> tuple[Path, dict]:
    """(the sanitized module, the environment that can load it)."""
    require_sanitizers()
    libasan = subprocess.run([CC, "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        cannot_run(f"{CC} does not say where libasan.so is (got {libasan!r})")
    module = _load_build_script().build_sanitized(tmp_path_factory.mktemp("sanitized"))
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [libasan, env.get("LD_PRELOAD")]))
    # CPython keeps memory until exit by design: leaks are not findings here. The
    # pool's tests ask for absurd sizes and expect NULL, not an abort.
    env["ASAN_OPTIONS"] = "detect_leaks=0:allocator_may_return_null=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env.pop("PYTEST_ADDOPTS", None)
    return module, env


def _run(sanitized, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    module, env = sanitized
    return subprocess.run([sys.executable, __file__, str(module), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_module_is_instrumented(sanitized):
    data = sanitized[0].read_bytes()
    assert b"__asan_report_load" in data
    # signed overflow is checked too: Python's -fwrapv, inherited by extensions, is undone
    assert b"__ubsan_handle_add_overflow" in data and b"__ubsan_handle_shift_out_of_bounds" in data


def test_canary_out_of_bounds_read_is_caught(sanitized):
    result = _run(sanitized, "--canary")
    assert "canary: validating" in result.stdout, result.stdout + result.stderr
    assert "canary: not caught" not in result.stdout, "ASan is not live in the subprocess"
    assert result.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr, result.stderr
    assert "ba_validate" in result.stderr, result.stderr


def test_optimizer_fuzz_and_pool_under_asan_and_ubsan(sanitized):
    # --capture=sys: a sanitizer report goes to the real stderr (fd 2), kept even
    # when the process aborts in the middle of a test.
    result = _run(sanitized, "-q", "-p", "no:cacheprovider", "--capture=sys", "-o", "addopts=",
                  *SANITIZED_TESTS)
    report = result.stdout[-6000:] + result.stderr[-6000:]
    # (ASan only warns when the pool's tests ask for 2^62 bytes and get NULL)
    assert not FINDING.search(result.stderr), report
    assert result.returncode == 0, report
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 60 and "failed" not in summary \
        and "error" not in summary and "skipped" not in summary, summary
