"""cffi builder for ``batchaot._native`` (API mode, out-of-line).

setup.py wires it with ``cffi_modules=["native/build.py:ffibuilder"]``, so
``pip install -e .`` compiles it. Run directly (``python build.py``) to build the
module in a temporary directory and copy it into ``batchaot/``.

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
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "batchaot_native.h"
SOURCES = ("bytecode.c", "optimizer.c", "pool.c")
# -ffp-contract=off: no fused multiply-add, so folded floats equal the VM's.
CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off"]


def cdef_text(header: Path = HEADER) -> str:
    """The header with preprocessor lines removed: what cffi's parser accepts."""
    lines = header.read_text().splitlines()
    return "\n".join(line for line in lines if not re.match(r"\s*#", line))


def make_ffibuilder(absolute: bool = False) -> FFI:
    """The builder; paths are relative to the working directory unless `absolute`.

    setuptools wants relative source paths (it runs from the project root), while
    ffibuilder.compile() changes into its tmpdir and so needs absolute ones.
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
        extra_compile_args=CFLAGS,
        libraries=["m"],
    )
    return builder


ffibuilder = make_ffibuilder()


def build_in_place() -> Path:
    """Compile in a temporary directory and copy the module into batchaot/."""
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(make_ffibuilder(absolute=True).compile(tmpdir=tmp))
        dest = HERE.parent / "batchaot" / built.name
        shutil.copy2(built, dest)
    return dest


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
