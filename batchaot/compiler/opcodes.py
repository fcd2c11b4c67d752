"""The Python view of native/opcodes.def.

Nothing here is typed in by hand: names, numbers, operand kinds and the semantics
comments all come from the compiled C table, so C and Python cannot disagree.
"""
from __future__ import annotations

import enum

from .. import native

TABLE: tuple[native.OpInfo, ...] = native.opcode_table()

Op = enum.IntEnum("Op", {info.name: info.code for info in TABLE})
Op.__doc__ = "Opcodes, numbered as in native/opcodes.def."

KINDS: dict[int, tuple[str, str, str]] = {info.code: info.kinds for info in TABLE}
DOCS: dict[int, str] = {info.code: info.doc for info in TABLE}

JUMPS = frozenset(op for op in Op if KINDS[op][1] == "J")

# Opcode families with an int64 (_I) and a float64 (_F) variant, picked by operand class.
TYPED_FAMILIES = frozenset(name[:-2].lower() for name in Op.__members__ if name.endswith(("_I", "_F")))


def typed(family: str, physical: str) -> Op:
    """The opcode for `family` ('add', 'lt', ...) on operands of class 'i' or 'f'."""
    return Op[f"{family.upper()}_{physical.upper()}"]
