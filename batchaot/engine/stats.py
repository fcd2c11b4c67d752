"""Zero-tick at the data level: Parquet row-group statistics that prove rules TRUE.

Before a row group is decoded, each Program is interpreted *abstractly* over the group's
column statistics (min, max, null count): every register holds an interval of possible
values plus "may be NULL" / "may be non-NULL". If no path can reach RET with a FALSE
(or, for strict rules, a NULL) verdict, the rule holds on every row of the group and is
not run there; if that is true of every rule, the group is not even read.

Soundness first: anything not modelled (arithmetic, strings, missing or untrusted
statistics) is "unknown" and proves nothing. Parquet float statistics ignore NaN, so a
float column is always assumed to possibly hold NaN, which (as in DuckDB) sorts above
every number.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from itertools import product

import pyarrow as pa
import pyarrow.parquet as pq

from ..compiler.opcodes import CLASSES, COMPARISONS, FAMILY, JUMPS, Op
from ..compiler.program import Program
from ..compiler.types import UnsupportedType, from_arrow

# Values are ordered by key: (0, number) for numbers, (1, 0) for NaN (above them all).
NAN_KEY = (1, 0)
T, F, N = "T", "F", "N"                     # the three truth values


@dataclass(frozen=True)
class Abstract:
    lo: tuple | None = None                 # None: unbounded
    hi: tuple | None = None
    null: bool = True                       # may be NULL
    valid: bool = True                      # may be non-NULL
    word: int | None = None                 # exact constant (untyped 64-bit word)

    def truths(self) -> set[str]:
        out = {N} if self.null else set()
        if self.valid:
            if self.lo is None or self.lo <= (0, 0):
                out.add(F)
            if self.hi is None or self.hi > (0, 0) or self.lo is None or self.lo < (0, 0):
                out.add(T)
        return out


TOP = Abstract()


def from_truths(ts: set[str]) -> Abstract:
    vals = [v for t, v in ((F, 0), (T, 1)) if t in ts]
    if not vals:
        return Abstract(null=N in ts, valid=False)
    return Abstract((0, min(vals)), (0, max(vals)), null=N in ts, valid=True)


def join(a: Abstract, b: Abstract) -> Abstract:
    lo = None if a.lo is None or b.lo is None else min(a.lo, b.lo)
    hi = None if a.hi is None or b.hi is None else max(a.hi, b.hi)
    if not a.valid:
        lo, hi = b.lo, b.hi
    elif not b.valid:
        lo, hi = a.lo, a.hi
    return Abstract(lo, hi, a.null or b.null, a.valid or b.valid, a.word if a.word == b.word else None)


def as_number(a: Abstract, is_float: bool) -> Abstract:
    """An exact constant word, read as the type its consumer expects."""
    if a.word is None or not a.valid:
        return a
    if is_float:
        x = struct.unpack("<d", struct.pack("<q", a.word))[0]
        key = NAN_KEY if x != x else (0, x)
    else:
        key = (0, a.word)
    return Abstract(key, key, a.null, a.valid)


# -- three-valued truth tables ------------------------------------------------------

def _and(x: str, y: str) -> str:
    return F if F in (x, y) else N if N in (x, y) else T


def _or(x: str, y: str) -> str:
    return T if T in (x, y) else N if N in (x, y) else F


def _not(x: str) -> str:
    return {T: F, F: T, N: N}[x]


def compare(op: str, a: Abstract, b: Abstract) -> Abstract:
    """Possible outcomes of `a op b` from the two intervals."""
    ts: set[str] = {N} if (a.null or b.null) else set()
    if a.valid and b.valid:
        lt_possible = a.lo is None or b.hi is None or a.lo < b.hi
        ge_possible = a.hi is None or b.lo is None or a.hi >= b.lo
        gt_possible = a.hi is None or b.lo is None or a.hi > b.lo
        le_possible = a.lo is None or b.hi is None or a.lo <= b.hi
        eq_possible = le_possible and ge_possible
        ne_possible = not (a.lo is not None and a.lo == a.hi == b.lo == b.hi)
        can = {"lt": (lt_possible, ge_possible), "le": (le_possible, gt_possible),
               "gt": (gt_possible, le_possible), "ge": (ge_possible, lt_possible),
               "eq": (eq_possible, ne_possible), "ne": (ne_possible, eq_possible)}[op]
        if can[0]:
            ts.add(T)
        if can[1]:
            ts.add(F)
    return from_truths(ts)


# -- statistics → abstract column values ----------------------------------------------

_TS_SCALE = {"timestamp_s": 0, "timestamp_ms": 3, "timestamp": 6, "timestamp_ns": 9}
_PARQUET_UNIT = {"milliseconds": 3, "microseconds": 6, "nanoseconds": 9}


def _logical(stats) -> dict:
    try:
        return json.loads(stats.logical_type.to_json())
    except (ValueError, AttributeError):
        return {}


def _bounds(stats, type_text: str) -> tuple[tuple, tuple] | None:
    """A statistics (min, max) as ordering keys in the VM's representation, or None when
    they cannot be trusted to bound every value.

    Read from the *physical* values (``min_raw``), never through Python conversions
    (a nanosecond timestamp has no datetime, a time zone would shift a wall clock):
    timestamps are UTC instants in Parquet's unit, dates days, decimals unscaled integers.
    """
    physical = stats.physical_type
    logical = _logical(stats)
    kind = logical.get("Type", "None")
    lo, hi = stats.min_raw, stats.max_raw
    if physical in ("INT96", "BYTE_ARRAY") and kind != "Decimal":
        return None          # INT96: no defined order; strings: old writers got them wrong
    if kind == "Decimal":
        if not type_text.startswith("decimal(") or int(type_text[:-1].split(",")[1]) != logical.get("scale"):
            return None
        if isinstance(lo, bytes):
            lo, hi = (int.from_bytes(v, "big", signed=True) for v in (lo, hi))
    elif type_text in ("double", "float"):
        if physical not in ("FLOAT", "DOUBLE") or lo != lo or hi != hi:
            return None      # a NaN bound (a hostile or old writer) orders nothing
    elif type_text == "date":
        if kind != "Date":
            return None
    elif type_text in _TS_SCALE:
        unit = _PARQUET_UNIT.get(logical.get("timeUnit", ""))
        if kind != "Timestamp" or unit is None:
            return None
        lo, hi = _rescale(lo, unit, _TS_SCALE[type_text], floor=True), \
            _rescale(hi, unit, _TS_SCALE[type_text], floor=False)
    elif type_text == "boolean":
        if physical != "BOOLEAN":
            return None
    elif type_text == "bigint":
        if physical not in ("INT32", "INT64") or kind not in ("None", "Int"):
            return None
        if kind == "Int" and not logical.get("isSigned", True):
            return None      # unsigned: old writers stored (and ordered) them signed
    else:
        return None
    if isinstance(lo, bool) or isinstance(hi, bool):
        lo, hi = int(lo), int(hi)
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or lo > hi:
        return None          # min above max: the statistics lie; trust nothing
    return (0, lo), (0, hi)


def _rescale(value: int, unit: int, target: int, floor: bool) -> int:
    """A tick count in 10^-unit s as one in 10^-target s, rounded outward (a bound
    stays a bound)."""
    if target >= unit:
        return value * 10 ** (target - unit)
    q, r = divmod(value, 10 ** (unit - target))
    return q if floor or r == 0 else q + 1


def column_abstract(stats, type_text: str, arrow_type: pa.DataType, rows: int) -> Abstract:
    """What a row group's statistics say about one column: unknown (TOP) unless they are
    there and can be trusted. Missing min/max bound nothing, a float column may hold
    NaN whatever they say (Parquet statistics leave NaN out), unsigned and string
    statistics are never trusted."""
    if stats is None or not stats.has_null_count:
        return TOP
    nulls = stats.null_count
    if nulls < 0 or nulls > rows:
        return TOP
    if nulls == rows:
        return Abstract(null=True, valid=False)
    if not stats.has_min_max or pa.types.is_unsigned_integer(arrow_type) or type_text == "varchar":
        return Abstract(null=nulls > 0)
    try:
        bounds = _bounds(stats, type_text)
    except (ValueError, TypeError, OverflowError, pa.ArrowException):
        bounds = None
    if bounds is None:
        return Abstract(null=nulls > 0)
    lo, hi = bounds
    if type_text in ("double", "float"):
        hi = NAN_KEY          # statistics ignore NaN; it may be there
    return Abstract(lo, hi, null=nulls > 0, valid=True)


# -- the abstract interpreter -----------------------------------------------------------

_JUMP_TRUTHS = {Op.JALLF: {F}, Op.JALLT: {T}, Op.JNONET: {F, N}}


def _step(op: Op, a: int, b: int, c: int, regs: dict, prog: Program, columns: list[Abstract]) -> None:
    get = lambda r: regs.get(r, TOP)
    if op == Op.LOAD:
        regs[a] = columns[b]
    elif op == Op.LOADK:
        word, valid = int(prog.kval[b]), bool(prog.kvalid[b])
        regs[a] = Abstract(null=not valid, valid=valid, word=word if valid else None)
    elif op == Op.MOV:
        regs[a] = get(b)
    elif op in COMPARISONS:          # family 'eq', 'lt', ...; operands of class 'i' or 'f'
        is_float = CLASSES[op][1] == "f"
        regs[a] = compare(FAMILY[op], as_number(get(b), is_float), as_number(get(c), is_float))
    elif op in (Op.AND, Op.OR):
        fn = _and if op == Op.AND else _or
        regs[a] = from_truths({fn(x, y) for x, y in product(get(b).truths(), get(c).truths())})
    elif op == Op.NOT:
        regs[a] = from_truths({_not(x) for x in get(b).truths()})
    elif op in (Op.ISNULL, Op.NOTNULL):
        src = get(b)
        ts = ({T} if src.null else set()) | ({F} if src.valid else set())
        regs[a] = from_truths(ts if op == Op.ISNULL else {_not(x) for x in ts})
    elif op == Op.COALESCE:
        x, y = get(b), get(c)
        regs[a] = join(Abstract(x.lo, x.hi, False, x.valid, x.word), y) if x.null else x
    elif op == Op.SELECT:
        regs[a] = join(get(a), get(c))
    else:
        regs[a] = TOP


def decoded(prog: Program) -> list[tuple[Op, int, int, int]]:
    """The program's instructions as (Op, a, b, c) of Python ints."""
    return [(Op(int(opcode)), int(a), int(b), int(c)) for opcode, a, b, c in prog.code]


def proves_true(prog: Program, columns: list[Abstract],
                code: list[tuple[Op, int, int, int]] | None = None) -> bool:
    """Whether every reachable RET of `prog` is TRUE (or NULL when not strict) on every
    row whose columns lie within `columns` (`code`: decoded(prog), when at hand)."""
    pending: dict[int, list[dict]] = {}
    regs: dict | None = {}
    for pc, (op, a, b, c) in enumerate(decoded(prog) if code is None else code):
        for other in pending.pop(pc, []):
            regs = dict(other) if regs is None else _join_states(regs, other)
        if regs is None:
            continue
        if op in JUMPS:
            taken = dict(regs)
            if op in _JUMP_TRUTHS:   # a taken conditional jump tells what its register held
                taken[a] = from_truths(regs.get(a, TOP).truths() & _JUMP_TRUTHS[op])
            pending.setdefault(b, []).append(taken)
            if op == Op.JMP:
                regs = None
            continue
        if op == Op.RET:
            ts = regs.get(a, TOP).truths()
            if F in ts or (prog.strict and N in ts):
                return False
            regs = None
            continue
        _step(op, a, b, c, regs, prog, columns)
    return True


def _join_states(x: dict, y: dict) -> dict:
    # a register missing from a state is TOP, and so is its join with anything: only
    # registers both states hold are kept (most hold the very same value: no join)
    return {r: a if a is y[r] else join(a, y[r]) for r, a in x.items() if r in y}


class RowGroupProver:
    """Which programs each row group's statistics prove TRUE on every row, for one file.

    What is the same in every row group is worked out once: which statistics column
    each program reads, whether the file's type is the one it was compiled for, and the
    programs' instructions. Per row group, each column's abstract value is computed once
    for all programs, and a program already interpreted over the same abstract values
    (columns whose statistics repeat from group to group) is not interpreted again.
    """

    def __init__(self, meta: pq.FileMetaData, schema: pa.Schema, programs: list[Program]):
        self.meta, self.programs = meta, programs
        paths = [meta.schema.column(j).path for j in range(len(meta.schema))]
        index = {p: j for j, p in enumerate(paths) if paths.count(p) == 1}   # ambiguous: unknown
        self.reads = [[_read(index, schema, name, type_text) for name, type_text in prog.columns]
                      for prog in programs]
        self.code = [decoded(prog) for prog in programs]
        self._known: dict[tuple, bool] = {}

    def proofs(self, row_group: int) -> list[bool]:
        rg = self.meta.row_group(row_group)
        values: dict[tuple, Abstract] = {}
        out = []
        for k, reads in enumerate(self.reads):
            cols = []
            for read in reads:
                if read is None:
                    cols.append(TOP)
                    continue
                if read not in values:
                    values[read] = column_abstract(rg.column(read[0]).statistics, read[1], read[2], rg.num_rows)
                cols.append(values[read])
            key = (k, *cols)
            if key not in self._known:
                self._known[key] = proves_true(self.programs[k], cols, self.code[k])
            out.append(self._known[key])
        return out


def _read(index: dict, schema: pa.Schema, name: str, type_text: str) -> tuple | None:
    """(statistics column, type text, arrow type) of a program's column, or None when
    its statistics say nothing (missing, nested, or not the type the rule was compiled
    for: reading it fails, naming the column, and statistics must not prove that away)."""
    j = index.get(name)
    unique = name in schema.names and schema.get_all_field_indices(name) == [schema.get_field_index(name)]
    if j is None or not unique or not _bound_as(schema.field(name).type, type_text):
        return None
    return j, type_text, schema.field(name).type


def row_group_proofs(meta: pq.FileMetaData, schema: pa.Schema, programs: list[Program],
                     row_group: int) -> list[bool]:
    """For one row group, which programs its statistics prove TRUE on every row."""
    return RowGroupProver(meta, schema, programs).proofs(row_group)


def _bound_as(arrow_type: pa.DataType, type_text: str) -> bool:
    """Whether this file's column is what the program was compiled for: else reading it
    fails (naming the column), and its statistics must not prove that away."""
    try:
        return str(from_arrow(arrow_type)) == type_text
    except UnsupportedType:
        return False
