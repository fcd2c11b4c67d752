"""cffi builder for ``batchaot._native`` (API mode, out-of-line).

setup.py wires it with ``cffi_modules=["native/build.py:ffibuilder"]``, so
``pip install -e .`` compiles it. Run directly (``python build.py``) to build the
module in a temporary directory and copy it into ``batchaot/``;
``python build.py --sanitized DIR`` builds the same sources with AddressSanitizer
and UndefinedBehaviorSanitizer into DIR instead (tests/test_native_sanitized.py
runs the optimizer fuzz and the pool tests against it).

The cdef is the text of batchaot_native.h without its preprocessor lines: the
header is the one description of the API, and cffi checks every enum value in it
against the C compiler, so Python never retypes a constant.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "batchaot_native.h"
SOURCES = ("bytecode.c", "optimizer.c", "pool.c")
# -ffp-contract=off: no fused multiply-add, so folded floats equal the VM's.
CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off"]
# The sanitized variant (as native/Makefile's `asan`): any finding aborts the process.
# -fno-wrapv undoes the -fwrapv of Python's own CFLAGS (which extensions inherit), so
# that a signed overflow is UB there and UBSan reports it, as in the C unit tests.
SANITIZE = "-fsanitize=address,undefined,float-cast-overflow"
SANITIZED_CFLAGS = ["-std=c99", "-O1", "-g", "-ffp-contract=off", "-fno-wrapv", SANITIZE,
                    "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]


def cdef_text(header: Path = HEADER) -> str:
    """The header with preprocessor lines removed: what cffi's parser accepts."""
    lines = header.read_text().splitlines()
    return "\n".join(line for line in lines if not re.match(r"\s*#", line))


def make_ffibuilder(absolute: bool = False, sanitized: bool = False) -> FFI:
    """The builder; paths are relative to the working directory unless `absolute`.

    setuptools wants relative source paths (it runs from the project root), while
    ffibuilder.compile() changes into its tmpdir and so needs absolute ones.
    `sanitized` compiles and links with ASan and UBSan: such a module loads only
    into a process that has the ASan runtime first (LD_PRELOAD of libasan).
    """
    def where(path: Path) -> str:
        return str(path) if absolute else os.path.relpath(path, Path.cwd())

    builder = FFI()
    builder.cdef(cdef_text())
    builder.set_source(
        "batchaot._native",
        '#include "batchaot_native.h"',
        sources=[where(HERE / name) for name in SOURCES],
        include_dirs=[where(HERE)],
        extra_compile_args=SANITIZED_CFLAGS if sanitized else CFLAGS,
        extra_link_args=[SANITIZE] if sanitized else [],
        libraries=["m"],
    )
    return builder


ffibuilder = make_ffibuilder()


def build_in_place() -> Path:
    """Compile in a temporary directory and copy the module into batchaot/.

    It goes under the name an install gives it (cffi modules use the stable ABI,
    ``_native.abi3.so``), and any other build of it there is removed: Python would
    otherwise import whichever suffix it prefers, maybe a stale one."""
    package = HERE.parent / "batchaot"
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(make_ffibuilder(absolute=True).compile(tmpdir=tmp))
        suffix = ".abi3.so" if ".abi3.so" in EXTENSION_SUFFIXES else built.name[len("_native"):]
        dest = package / f"_native{suffix}"
        for old in package.glob("_native.*"):
            if old.name != dest.name and any(old.name.endswith(s) for s in EXTENSION_SUFFIXES):
                old.unlink()
        # copy beside, then rename: a process that has the old module loaded keeps its
        # mapping instead of seeing the file change under it
        staged = dest.with_name(dest.name + ".tmp")
        shutil.copy2(built, staged)
        os.replace(staged, dest)
    return dest


def build_sanitized(dest: Path) -> Path:
    """Compile the sanitized module under `dest` (created if missing); its path.

    The module keeps the name ``batchaot._native``: a process loads it in place of
    the installed one (importlib, before importing batchaot)."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    return Path(make_ffibuilder(absolute=True, sanitized=True).compile(tmpdir=str(dest)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sanitized"] and len(sys.argv) == 3:
        print(build_sanitized(Path(sys.argv[2])))
    elif len(sys.argv) == 1:
        print(build_in_place(), file=sys.stderr)
    else:
        sys.exit("usage: build.py [--sanitized DIR]")
