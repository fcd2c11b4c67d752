"""The Python view of native/opcodes.def.

Nothing here is typed in by hand: names, numbers, operand kinds, families, classes,
symbols, flags and the semantics comments all come from the compiled C table (through
cffi), so C and Python cannot disagree. Everything else asks these tables what an
opcode is ("a jump?", "can it overflow?", "which opcode adds floats?"); nothing parses
opcode names or keeps its own list of opcodes of a kind.

Columns, per opcode (``Op``):

* ``KINDS[op]``    operand kinds of A, B, C: R K C J L N _ (opcodes.def's header)
* ``FAMILY[op]``   "add", "lt", ...: ADD_I and ADD_F are both "add"
* ``CLASSES[op]``  physical class of the registers A, B, C: i (int64), f (float64),
  b (boolean), x (any, the same for every x of the row), _ (not a register)
* ``SYMBOL[op]``   "+", "<", ... as C and Python spell the operator; only opcodes that
  have one are keys
* ``FLAGS[op]``    an :class:`OpFlag` set (enum ba_opflag in batchaot_native.h)
* ``DOCS[op]``     the semantics in register notation
"""
from __future__ import annotations

import enum
from typing import Iterable

import numpy as np

from .. import native
from ..native import OpFlag

__all__ = [
    "TABLE", "Op", "OpFlag", "KINDS", "DOCS", "FAMILY", "CLASSES", "SYMBOL", "FLAGS", "having",
    "JUMPS", "COND_JUMPS", "TERMINATORS", "READS_A", "WRITES_A", "BINARY", "COMPARISONS",
    "NULL_PROPAGATING", "OVERFLOW_SOURCES", "DIVZERO", "STRICT", "NEVER_NULL", "FOLDABLE",
    "FAMILIES", "TYPED_FAMILIES", "typed", "register_inputs", "mask",
]

TABLE: tuple[native.OpInfo, ...] = native.opcode_table()

Op = enum.IntEnum("Op", {info.name: info.code for info in TABLE})
Op.__doc__ = "Opcodes, numbered as in native/opcodes.def."

KINDS: dict[int, tuple[str, str, str]] = {info.code: info.kinds for info in TABLE}
DOCS: dict[int, str] = {info.code: info.doc for info in TABLE}
FAMILY: dict[int, str] = {info.code: info.family for info in TABLE}
CLASSES: dict[int, tuple[str, str, str]] = {info.code: info.classes for info in TABLE}
SYMBOL: dict[int, str] = {info.code: info.symbol for info in TABLE if info.symbol}
FLAGS: dict[int, OpFlag] = {info.code: info.flags for info in TABLE}


def having(flag: OpFlag) -> frozenset[Op]:
    """The opcodes with every bit of `flag`."""
    return frozenset(op for op in Op if FLAGS[op] & flag == flag)


# -- opcode sets, from the flags and kinds ---------------------------------------------

JUMPS = having(OpFlag.JUMP)                      # B is a jump target
TERMINATORS = having(OpFlag.TERMINATOR)          # never fall through: JMP, RET
COND_JUMPS = JUMPS - TERMINATORS                 # may fall through
READS_A = having(OpFlag.READS_A)                 # A is an input (SELECT, conditional jumps, RET)
# A is a destination: a register, and the opcode neither jumps nor terminates (SELECT
# writes it too, keeping the rows where its condition is not TRUE).
WRITES_A = frozenset(op for op in Op if KINDS[op][0] == "R" and op not in JUMPS | TERMINATORS)
BINARY = frozenset(op for op in Op if KINDS[op][2] == "R")   # C is a register input
COMPARISONS = having(OpFlag.COMPARISON)
NULL_PROPAGATING = having(OpFlag.NULL_PROPAGATING)   # the result is NULL iff an input is
OVERFLOW_SOURCES = having(OpFlag.OVERFLOW)       # also NULL where an integer result does not fit
DIVZERO = having(OpFlag.DIVZERO)                 # also NULL where the divisor R[C] is 0
STRICT = NULL_PROPAGATING | OVERFLOW_SOURCES | DIVZERO   # a NULL input makes a NULL result
NEVER_NULL = having(OpFlag.NEVER_NULL)
FOLDABLE = having(OpFlag.FOLDABLE)               # a function of its register inputs alone


def register_inputs(op: int, b: int, c: int) -> tuple[int, ...]:
    """The registers operands B and C of `op` read (A is read too where op in READS_A)."""
    return tuple(r for kind, r in zip(KINDS[op][1:], (b, c)) if kind == "R")


# -- families and typed opcodes --------------------------------------------------------

FAMILIES: dict[str, tuple[Op, ...]] = {}
for _op in Op:
    FAMILIES.setdefault(FAMILY[_op], ())
    FAMILIES[FAMILY[_op]] += (_op,)

# (family, class of operand B) -> opcode; 'x' matches an operand of any class.
_BY_CLASS: dict[tuple[str, str], Op] = {}
for _op in Op:
    _key = (FAMILY[_op], CLASSES[_op][1])
    if _key in _BY_CLASS:
        raise ImportError(f"opcodes.def: {_BY_CLASS[_key].name} and {_op.name} share family and classes {_key}")
    _BY_CLASS[_key] = _op

del _op, _key

# Families of typed computations: the opcode is picked by the operands' numeric class
# (ADD_I or ADD_F) and the result's class follows from it (not LUT's: its table's).
TYPED_FAMILIES = frozenset(FAMILY[op] for (_family, cls), op in _BY_CLASS.items()
                           if cls in ("i", "f") and CLASSES[op][0] != "x")


# A boolean is an int64 word (0 or 1): where a family has no opcode for one, the other
# serves (the compiler's physical class 'i' covers its booleans too, compiler/types.py).
_SAME_WORD = {"i": ("i", "b"), "b": ("b", "i"), "f": ("f",)}


def typed(family: str, physical: str) -> Op:
    """The opcode of `family` ('add', 'lt', 'not', 'isnull', ...) for operands of class
    `physical` ('i', 'f' or 'b'): the one whose operand B has that class (for 'i' and 'b',
    the other if none has), else the one whose operand B may have any class ('x').
    KeyError if the family has none."""
    for cls in _SAME_WORD.get(physical, (physical,)) + ("x",):
        op = _BY_CLASS.get((family, cls))
        if op is not None:
            return op
    raise KeyError(f"no {family!r} opcode for operands of class {physical!r}")


def mask(ops: Iterable[int]) -> np.ndarray:
    """A bool array indexed by opcode, True for `ops`: an opcode set for Numba kernels
    (``OVERFLOWS = mask(OVERFLOW_SOURCES)``, then ``if OVERFLOWS[op]:`` in the kernel)."""
    out = np.zeros(len(TABLE), dtype=np.bool_)
    out[[int(op) for op in ops]] = True
    return out
