"""The one door to the C side (``batchaot._native``): the opcode table, the peephole
optimizer and the memory pool.

Everything numeric comes from C: opcode numbers and kinds, pass names, error codes,
verdicts. Error codes become exceptions here and nowhere else.
"""
from __future__ import annotations

import contextlib
import enum
import functools
import weakref
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ._native import ffi, lib

__all__ = [
    "OpInfo", "OpFlag", "opcode_table", "PASS_NAMES", "ErrorCode", "MAX_ROUNDS",
    "VERDICT_UNKNOWN", "VERDICT_TRUE", "VERDICT_FALSE", "VERDICT_NULL",
    "NativeError", "InvalidProgram", "PoolError",
    "ProgramArrays", "program_arrays", "constant_capacity", "pass_mask",
    "OptimizeResult", "Optimizer", "Pool",
]


def _text(ptr) -> str:
    return ffi.string(ptr).decode()


# ------------------------------------------------------------------ opcode table

_KIND_LETTERS: dict[int, str] = {
    lib.BA_KIND_R: "R", lib.BA_KIND_K: "K", lib.BA_KIND_C: "C", lib.BA_KIND_J: "J",
    lib.BA_KIND_L: "L", lib.BA_KIND_N: "N", lib.BA_KIND_NONE: "_",
}

OpFlag = enum.IntFlag("OpFlag", sorted(
    ((name.removeprefix("BA_OPF_"), getattr(lib, name)) for name in dir(lib) if name.startswith("BA_OPF_")),
    key=lambda item: item[1]))
OpFlag.__doc__ = "Opcode flags (enum ba_opflag in native/batchaot_native.h; what each means is there)."


@dataclass(frozen=True)
class OpInfo:
    """One row of native/opcodes.def, as compiled into the C table."""

    code: int
    name: str
    kinds: tuple[str, str, str]     # operand kinds of A, B, C: letters R K C J L N _
    doc: str                        # the semantics, in register notation
    family: str                     # "add", "lt", ...: ADD_I and ADD_F share one
    classes: tuple[str, str, str]   # physical class of A, B, C: i f b x _
    symbol: str                     # "+", "<", ... or ""
    flags: OpFlag


@functools.cache
def opcode_table() -> tuple[OpInfo, ...]:
    """Every opcode, in opcode order (``table[op].code == op``)."""
    return tuple(
        OpInfo(code=op, name=_text(lib.ba_op_name(op)),
               kinds=tuple(_KIND_LETTERS[lib.ba_op_kind(op, i)] for i in range(3)),
               doc=_text(lib.ba_op_doc(op)), family=_text(lib.ba_op_family(op)),
               classes=tuple(_text(lib.ba_op_classes(op))), symbol=_text(lib.ba_op_symbol(op)),
               flags=OpFlag(lib.ba_op_flags(op)))
        for op in range(lib.ba_op_count())
    )


PASS_NAMES: tuple[str, ...] = tuple(_text(lib.ba_pass_name(i)) for i in range(lib.ba_pass_count()))
MAX_ROUNDS: int = lib.BA_MAX_ROUNDS

ErrorCode = enum.IntEnum("ErrorCode", {"OK": lib.BA_OK} | {
    name.removeprefix("BA_ERR_"): getattr(lib, name) for name in dir(lib) if name.startswith("BA_ERR_")
})
ErrorCode.__doc__ = "The C error codes (enum ba_error)."

VERDICT_UNKNOWN, VERDICT_TRUE, VERDICT_FALSE, VERDICT_NULL = "unknown", "true", "false", "null"
_VERDICTS: dict[int, str] = {
    lib.BA_VERDICT_UNKNOWN: VERDICT_UNKNOWN, lib.BA_VERDICT_TRUE: VERDICT_TRUE,
    lib.BA_VERDICT_FALSE: VERDICT_FALSE, lib.BA_VERDICT_NULL: VERDICT_NULL,
}


def strerror(code: int) -> str:
    return _text(lib.ba_strerror(code))


# ------------------------------------------------------------------------ errors

class NativeError(Exception):
    """An error reported by the C side; `code` is its :class:`ErrorCode`."""

    def __init__(self, code: int, detail: str = ""):
        self.code = ErrorCode(code)
        self.reason = strerror(code)
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)


class InvalidProgram(NativeError):
    """A program that fails validation; `pc` is the offending instruction or -1."""

    def __init__(self, code: int, pc: int = -1, detail: str = ""):
        where = f"instruction {pc}" if pc >= 0 else ""
        super().__init__(code, ", ".join(filter(None, (where, detail))))
        self.pc = pc


class PoolError(NativeError):
    """Misuse of a :class:`Pool`: a foreign pointer, a double free, a destroyed pool."""


# ---------------------------------------------------------------- program input

_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class ProgramArrays:
    """Private, checked copies of a program's arrays, in the C types."""

    code: np.ndarray      # int32, shape (n, 4): op, a, b, c
    kval: np.ndarray      # int64: constant words (float64 bits for *_F users)
    kvalid: np.ndarray    # uint8: constant is not NULL
    nregs: int
    ncols: int
    nluts: int


def _bad(detail: str) -> InvalidProgram:
    return InvalidProgram(ErrorCode.BAD_ARGUMENT, detail=detail)


def _int_array(x, dtype: type, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except ValueError as exc:           # ragged nested lists
        raise _bad(f"{name}: {exc}") from None
    if a.size == 0:
        return np.zeros(a.shape, dtype=dtype)
    if a.dtype.kind not in "iub":
        raise _bad(f"{name} must hold integers, not {a.dtype}")
    if a.dtype == np.uint64 and dtype == np.int64:
        return a.view(np.int64).copy()          # 64-bit words, any bit pattern
    info = np.iinfo(dtype)
    if a.min() < info.min or a.max() > info.max:
        raise _bad(f"{name} does not fit {np.dtype(dtype).name}")
    return np.array(a, dtype=dtype, order="C", copy=True)


def _count(x, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= x <= _INT32.max:
        raise _bad(f"{name} must be an int in [0, {_INT32.max}], not {x!r}")
    return int(x)


def program_arrays(code, kval, kvalid, nregs, ncols, nluts) -> ProgramArrays:
    """Checks shapes and ranges (InvalidProgram BAD_ARGUMENT) and copies the arrays."""
    code_a = _int_array(code, np.int32, "code")
    if code_a.size == 0:
        code_a = code_a.reshape(0, 4)
    if code_a.ndim != 2 or code_a.shape[1] != 4:
        raise _bad(f"code must have shape (n, 4), not {code_a.shape}")
    kval_a, kvalid_a = _int_array(kval, np.int64, "kval"), _int_array(kvalid, np.uint8, "kvalid")
    if kval_a.ndim != 1 or kval_a.shape != kvalid_a.shape:
        raise _bad(f"kval and kvalid must be 1-d of one length, not {kval_a.shape} and {kvalid_a.shape}")
    if constant_capacity(len(kval_a), len(code_a)) > _INT32.max:
        raise _bad("program too large")
    return ProgramArrays(code_a, kval_a, kvalid_a, _count(nregs, "nregs"),
                         _count(ncols, "ncols"), _count(nluts, "nluts"))


def constant_capacity(nconst: int, ncode: int) -> int:
    """Room for the constants folding may add: at most one per instruction."""
    return nconst + ncode + 16


def pass_mask(passes: Iterable[str] | None) -> int:
    """Bit i for PASS_NAMES[i]; None means all. ValueError names an unknown pass."""
    if passes is None:
        return (1 << len(PASS_NAMES)) - 1
    if isinstance(passes, str):
        passes = (passes,)
    mask = 0
    for name in passes:
        if name not in PASS_NAMES:
            raise ValueError(f"unknown optimizer pass {name!r}; passes are {', '.join(PASS_NAMES)}")
        mask |= 1 << PASS_NAMES.index(name)
    return mask


# -------------------------------------------------------------------- optimizer

@dataclass(frozen=True, eq=False)   # eq=False: numpy arrays have no single truth value
class OptimizeResult:
    code: np.ndarray          # int32, shape (n, 4)
    kval: np.ndarray          # int64, the whole constant pool after optimization
    kvalid: np.ndarray        # uint8
    removed: dict[str, int]   # instructions removed per pass, every pass in order
    before: int
    after: int
    rounds: int
    verdict: str              # 'unknown' | 'true' | 'false' | 'null'


class _CProgram:
    """A ba_program over private numpy buffers that C may rewrite."""

    def __init__(self, arrays: ProgramArrays):
        ncode, nconst = len(arrays.code), len(arrays.kval)
        kcap = constant_capacity(nconst, ncode)
        self.code = arrays.code
        self.kval = np.zeros(kcap, dtype=np.int64)
        self.kvalid = np.zeros(kcap, dtype=np.uint8)
        self.kval[:nconst], self.kvalid[:nconst] = arrays.kval, arrays.kvalid
        self.c = ffi.new("ba_program *")
        self.c.code = ffi.from_buffer("ba_insn[]", self.code) if ncode else ffi.NULL
        self.c.ncode = ncode
        self.c.kval = ffi.from_buffer("int64_t[]", self.kval)
        self.c.kvalid = ffi.from_buffer("uint8_t[]", self.kvalid)
        self.c.nconst, self.c.kcap = nconst, kcap
        self.c.nregs, self.c.ncols, self.c.nluts = arrays.nregs, arrays.ncols, arrays.nluts

    def validate(self) -> None:
        pc = ffi.new("int32_t *")
        rc = lib.ba_validate_at(self.c, pc)
        if rc != lib.BA_OK:
            raise InvalidProgram(rc, pc[0])


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


class Optimizer:
    """The C peephole optimizer. Stateless: one per process is plenty.

    Inputs are copied, never mutated: `code` is an (n, 4) int32-compatible array of
    (op, a, b, c) rows, `kval`/`kvalid` the constant pool.
    """

    def validate(self, code, kval, kvalid, nregs: int, ncols: int, nluts: int) -> None:
        """Raises InvalidProgram (with the C error code and instruction) if invalid."""
        _CProgram(program_arrays(code, kval, kvalid, nregs, ncols, nluts)).validate()

    def optimize(self, code, kval, kvalid, nregs: int, ncols: int, nluts: int,
                 passes: Iterable[str] | None = None) -> OptimizeResult:
        """Runs the passes named in `passes` (all if None) in their fixed order."""
        mask = pass_mask(passes)
        prog = _CProgram(program_arrays(code, kval, kvalid, nregs, ncols, nluts))
        prog.validate()
        st = ffi.new("ba_opt_stats *")
        rc = lib.ba_optimize(prog.c, mask, st)
        if rc != lib.BA_OK:
            raise NativeError(rc)
        nconst = prog.c.nconst
        return OptimizeResult(
            code=_frozen(prog.code[:prog.c.ncode]),
            kval=_frozen(prog.kval[:nconst]), kvalid=_frozen(prog.kvalid[:nconst]),
            removed={name: st.removed[i] for i, name in enumerate(PASS_NAMES)},
            before=st.before, after=st.after, rounds=st.rounds, verdict=_VERDICTS[st.verdict],
        )


# ------------------------------------------------------------------------- pool

_STAT_FIELDS: tuple[str, ...] = tuple(name for name, _ in ffi.typeof("ba_pool_stats").fields)


class Pool:
    """A C memory pool of `nblocks` blocks of `block_bytes` bytes, `align`-aligned.

    :meth:`take` hands out a zero-copy, writable uint8 view of a block; a request
    larger than a block, or made while all blocks are taken, is served by a fresh
    allocation (counted as a miss). A Pool belongs to one process and one thread:
    it is not thread-safe and cannot be pickled; a Ray worker builds its own.

    An array from :meth:`take` keeps the Pool object alive, but its memory is only
    valid until it is given back, or the pool is reset or destroyed: do not touch
    it after that.
    """

    def __init__(self, block_bytes: int, nblocks: int, align: int = 64):
        if block_bytes < 1 or nblocks < 0 or align < 1 or align & (align - 1):
            raise ValueError(f"bad pool shape: block_bytes={block_bytes}, nblocks={nblocks}, "
                             f"align={align} (align must be a power of two)")
        ptr = lib.ba_pool_new(block_bytes, nblocks, align)
        if ptr == ffi.NULL:
            raise MemoryError(f"cannot allocate a pool of {nblocks} x {block_bytes} bytes")
        self._handle = ffi.new("ba_pool **", ptr)
        self.align = align
        # Frees the C pool when this object is collected (or on destroy(), once).
        self._release = weakref.finalize(self, lib.ba_pool_destroy, self._handle)

    def _pool(self):
        if self._handle[0] == ffi.NULL:
            raise PoolError(ErrorCode.BAD_ARGUMENT, "the pool is destroyed")
        return self._handle[0]

    def take(self, nbytes: int) -> np.ndarray:
        """A writable uint8 array of `nbytes` over pool memory (no copy)."""
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, not {nbytes}")
        ptr = lib.ba_pool_alloc(self._pool(), nbytes)
        if ptr == ffi.NULL:
            raise MemoryError(f"pool cannot allocate {nbytes} bytes")
        # The destructor closes over self: the array (-> buffer -> this cdata) keeps
        # the pool alive, so collecting the Pool never frees memory under a view.
        keep = ffi.gc(ffi.cast("uint8_t *", ptr), lambda _ptr, owner=self: None)
        return np.frombuffer(ffi.buffer(keep, max(nbytes, 1)), dtype=np.uint8)[:nbytes]

    def give(self, arr: np.ndarray) -> None:
        """Returns an array from :meth:`take`; PoolError if foreign or already given."""
        address = arr.__array_interface__["data"][0]
        rc = lib.ba_pool_free(self._pool(), ffi.cast("void *", address))
        if rc != lib.BA_OK:
            raise PoolError(rc, f"address {address:#x}")

    @contextlib.contextmanager
    def borrow(self, nbytes: int) -> Iterator[np.ndarray]:
        """``with pool.borrow(n) as buf:`` takes a block and gives it back after."""
        arr = self.take(nbytes)
        try:
            yield arr
        finally:
            self.give(arr)

    def stats(self) -> dict[str, int]:
        """allocs, hits, misses, frees, in_use, high_water, block_bytes, nblocks."""
        out = ffi.new("ba_pool_stats *")
        lib.ba_pool_get_stats(self._pool(), out)
        return {name: int(getattr(out, name)) for name in _STAT_FIELDS}

    def reset(self) -> None:
        """Every block back to the free list, misses released. Safe to repeat."""
        lib.ba_pool_reset(self._pool())

    def destroy(self) -> None:
        """Frees all pool memory; later use raises PoolError. Safe to repeat."""
        self._release()

    @property
    def destroyed(self) -> bool:
        return self._handle[0] == ffi.NULL

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
