"""The engine's compiled entry points, ahead of time or just in time.

The kernels the VM tier runs (the VM itself, the string kernels, the dictionary encoder,
reading a violation bitmap back) are Numba functions. The first call in a process pays
Numba's start-up even when the machine code comes from its disk cache: the import
(~0.2 s) and the first dispatch, which loads the typing and lowering registries
(~0.3 s). For a small job that is most of the run: a fresh `batchaot validate` of
200,000 rows spent ~0.5 s of ~0.8 s there, where DuckDB's whole run takes ~0.2 s.

So ``batchaot warmup`` also compiles these functions ahead of time (numba.pycc, same
source, generic CPU of the architecture) into extension modules, one per entry point,
in the cache folder (``<cache root>/aot``), named by a fingerprint of the engine's
kernel sources, the compiler's, and the Python, NumPy and Numba versions: an edited or
upgraded engine never loads an older module. :func:`call` then runs

- the ahead-of-time export while this process has not imported Numba: a small run
  never does (the Executor keeps runs up to AOT_MAX_ROWS rows here, engine/run.py);
- the JIT dispatcher once Numba is loaded (the fused tier, key checks or a large run
  needed it): the dispatchers release the GIL and run on several threads, the exports
  hold it.

Both are compiled from the same Python functions and give identical answers
(tests/test_aot.py). An export does not check its arguments (an array of another
dtype would be read as if it had the declared one), so :func:`call` checks every array
argument against the export's signature and uses the JIT dispatcher when none matches.
Without the modules (never warmed up, no C compiler, another machine) everything runs
JIT, as before.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..compiler.cache import cache_root, compiler_fingerprint, private_dir, trusted_dir

# Up to this many rows a run in a process without Numba stays on the exports (one
# thread): checking 2M rows of the demo's 9 rules takes ~0.2 s there, about Numba's
# start-up, which more rows repay with threads and the fused tier.
AOT_MAX_ROWS = 2_000_000

_KERNELS = "batchaot.engine.strings.kernels"


@dataclass(frozen=True)
class Entry:
    """One entry point: the @njit function (module, name) and the signatures exported,
    each a tuple of argument types ('i8' int64, 'u8' uint64, 'b1' bool; 'u1[:]' a
    C-contiguous 1-D uint8 array, 'i4[:,:]' a 2-D int32 one, ...) and a result type."""

    module: str
    function: str
    signatures: tuple[tuple[str, ...], ...]
    result: str


def _string_kernel(function: str, middle: tuple[str, ...]) -> Entry:
    """A string kernel: (offsets, data, bitmap, bitoff, lo, hi, *middle, words, valid),
    offsets int32 or int64 (string, large_string), table words int64 (the VM's) or
    uint8 (the fused tier's narrow tables)."""
    return Entry(_KERNELS, function, tuple(
        (f"{off}[:]", "u1[:]", "u1[:]", "i8", "i8", "i8", *middle, f"{words}[:]", "u1[:]")
        for off in ("i4", "i8") for words in ("i8", "u1")), "none")


ENTRIES: dict[str, Entry] = {
    "vm_run": Entry("batchaot.engine.vm", "run", (
        ("i4[:,:]", "i8[:]", "u1[:]", *["i8[:]"] * 9, "i8", "i8[:,:]", "u1[:,:]", "b1", "u8[:]"),),
        "UniTuple(i8, 3)"),
    "bitmap_rows": Entry("batchaot.engine.vm", "bitmap_rows", (("u8[:]", "i8"),), "i8[:]"),
    "length_kernel": _string_kernel("_length_kernel", ()),
    "set_kernel": _string_kernel("_set_kernel", ("u1[:]", "i8[:]", "i8[:]", "u8[:,:]", "u8", "u8", "b1", "b1")),
    "sparse_kernel": _string_kernel("_sparse_kernel", ("u8[:]", "i8[:]", "i8[:]", "u1[:]", "u1[:]", "b1", "b1")),
    "dfa_kernel": _string_kernel("_dfa_kernel", ("u1[:]", "i8[:]", "u1[:]", "u1[:]", "u8[:,:]", "i8", "u1[:]",
                                                 "i8", "u8", "u8", "i8", "b1", "b1")),
    "encode_kernel": Entry(_KERNELS, "_encode_kernel", tuple(
        (f"{off}[:]", "u1[:]", "u1[:]", "i8", "u2[:]", "i8[:]") for off in ("i4", "i8")), "i8"),
}

# The sources compiled into the module (with what they import from the engine): part of
# its fingerprint.
_SOURCES = ("buffers.py", "pointers.py", "vm.py", "strings/kernels.py", "strings/swar.py",
            "strings/arrow.py", "strings/automata.py")

_DTYPES = {"i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
           "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "f8": np.float64}


def _export_name(name: str, variant: int) -> str:
    return f"{name}__{variant}"


def _array_checks(signature: tuple[str, ...]) -> tuple[tuple[int, np.dtype, int], ...]:
    """(argument index, dtype, ndim) of each array argument of a signature."""
    return tuple((i, np.dtype(_DTYPES[t.split("[")[0]]), t.count(":"))
                 for i, t in enumerate(signature) if "[" in t)


_CHECKS = {name: [(_export_name(name, k), len(sig), _array_checks(sig)) for k, sig in enumerate(e.signatures)]
           for name, e in ENTRIES.items()}


def _matches(args: tuple, nargs: int, checks: tuple[tuple[int, np.dtype, int], ...]) -> bool:
    if len(args) != nargs:
        return False
    for i, dtype, ndim in checks:
        a = args[i]
        if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous):
            return False
    return True


# -- the module on disk ----------------------------------------------------------------

def folder() -> Path:
    """Where the compiled module lives: ``<cache root>/aot``."""
    return Path(cache_root()) / "aot"


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """A digest of everything compiled into the modules."""
    from importlib import metadata

    here = Path(__file__).resolve().parent
    h = hashlib.sha256(compiler_fingerprint())
    for source in _SOURCES:
        h.update((here / source).read_bytes())
    for part in (metadata.version("numba"), np.__version__, sys.version, platform.machine(),
                 repr(sorted((n, e) for n, e in ENTRIES.items()))):
        h.update(part.encode())
    return h.hexdigest()[:20]


def module_name(name: str) -> str:
    """The extension module of entry point `name`."""
    return f"batchaot_aot_{fingerprint()}_{name}"


def module_path(name: str) -> Path:
    return folder() / (module_name(name) + importlib.machinery.EXTENSION_SUFFIXES[0])


_modules: dict[str, Any] = {}   # entry -> its loaded module; False: absent or unusable
_forced = False                 # tests: the exports even where Numba is loaded


def _load(name: str) -> Any:
    if name not in _modules:
        _modules[name] = False
        path = module_path(name)
        if path.exists() and trusted_dir(str(path.parent)):
            try:
                spec = importlib.util.spec_from_file_location(module_name(name), path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                _modules[name] = module
            except ImportError:
                pass                  # built for another interpreter or platform: JIT it is
    return _modules[name]


def forget() -> None:
    """Look for the modules again at the next call (tests, after a build)."""
    _modules.clear()


def available() -> bool:
    """Whether calls go to the ahead-of-time exports now: they are built (the VM's module
    stands for all) and this process has not loaded Numba."""
    return "numba" not in sys.modules and bool(_load("vm_run"))


def use_jit() -> None:
    """From now on, calls go to the JIT dispatchers (they release the GIL): for work large
    enough to repay Numba's start-up."""
    importlib.import_module("numba")


def _jit(name: str) -> Callable:
    entry = ENTRIES[name]
    return getattr(importlib.import_module(entry.module), entry.function)


def exported(name: str, args: tuple) -> Callable | None:
    """The ahead-of-time export of `name` whose signature these arguments have, or None
    (no module, or no such signature), whether or not Numba is loaded."""
    module = _load(name)
    if module:
        for export, nargs, checks in _CHECKS[name]:
            if _matches(args, nargs, checks):
                return getattr(module, export)
    return None


def kernel(name: str, args: tuple) -> Callable:
    """The function `call` would run for these arguments."""
    if _forced or "numba" not in sys.modules:
        function = exported(name, args)
        if function is not None:
            return function
    return _jit(name)


def call(name: str, *args):
    """Run entry point `name` (ENTRIES) on `args`: ahead of time or JIT (module docstring)."""
    return kernel(name, args)(*args)


# -- building it -----------------------------------------------------------------------

def _numba_type(text: str):
    from numba import from_dtype, types

    if text == "none":
        return types.none
    if text.startswith("UniTuple("):
        inner, count = text[len("UniTuple("):-1].split(",")
        return types.UniTuple(_numba_type(inner.strip()), int(count))
    base = from_dtype(np.dtype(_DTYPES[text.split("[")[0]])) if text != "b1" else types.boolean
    ndim = text.count(":")
    return types.Array(base, ndim, "C") if ndim else base


def build(workers: int | None = None) -> list[Path]:
    """Compile every entry point ahead of time (~30 s of CPU in all); the modules' paths.

    One module per entry point, each compiled in a process of its own: numba.pycc
    compiled the VM's integer additions as float ones when a string kernel had been
    compiled before it in the same process (its JIT twin is right; tests/test_aot.py
    holds every export to its twin). Each is written to a temporary folder and moved
    into place, so a process never loads a half-written module and builds do not clash.
    Raises RuntimeError with the compiler's message if one fails."""
    from concurrent.futures import ThreadPoolExecutor

    private_dir(str(folder()))
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        done = list(pool.map(_build_in_process, ENTRIES))
    forget()
    return done


def _build_in_process(name: str) -> Path:
    proc = subprocess.run([sys.executable, "-m", __name__, name], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {name} ahead of time failed: {proc.stderr.strip()[-1500:]}")
    return module_path(name)


def _build_one(name: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # pycc's pending-deprecation notice
        from numba.pycc import CC

        target = module_path(name)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            cc = CC(module_name(name))
            cc.output_dir = tmp
            cc.verbose = False
            entry = ENTRIES[name]
            function = _jit(name).py_func
            for k, signature in enumerate(entry.signatures):
                cc.export(_export_name(name, k), _numba_type(entry.result)(*map(_numba_type, signature)))(function)
            cc.compile()
            os.replace(os.path.join(tmp, target.name), target)


if __name__ == "__main__":        # python -m batchaot.engine.aot ENTRY: build() runs this
    _build_one(sys.argv[1])
