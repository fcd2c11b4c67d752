"""Program: one compiled rule — immutable, serializable, content-hashed."""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .opcodes import CLASSES, KINDS, Op

_MAGIC = b"BAOT"
FORMAT_VERSION = 1
_ARRAYS = ("code", "kval", "kvalid", "code0", "kval0", "kvalid0")
_DTYPES = {"code": np.int32, "kval": np.int64, "kvalid": np.uint8}


def _frozen(a: np.ndarray, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Program:
    """Bytecode of one rule, before (``*0``) and after optimization.

    ``columns`` is the program's column table: (name, SQL type) in LOAD index order.
    ``luts`` lists the string expressions that LUT instructions evaluate per distinct
    value: (column index, SExpr, result type).
    """

    name: str
    source: str
    strict: bool
    columns: tuple[tuple[str, str], ...]
    luts: tuple[tuple[int, list, str], ...]
    nregs: int
    code: np.ndarray
    kval: np.ndarray
    kvalid: np.ndarray
    code0: np.ndarray
    kval0: np.ndarray
    kvalid0: np.ndarray
    removed: dict = field(default_factory=dict)    # instructions removed per optimizer pass
    verdict: str = "unknown"                       # 'true'|'false'|'null'|'unknown'
    optimizer: str = "native"

    def __post_init__(self) -> None:
        for name in _ARRAYS:
            object.__setattr__(self, name, _frozen(getattr(self, name), _DTYPES[name.rstrip("0")]))
        object.__setattr__(self, "code", self.code.reshape(-1, 4))
        object.__setattr__(self, "code0", self.code0.reshape(-1, 4))

    def __setstate__(self, state: dict) -> None:
        """Unpickled arrays come back writable: freeze them again, so a Program has one
        array type wherever it travels (one VM specialisation, which `warmup` caches)."""
        for name, value in state.items():
            object.__setattr__(self, name, value)
        for name in _ARRAYS:
            getattr(self, name).flags.writeable = False

    # -- what the rule is -------------------------------------------------------
    @property
    def zero_tick(self) -> bool:
        """True if the rule provably never fails, so it never needs to run."""
        return self.verdict == "true" or (self.verdict == "null" and not self.strict)

    @property
    def column_names(self) -> list[str]:
        # a name may appear twice: CAST(x AS VARCHAR) adds (x, 'varchar') next to (x, its type)
        return list(dict.fromkeys(c for c, _ in self.columns))

    @property
    def size(self) -> tuple[int, int]:
        """Instruction counts (before, after) optimization."""
        return len(self.code0), len(self.code)

    # -- serialization -------------------------------------------------------------
    def _header(self) -> dict:
        return {"v": FORMAT_VERSION, "name": self.name, "source": self.source,
                "strict": self.strict, "columns": [list(c) for c in self.columns],
                "luts": [list(x) for x in self.luts], "nregs": self.nregs,
                "removed": self.removed, "verdict": self.verdict, "optimizer": self.optimizer,
                "sizes": [len(getattr(self, a)) for a in _ARRAYS]}

    def to_bytes(self) -> bytes:
        head = json.dumps(self._header(), sort_keys=True, separators=(",", ":")).encode()
        body = b"".join(np.ascontiguousarray(getattr(self, a)).tobytes() for a in _ARRAYS)
        return _MAGIC + struct.pack("<II", FORMAT_VERSION, len(head)) + head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> "Program":
        if data[:4] != _MAGIC:
            raise ValueError("not a batchaot program")
        version, hlen = struct.unpack_from("<II", data, 4)
        if version != FORMAT_VERSION:
            raise ValueError(f"program format {version}, this batchaot reads {FORMAT_VERSION}")
        head = json.loads(data[12:12 + hlen])
        pos, arrays = 12 + hlen, {}
        for name, n in zip(_ARRAYS, head["sizes"]):
            dtype = np.dtype(_DTYPES[name.rstrip("0")])
            count = n * 4 if name.startswith("code") else n
            arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
            pos += count * dtype.itemsize
        return cls(name=head["name"], source=head["source"], strict=head["strict"],
                   columns=tuple(tuple(c) for c in head["columns"]),
                   luts=tuple(tuple(x) for x in head["luts"]), nregs=head["nregs"],
                   removed=head["removed"], verdict=head["verdict"],
                   optimizer=head["optimizer"], **arrays)

    @cached_property
    def hash(self) -> str:
        """Content hash of the optimized program (identical rules share it)."""
        h = hashlib.sha256()
        for part in (self.code, self.kval, self.kvalid):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update(json.dumps([self.columns, self.luts, self.nregs, self.strict]).encode())
        return h.hexdigest()[:16]

    # -- listings --------------------------------------------------------------------
    def disassemble(self, which: str = "both") -> str:
        """Readable listing: 'before', 'after' or 'both' (side by side sections)."""
        parts = []
        if which in ("before", "both"):
            parts.append(f"; {self.name} before optimization: {len(self.code0)} instructions\n"
                         + listing(self.code0, self.kval0, self.kvalid0, self))
        if which in ("after", "both"):
            tick = "  (zero-tick: never runs)" if self.zero_tick else ""
            parts.append(f"; {self.name} after optimization: {len(self.code)} instructions{tick}\n"
                         + listing(self.code, self.kval, self.kvalid, self))
        return "\n".join(parts)


def _fmt_const(kval: np.ndarray, kvalid: np.ndarray, k: int, as_float: bool) -> str:
    if not kvalid[k]:
        return "NULL"
    if as_float:
        return repr(float(np.array([kval[k]], dtype=np.int64).view(np.float64)[0]))
    return str(int(kval[k]))


def _float_registers(code: np.ndarray) -> set[int]:
    """Registers read as float64, so listings print the constants loaded into them as numbers.

    The opcode table's classes say which operands are float ('f'); a register of class
    'x' (MOV, SELECT, COALESCE) has its destination's class, so float-ness flows
    backwards through those copies."""
    fregs: set[int] = set()
    for op, a, b, c in code:
        fregs.update(r for cls, r in zip(CLASSES[int(op)], (a, b, c)) if cls == "f")
    changed = True
    while changed:  # flow float-ness backwards through copies
        changed = False
        for op, a, b, c in code:
            classes = CLASSES[int(op)]
            if classes[0] == "x" and a in fregs:
                srcs = {r for cls, r in zip(classes[1:], (b, c)) if cls == "x"}
                if not srcs <= fregs:
                    fregs |= srcs
                    changed = True
    return fregs


def listing(code: np.ndarray, kval: np.ndarray, kvalid: np.ndarray, prog: Program | None = None) -> str:
    fregs = _float_registers(code)
    lines = []
    for pc, (op, a, b, c) in enumerate(code):
        kinds = KINDS[int(op)]
        ops = []
        for kind, v in zip(kinds, (a, b, c)):
            if kind == "R":
                ops.append(f"r{v}")
            elif kind == "K":
                ops.append(f"k{v}={_fmt_const(kval, kvalid, v, a in fregs)}")
            elif kind == "C":
                ops.append(f"{prog.columns[v][0] if prog else v}" if prog else f"c{v}")
            elif kind == "J":
                ops.append(f"->{v}")
            elif kind == "L":
                ops.append(f"lut{v}" + (f"={_sexpr_text(prog.luts[v][1])}" if prog else ""))
            elif kind == "N":
                ops.append(str(v))
        lines.append(f"{pc:4d}  {Op(op).name:<9} {', '.join(ops)}")
    return "\n".join(lines)


def _sexpr_text(e) -> str:
    if not isinstance(e, (list, tuple)):
        return repr(e)
    if e and e[0] == "col":
        return "$"
    if e and e[0] == "lit":
        return repr(e[1])
    if e and e[0] == "in":
        return f"in({_sexpr_text(e[1])}, {list(e[2])!r})"
    return f"{e[0]}(" + ", ".join(_sexpr_text(x) for x in e[1:]) + ")"
