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
  never does (the Executor and the UnitRunner keep the process here while the rows it
  has checked on the exports stay within AOT_MAX_ROWS: :func:`keep_ahead`);
- the JIT dispatcher once Numba is loaded (the fused tier, key checks or a large run
  needed it): the dispatchers release the GIL and run on several threads, the exports
  hold it.

Both are compiled from the same Python functions and give identical answers:
:func:`verify` holds every export to its JIT twin after each build (warm-up deletes
modules that fail it), as tests/test_aot.py does. An export does not check its arguments (an array of another
dtype would be read as if it had the declared one), so :func:`call` checks every array
argument against the export's signature and uses the JIT dispatcher when none matches.
Without the modules (never warmed up, no C compiler, another machine) everything runs
JIT, as before.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..compiler.cache import cache_root, code_digest, compiler_fingerprint, private_dir, trusted_dir

# Up to this many rows in all a process without Numba stays on the exports (one thread):
# checking 2M rows of the demo's 9 rules takes ~0.2 s there, about Numba's start-up,
# which more rows repay with threads and the fused tier. Counted over the process's
# life, so a long-lived one (a notebook, a worker running unit after unit) moves on.
AOT_MAX_ROWS = 2_000_000

_KERNELS = "batchaot.engine.strings.kernels"
BUILD_TIMEOUT_S = 900           # one entry point compiles in ~5-20 s
STALE_AFTER_S = 7 * 24 * 3600   # other fingerprints' modules older than this are deleted


@dataclass(frozen=True)
class Entry:
    """One entry point: the @njit function (module, name) and the signatures exported,
    each a tuple of argument types ('i8' int64, 'u8' uint64, 'b1' bool; 'u1[:]' a
    C-contiguous 1-D uint8 array, 'i4[:,:]' a 2-D int32 one, ...; '!' after an array:
    the kernel writes it) and a result type."""

    module: str
    function: str
    signatures: tuple[tuple[str, ...], ...]
    result: str


def _string_kernel(function: str, middle: tuple[str, ...]) -> Entry:
    """A string kernel: (offsets, data, bitmap, bitoff, lo, hi, *middle, words, valid),
    offsets int32 or int64 (string, large_string), table words int64 (the VM's) or
    uint8 (the fused tier's narrow tables)."""
    return Entry(_KERNELS, function, tuple(
        (f"{off}[:]", "u1[:]", "u1[:]", "i8", "i8", "i8", *middle, f"{words}[:]!", "u1[:]!")
        for off in ("i4", "i8") for words in ("i8", "u1")), "none")


ENTRIES: dict[str, Entry] = {
    "vm_run": Entry("batchaot.engine.vm", "run", (
        ("i4[:,:]", "i8[:]", "u1[:]", *["i8[:]"] * 9, "i8", "i8[:,:]!", "u1[:,:]!", "b1", "u8[:]!"),),
        "UniTuple(i8, 3)"),
    "bitmap_rows": Entry("batchaot.engine.vm", "bitmap_rows", (("u8[:]", "i8"),), "i8[:]"),
    "length_kernel": _string_kernel("_length_kernel", ()),
    "set_kernel": _string_kernel("_set_kernel", ("u1[:]", "i8[:]", "i8[:]", "u8[:,:]", "u8", "u8", "b1", "b1")),
    "sparse_kernel": _string_kernel("_sparse_kernel", ("u8[:]", "i8[:]", "i8[:]", "u1[:]", "u1[:]", "b1", "b1")),
    "dfa_kernel": _string_kernel("_dfa_kernel", ("u1[:]", "i8[:]", "u1[:]", "u1[:]", "u8[:,:]", "i8", "u1[:]",
                                                 "i8", "u8", "u8", "i8", "b1", "b1")),
    "encode_kernel": Entry(_KERNELS, "_encode_kernel", tuple(
        (f"{off}[:]", "u1[:]", "u1[:]", "i8", "u2[:]!", "i8[:]!") for off in ("i4", "i8")), "i8"),
}

# The sources compiled into the module (with what they import from the engine): part of
# its fingerprint.
_SOURCES = ("buffers.py", "pointers.py", "vm.py", "strings/kernels.py", "strings/swar.py",
            "strings/arrow.py", "strings/automata.py")

_DTYPES = {"i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
           "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "f8": np.float64}


def _export_name(name: str, variant: int) -> str:
    return f"{name}__{variant}"


_SCALARS = {"i8": (-2**63, 2**63), "u8": (0, 2**64)}


def _arg_check(t: str) -> tuple:
    """What an argument of type `t` must be: ("array", dtype, ndim, written) or
    ("int", low, high) or ("bool",)."""
    if "[" in t:
        return "array", np.dtype(_DTYPES[t.split("[")[0]]), t.count(":"), t.endswith("!")
    if t == "b1":
        return ("bool",)
    return ("int", *_SCALARS[t])


def _ok(a, check: tuple) -> bool:
    kind = check[0]
    if kind == "array":
        _, dtype, ndim, written = check
        return (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
                and a.flags.aligned and (a.flags.writeable or not written))
    if kind == "bool":
        return isinstance(a, (bool, np.bool_))
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool) and check[1] <= int(a) < check[2]


# per entry: (export name, its argument checks) for each signature
_CHECKS = {name: [(_export_name(name, k), tuple(map(_arg_check, sig))) for k, sig in enumerate(e.signatures)]
           for name, e in ENTRIES.items()}


def _matches(args: tuple, checks: tuple[tuple, ...]) -> bool:
    """Whether `args` have exactly the types an export was compiled for (it would read
    any other as if they had them)."""
    return len(args) == len(checks) and all(_ok(a, c) for a, c in zip(args, checks))


# -- the module on disk ----------------------------------------------------------------

def folder() -> Path:
    """Where the compiled modules live: ``<cache root>/aot``."""
    return Path(cache_root()) / "aot"


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """A digest of everything compiled into the modules: the kernels' sources, this file
    (signatures, build settings), the compiler's fingerprint (opcode numbers), versions."""
    here = Path(__file__).resolve().parent
    files = [here / source for source in _SOURCES] + [Path(__file__)]
    digest = code_digest(files, ("numba", "llvmlite"), compiler_fingerprint(), np.__version__.encode(),
                         sys.version.encode(), platform.machine().encode())
    return digest.hex()[:20]


def module_name(name: str) -> str:
    """The extension module of entry point `name`."""
    return f"batchaot_aot_{fingerprint()}_{name}"


def module_path(name: str) -> Path:
    return folder() / (module_name(name) + importlib.machinery.EXTENSION_SUFFIXES[0])


_modules: dict[str, Any] = {}   # entry -> its loaded module; False: absent or unusable
_loading = threading.Lock()     # morsel threads ask at once: one loads, the others wait
_forced = False                 # tests: the exports even where Numba is loaded, none missing


def _load(name: str) -> Any:
    module = _modules.get(name)
    if module is None:
        with _loading:
            if name not in _modules:
                _modules[name] = _load_file(name)
            module = _modules[name]
    return module


def _load_file(name: str) -> Any:
    path = module_path(name)
    if not (path.exists() and trusted_dir(str(path.parent))):
        return False
    try:
        spec = importlib.util.spec_from_file_location(module_name(name), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception:            # noqa: BLE001  (another interpreter, a damaged file: JIT it is)
        return False


def forget() -> None:
    """Look for the modules again at the next call (tests, after a build)."""
    with _loading:
        _modules.clear()


def available() -> bool:
    """Whether calls go to the ahead-of-time exports now: every module is there, this
    process has not loaded Numba, and BATCHAOT_AOT is not 0 (the switch to rule the
    exports out, e.g. to compare them with the JIT on one's own data)."""
    return ("numba" not in sys.modules and os.environ.get("BATCHAOT_AOT", "1") != "0"
            and all(_load(name) for name in ENTRIES))


_rows_ahead = 0                 # rows this process has checked on the exports
_counting = threading.Lock()


def keep_ahead(rows: int, count: bool = True) -> bool:
    """Whether `rows` more rows run on the exports: they are available and the process's
    rows on them stay within AOT_MAX_ROWS; else Numba is loaded here (before any kernel
    of that work runs) and every later call is JIT. `count`: the rows are about to run
    (False: a plan of rows that each batch will count itself)."""
    global _rows_ahead
    if "numba" in sys.modules:
        return False
    with _counting:
        within = _rows_ahead + max(rows, 0) <= AOT_MAX_ROWS
        if within and count:
            _rows_ahead += max(rows, 0)
    if not within:
        use_jit()
        return False
    return available()


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
        for export, checks in _CHECKS[name]:
            if _matches(args, checks):
                return getattr(module, export)
    return None


def _types(args: tuple) -> list:
    """The arguments' dtypes (arrays) or type names (scalars), for a message."""
    return [getattr(a, "dtype", type(a).__name__) for a in args]


def kernel(name: str, args: tuple) -> Callable:
    """The function `call` would run for these arguments."""
    if _forced or available():
        function = exported(name, args)
        if function is not None:
            return function
        if _forced:
            raise TypeError(f"no ahead-of-time export of {name} takes {_types(args)}")
    return _jit(name)


def call(name: str, *args):
    """Run entry point `name` (ENTRIES) on `args`: ahead of time or JIT (module docstring)."""
    if _twins is not None:
        return _twin_call(name, args)
    return kernel(name, args)(*args)


# -- holding the exports to their JIT twins ----------------------------------------------

class Mismatch(AssertionError):
    """An export gave another answer than its JIT twin."""


_twins: Counter | None = None   # while verifying: (entry, export) -> calls compared


def _copies(args: tuple) -> tuple:
    """Copies of the array arguments, read-only where the original is (the JIT compiles
    another specialisation for the other)."""
    return tuple(_copy(a) if isinstance(a, np.ndarray) else a for a in args)


def _copy(a: np.ndarray) -> np.ndarray:
    c = a.copy()
    c.flags.writeable = a.flags.writeable
    return c


def _same(x, y) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    if isinstance(x, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def _twin_call(name: str, args: tuple):
    """Run the JIT and the export on copies of `args`; compare the results and every
    array afterwards (outputs and scratch alike), then run the JIT on `args`."""
    export = exported(name, args)
    if export is None:
        raise Mismatch(f"no export of {name} takes {_types(args)}")
    jit_args, aot_args = _copies(args), _copies(args)
    want, got = _jit(name)(*jit_args), export(*aot_args)
    if not _same(want, got):
        raise Mismatch(f"{export.__name__} returned {got!r}, its JIT twin {want!r}")
    for k, (a, b) in enumerate(zip(jit_args, aot_args)):
        if not _same(a, b):
            raise Mismatch(f"{export.__name__} left argument {k} unlike its JIT twin")
    _twins[name, export.__name__] += 1
    return _jit(name)(*args)


@contextlib.contextmanager
def twins() -> Iterator[Counter]:
    """Every call in the block runs both the export and the JIT and compares them
    (Mismatch); yields the calls compared per (entry point, export)."""
    global _twins
    _twins = Counter()
    try:
        yield _twins
    finally:
        _twins = None


def verify(rows: int = 20_000) -> Counter:
    """Hold the exports to their JIT twins on the engine's own workload: integers across
    int64's range (overflows), floats with NaN, NULLs, plain, large and dictionary
    strings under LIKE, regexes, IN, length and starts_with; the calls compared. `batchaot
    warmup` runs it after a build: a miscompile (after an upgrade of Numba, say) must
    never answer a rule."""
    import pyarrow as pa

    from ..compiler import compile_rules
    from ..compiler.program import Program
    from ..spec import load_rules
    from .run import Executor

    rng = np.random.default_rng(0)
    words = np.array(["", "a", "a@b.c", "x@y", "é@日.x", "SKU-1", "URGENT", "a_b%", "paid", "new"])

    def text(large: bool) -> pa.Array:
        values = [w + str(i) if i % 3 else w for i, w in enumerate(rng.choice(words, rows))]
        return pa.array(values, pa.large_string() if large else pa.string(), mask=rng.random(rows) < 0.1)

    table = pa.table({
        "a": pa.array(rng.integers(-2**63, 2**63 - 1, rows, dtype=np.int64, endpoint=True),
                      mask=rng.random(rows) < 0.1),
        "b": pa.array(rng.integers(-3, 4, rows)),
        "f": pa.array(np.where(rng.random(rows) < 0.05, np.nan, rng.normal(size=rows))),
        "s": text(False), "l": text(True),
        "c": pa.array(rng.choice(words, rows), mask=rng.random(rows) < 0.1)})
    checks = ["a + b > a", "a - b < a", "a * b >= 0", "a // b <> 3 OR f < 0.5", "abs(a) % 7 = 1",
              "f * 2 > b", "s LIKE '%@%.%'", "regexp_matches(l, '^[^@]+@[^@]+$')", "length(s) < 6",
              "starts_with(l, 'SKU-')", "c IN ('paid', 'new', '')", "s <> 'a'", "l LIKE 'a_b%'"]
    specs = load_rules([{"name": f"r{i}", "check": c} for i, c in enumerate(checks)]
                       + [{"name": "strict", "check": "f > 0", "strict": True}])
    # as runs see them: from bytes (the program cache, a Ray worker), arrays read-only
    programs = [Program.from_bytes(p.to_bytes()) for p in compile_rules(specs, table.schema)]
    with twins() as compared, Executor(engine="vm") as executor:
        outcomes = executor.evaluate(programs, table.to_batches(max_chunksize=rows // 3 + 1))
        found = sum(len(o.row_ids) for o in outcomes)          # bitmap_rows, compared too
    if found != sum(o.violations for o in outcomes):
        raise Mismatch(f"{found} violating rows read back from the bitmaps, "
                       f"{sum(o.violations for o in outcomes)} counted")
    missing = set(ENTRIES) - {name for name, _ in compared}
    if missing:
        raise Mismatch(f"the workload did not reach {sorted(missing)}")
    return compared


# -- building it -----------------------------------------------------------------------

def _numba_type(text: str):
    from numba import from_dtype, types

    if text == "none":
        return types.none
    if text.startswith("UniTuple("):
        inner, count = text[len("UniTuple("):-1].split(",")
        return types.UniTuple(_numba_type(inner.strip()), int(count))
    text = text.rstrip("!")
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
    _remove_stale(done)
    return done


def remove() -> None:
    """Delete the modules of this fingerprint (a failed verify): every call is JIT."""
    for name in ENTRIES:
        module_path(name).unlink(missing_ok=True)
    forget()


def _remove_stale(current: list[Path]) -> None:
    """Delete modules of other fingerprints not built for a week: an older engine's. Newer
    ones stay: another checkout or virtualenv on the machine may be using them."""
    for path in folder().glob("batchaot_aot_*"):
        with contextlib.suppress(OSError):
            if path not in current and time.time() - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()


def _build_in_process(name: str) -> Path:
    # from the folder that holds this very package, so the child compiles these sources
    # (python -m puts the working folder first); Numba's debugging knobs left out
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") or k == "NUMBA_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-m", __name__, name], capture_output=True, text=True, cwd=root,
                          env=env, timeout=BUILD_TIMEOUT_S)
    target = module_path(name)
    if proc.returncode != 0 or not target.exists():
        raise RuntimeError(f"compiling {name} ahead of time failed: {proc.stderr.strip()[-1500:]}")
    return target


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
