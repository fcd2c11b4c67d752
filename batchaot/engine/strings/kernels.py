"""String expressions: lookup tables of their values, and string column encoding.

A Program's LUT instruction indexes a table built here from a column's dictionary:
entry i is the expression's value for dictionary value i, and one extra last entry
holds its value for a NULL input. So a predicate over 10M rows with 5 distinct
statuses costs 6 evaluations, never a Python object per row. A mostly-distinct column
(emails, ids) is its own dictionary: entry i is row i's value.

Two evaluators give the same answers. ``evaluate`` uses pyarrow.compute (RE2 for LIKE
and regexp_matches) and handles every expression. For large tables the common shapes
on the column itself run as Numba kernels over the Arrow offsets and data buffers
(``fast_plan`` / ``run_fast``), writing the table in place, on several threads:

- LIKE (case-sensitive), starts_with and regexp_matches compile to a minimized byte
  DFA (a conservative subset of RE2 syntax; anything else, ILIKE, \\d, flags, stays
  with RE2). When every literal is ASCII it reads one symbol per code point (UTF-8
  continuation bytes leave it in place), so '_' and '.' match one code point.
  Patterns where at most three bytes matter and runs of other code points act alike
  ('^[^@]+@[^@]+$', '%@%.%') run on a sparse kernel: one branch-free pass marks those
  bytes in a bitmap, then each row reads its bits and moves once per byte found; the
  others run on a dense one that skips ahead 8 bytes at a time where it can.
- = / <> / IN compare against the literals grouped by length.
- length counts code points (bytes that are not continuation bytes).
- contains, ends_with and regexp_full_match compile to the same DFAs.

The other SQL string functions (trim, substr, replace, ||, ...) run on pyarrow.compute
per distinct value; comparing two string columns uses a table of codes in the joint
dictionary of both (joint_lut), built by the engine from both columns' dictionaries.

Per 1M emails (one thread): '^[^@]+@[^@]+$' 7.5 ms (RE2: 58; 12.5 before the bitmap
pass), LIKE '%@%.%' 12-16 ms (58), length 3.5 ms (11). ``encode`` dictionary-encodes a low-cardinality column
(statuses: 5 ms per 1M rows; pc.dictionary_encode: 14).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from llvmlite import ir
from numba import types as nbt
from numba.extending import intrinsic

from ...errors import DataError
from ...compiler import sqltext
from ..buffers import load_u64

_CMP = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal,
        "gt": pc.greater, "ge": pc.greater_equal}
_ARROW_TYPES = {"bigint": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(),
                "date": pa.date32(), "varchar": pa.string()}
_TS_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def like_to_regex(pattern: str, escape: str | None) -> str:
    """SQL LIKE → an anchored RE2 pattern (no escape character unless one is given)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "(?s)^" + "".join(out) + "$"


def arrow_type(kind: str, scale: int) -> pa.DataType:
    if kind == "decimal":
        return pa.decimal128(18, scale)
    if kind == "timestamp":
        return pa.timestamp(_TS_UNITS[scale])
    return _ARROW_TYPES[kind]


def evaluate(e: list, values: pa.Array) -> pa.Array | pa.Scalar:
    """Value of SExpr `e` for each string in `values`.

    Besides compiler/ir.py's forms: ["concat", [e, ...], skip_nulls], ["trim", e, chars,
    side], ["substr", e, start, length], ["replace", e, old, new], ["contains" |
    "ends_with" | "strpos" | "regexp_full", e, literal], ["nullif", a, b],
    ["extreme", "max" | "min", [e, ...]], ["distinct", a, b], ["cast", e, kind, scale,
    safe, int type name, decimal precision]; ["joint", ...] tables need two columns
    (joint_lut). Every one follows DuckDB, NULLs included (tests/test_sql_functions.py
    checks them value by value against DuckDB)."""
    tag = e[0]
    if tag == "col":
        return values
    if tag == "lit":
        return pa.scalar(e[1], pa.string())
    if tag in ("lower", "upper"):
        return (pc.utf8_lower if tag == "lower" else pc.utf8_upper)(evaluate(e[1], values))
    if tag == "length":
        return pc.cast(pc.utf8_length(evaluate(e[1], values)), pa.int64())
    if tag == "like":
        _, arg, pattern, ci, escape = e
        return pc.match_substring_regex(evaluate(arg, values), like_to_regex(pattern, escape),
                                        ignore_case=bool(ci))
    if tag == "regexp":
        return _regexp(evaluate(e[1], values), e[2])
    if tag == "starts_with":
        return pc.starts_with(evaluate(e[1], values), e[2])
    if tag == "cmp":
        return _CMP[e[1]](evaluate(e[2], values), evaluate(e[3], values))
    if tag == "in":
        return _is_in(evaluate(e[1], values), e[2])
    if tag == "isnull":
        return pc.is_null(evaluate(e[1], values))
    if tag == "coalesce":
        return pc.coalesce(*[evaluate(x, values) for x in e[1]])
    if tag == "cast":
        return _cast(evaluate(e[1], values), *e[2:])
    fn = _FUNCTIONS.get(tag)
    if fn is None:
        raise ValueError(f"unknown string expression {tag!r}")
    return fn(e, values)


def _regexp(arr, pattern: str):
    try:
        return pc.match_substring_regex(arr, pattern)
    except pa.ArrowInvalid as exc:
        raise DataError(f"invalid regular expression {pattern!r}: {exc}") from None


def _is_in(arr, items: list):
    """SQL IN: TRUE on a match; else NULL if the list holds a NULL; NULL input → NULL."""
    present = [x for x in items if x is not None]
    hit = pc.is_in(arr, value_set=pa.array(present, pa.string()))
    if len(present) < len(items):
        hit = pc.if_else(hit, True, pa.scalar(None, pa.bool_()))
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.bool_()), hit)


def _cast(arr, kind: str, scale: int, safe: bool = True, type_name: str | None = None,
          precision: int = 18) -> pa.Array:
    """CAST of strings as DuckDB's TRY_CAST: NULL where the text does not parse (a plain
    CAST too: engine/sqltext.py says why). `type_name`: the SQL integer type, whose range
    the value must fit; `precision`: a DECIMAL's."""
    if isinstance(arr, pa.Scalar):
        arr = pa.array([arr.as_py()], pa.string())
    return sqltext.cast_strings(arr, kind, scale, type_name, precision)


# -- SQL string functions, per distinct value (pyarrow.compute) ----------------------------
# Each takes the SExpr and the values; NULL in gives NULL out unless DuckDB says otherwise
# (concat skips NULLs; IS DISTINCT FROM is never NULL).

def _array(x, n: int) -> pa.Array:
    """A scalar broadcast to n rows (several kernels mishandle all-scalar arguments)."""
    if isinstance(x, pa.Scalar):
        return pa.array([x.as_py()] * n, x.type)
    return x


def _args(e: list, values: pa.Array) -> list:
    return [_array(evaluate(x, values), len(values)) for x in e]


def _concat(e: list, values: pa.Array):
    """["concat", [e, ...], skip_nulls]: concat() skips NULLs (all NULL gives ''),
    `||` is NULL when any part is."""
    parts = _args(e[1], values)
    if e[2]:
        parts = [pc.fill_null(p, "") for p in parts]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def _trim(e: list, values: pa.Array):
    """["trim", e, characters | None, side]: without characters DuckDB trims spaces only."""
    _, arg, chars, side = e
    fn = {"both": pc.utf8_trim, "left": pc.utf8_ltrim, "right": pc.utf8_rtrim}[side]
    return fn(evaluate(arg, values), characters=" " if chars is None else chars)


def _substr(e: list, values: pa.Array):
    """["substr", e, start, length | None], DuckDB's rules: 1-based; start < 0 counts from
    the end; start 0 is one before the first character; a negative length takes the
    characters before start. Out-of-range parts are clipped (possibly to '')."""
    _, arg, start, length = e
    arr = evaluate(arg, values)
    length = None if length is None else max(min(length, 2 ** 40), -(2 ** 40))
    start = max(min(start, 2 ** 40), -(2 ** 40))
    if start > 0:
        first = start - 1
    elif start < 0:
        first = start                      # from the end: python's negative index
    else:
        first = -1
    if length is None:
        if start == 0:
            return pc.utf8_slice_codeunits(arr, 0)
        return pc.utf8_slice_codeunits(arr, first)
    if length == 0:
        return _empty_like(arr)
    if start >= 0:
        lo, hi = (first, first + length) if length > 0 else (first + length, first)
        if hi <= 0:
            return _empty_like(arr)
        return pc.utf8_slice_codeunits(arr, max(lo, 0), hi)
    lo, hi = (start, start + length) if length > 0 else (start + length, start)
    return pc.utf8_slice_codeunits(arr, lo, hi if hi < 0 else 2 ** 62)


def _empty_like(arr):
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), pa.scalar("", pa.string()))


def _replace(e: list, values: pa.Array):
    _, arg, old, new = e
    arr = evaluate(arg, values)
    if old == "":                          # DuckDB: nothing to replace (pyarrow would loop)
        return arr
    return pc.replace_substring(arr, pattern=old, replacement=new)


def _contains(e: list, values: pa.Array):
    return pc.match_substring(evaluate(e[1], values), e[2])


def _ends_with(e: list, values: pa.Array):
    return pc.ends_with(evaluate(e[1], values), e[2])


def _strpos(e: list, values: pa.Array):
    """["strpos", e, needle]: 1-based position in characters of the first match, 0 if none."""
    arr = _array(evaluate(e[1], values), len(values))
    needle = e[2]
    if needle == "":
        return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.int64()), pa.scalar(1, pa.int64()))
    found = pc.match_substring(arr, needle)
    head = pc.list_element(pc.split_pattern(arr, needle, max_splits=1), 0)
    pos = pc.add(pc.cast(pc.utf8_length(head), pa.int64()), 1)
    return pc.if_else(found, pos, pa.scalar(0, pa.int64()))


def full_match_regex(pattern: str) -> str:
    """regexp_full_match: the pattern must match the whole string."""
    return "^(?:" + pattern + ")$"


def _regexp_full(e: list, values: pa.Array):
    return _regexp(evaluate(e[1], values), full_match_regex(e[2]))


def _nullif(e: list, values: pa.Array):
    a, b = _args(e[1:3], values)
    same = pc.fill_null(pc.equal(a, b), False)
    return pc.if_else(same, pa.scalar(None, a.type), a)


def _extreme(e: list, values: pa.Array):
    """["extreme", "max" | "min", [e, ...]]: greatest / least, skipping NULLs (bytewise
    order, as DuckDB compares strings)."""
    fn = pc.max_element_wise if e[1] == "max" else pc.min_element_wise
    return fn(*_args(e[2], values), skip_nulls=True)


def _distinct(e: list, values: pa.Array):
    """["distinct", a, b]: a IS DISTINCT FROM b (never NULL)."""
    a, b = _args(e[1:3], values)
    return pc.fill_null(pc.not_equal(a, b), pc.xor(pc.is_null(a), pc.is_null(b)))


# -- two string columns: lookup tables over their joint dictionary ---------------------------
# ["joint", e, partner, f, ordered] on column c: entry i is the rank of e(c's value i)
# among the sorted distinct values of e over c's dictionary and f over the partner
# column's. The partner's table is ["joint", f, c, e, ordered]: the same set, so the two
# tables' ranks compare as the strings do (bytewise, DuckDB's binary collation), and
# equal ranks are equal strings. A rule then compares two integers per row. For = <>
# and IS DISTINCT FROM (ordered false) any shared code will do: one hash pass, no sort. The engine builds these tables
# with both columns' dictionaries (joint_lut); sqltext.ENGINE_FEATURES says it can, and
# the binder refuses such rules otherwise.

def partner(e) -> str | None:
    """The other column a lookup table's expression needs, if any."""
    return e[2] if isinstance(e, (list, tuple)) and e and e[0] == "joint" else None


_JOINT_CACHE: list = []                # the last few joint codings (both sides at once)
_JOINT_LOCK = threading.Lock()
_JOINT_KEEP = 4


def joint_lut(e: list, dictionary: pa.Array, partner_dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 codes, validity) for ["joint", e, partner, f, ordered] over `dictionary`,
    plus the entry for a NULL input, as a lookup table holds them.

    Both sides are coded at once (one sort, or one hash pass when only equality is
    asked: `ordered` false) and the partner's half is kept for its own table, which
    the engine builds next with the same two dictionaries."""
    _, mine, _, theirs, *rest = e
    ordered = bool(rest[0]) if rest else True
    key = (json.dumps(mine), json.dumps(theirs), ordered)
    with _JOINT_LOCK:
        for entry in _JOINT_CACHE:
            if entry[0] == key and entry[1] is dictionary and entry[2] is partner_dictionary:
                return entry[3]
    a = _with_null_entry(mine, dictionary)
    b = _with_null_entry(theirs, partner_dictionary)
    both = pa.concat_arrays([a, b])
    if ordered:       # dense ranks: equal strings equal ranks, order bytewise as DuckDB's
        codes = pc.rank(both, sort_keys="ascending", tiebreaker="dense")
    else:
        codes = pc.dictionary_encode(both).indices
    words = np.ascontiguousarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid = np.asarray(both.is_valid(), dtype=np.uint8)
    n = len(a)
    out, partner_out = (words[:n], valid[:n]), (words[n:], valid[n:])
    partner_key = (json.dumps(theirs), json.dumps(mine), ordered)
    with _JOINT_LOCK:
        _JOINT_CACHE.insert(0, (partner_key, partner_dictionary, dictionary, partner_out))
        del _JOINT_CACHE[_JOINT_KEEP:]
    return out


def _with_null_entry(e: list, dictionary: pa.Array) -> pa.Array:
    """e over each dictionary value and over NULL (a lookup table's last entry)."""
    values = pa.concat_arrays([dictionary.cast(pa.string()), pa.array([None], pa.string())])
    out = _array(evaluate(e, values), len(values))
    if out.type != pa.string():
        raise ValueError("joint lookup tables compare strings")
    return out


def _joint(e: list, values: pa.Array):
    raise DataError("comparing string expressions of two columns needs the engine's joint "
                    "lookup tables (strings.joint_lut), which this engine does not build")


_FUNCTIONS = {"concat": _concat, "trim": _trim, "substr": _substr, "replace": _replace,
              "contains": _contains, "ends_with": _ends_with, "strpos": _strpos,
              "regexp_full": _regexp_full, "nullif": _nullif, "extreme": _extreme,
              "distinct": _distinct, "joint": _joint}


# -- fast paths: byte automata, literal sets and counts over the Arrow buffers -----------
# (module docstring). Every fast expression is NULL on a NULL input; anything outside
# them raises _Unsupported while planning, and pyarrow.compute evaluates it.

MAX_DFA_STATES = 512
_MAX_REPEAT = 32


class _Unsupported(Exception):
    """The expression is outside the fast paths: evaluate it with pyarrow.compute."""


# A character class is (negated, frozenset of ASCII code points): it matches one code
# point. Non-ASCII code points appear only through negation (or LIKE literals, as bytes).
_ANY = (True, frozenset())
_DOT = (True, frozenset([10]))           # RE2's '.' without (?s): anything but \n

# regex AST: ("cls", cls) | ("bytes", b) | ("cat", [n]) | ("alt", [n]) | ("rep", n, lo, hi|None)
_META = set("\\.+*?()|[]{}^$")
_CONTROL = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_PUNCT = set("\\.+*?()|[]{}^$-/&~#%'!\"@:;<>=,`_")


class _RegexParser:
    """Recursive descent over the subset of RE2 syntax the DFA path accepts.

    Literals (non-ASCII ones as their UTF-8 bytes), escaped punctuation, \\n \\t and the
    like, '.', classes of ASCII literals and ranges (optionally negated), groups ( ) and
    (?: ), alternation, * + ? {n} {n,} {n,m} (lazy variants too: the same strings
    match), '^' as the first and '$' as the last character. Anything else raises
    _Unsupported, and RE2 evaluates the pattern.
    """

    def __init__(self, pattern: str):
        self.p, self.i = pattern, 0

    def parse(self) -> tuple[list, bool, bool]:
        p = self.p
        anchored_start = p.startswith("^")
        body_end = len(p)
        anchored_end = False
        if p.endswith("$") and len(p) > int(anchored_start):
            # '$' is escaped when an odd run of backslashes precedes it
            k, slashes = len(p) - 2, 0
            while k >= 0 and p[k] == "\\":
                slashes, k = slashes + 1, k - 1
            if slashes % 2 == 0:
                anchored_end, body_end = True, len(p) - 1
        self.p, self.i = p[:body_end], int(anchored_start)
        alts = self.alternatives()
        if self.i != len(self.p):
            raise _Unsupported("unbalanced")
        if len(alts) > 1 and (anchored_start or anchored_end):
            raise _Unsupported("anchor with top-level alternation")
        return ["alt", alts], anchored_start, anchored_end

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def alternatives(self) -> list:
        alts = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            alts.append(self.sequence())
        return alts

    def sequence(self) -> list:
        items = []
        while self.peek() is not None and self.peek() not in "|)":
            atom = self.atom()
            atom = self.quantified(atom)
            items.append(atom)
        return ["cat", items]

    def quantified(self, atom: list) -> list:
        ch = self.peek()
        if ch is None:
            return atom
        if ch in "*+?":
            self.i += 1
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        elif ch == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", self.p[self.i:])
            if not m:
                raise _Unsupported("brace")
            self.i += m.end()
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            if lo > _MAX_REPEAT or (hi is not None and (hi > _MAX_REPEAT or hi < lo)):
                raise _Unsupported("repeat count")
        else:
            return atom
        if self.peek() == "?":
            self.i += 1                       # lazy: same strings match
        if self.peek() is not None and self.peek() in "*+?{":
            raise _Unsupported("double repetition")
        return ["rep", atom, lo, hi]

    def atom(self) -> list:
        ch = self.p[self.i]
        if ch == "(":
            if self.p.startswith("(?:", self.i):
                self.i += 3
            elif self.p.startswith("(?", self.i):
                raise _Unsupported("group flags")
            else:
                self.i += 1
            alts = self.alternatives()
            if self.peek() != ")":
                raise _Unsupported("unbalanced")
            self.i += 1
            return ["alt", alts]
        if ch == "[":
            return ["cls", self.char_class()]
        if ch == ".":
            self.i += 1
            return ["cls", _DOT]
        if ch == "\\":
            return ["cls", (False, frozenset([ord(self.escaped())]))]
        if ch in _META:
            raise _Unsupported(f"metacharacter {ch!r}")
        self.i += 1
        if ord(ch) > 127:
            return ["bytes", ch.encode()]
        return ["cls", (False, frozenset([ord(ch)]))]

    def escaped(self) -> str:
        nxt = self.p[self.i + 1] if self.i + 1 < len(self.p) else None
        if nxt is None or (nxt not in _PUNCT and nxt not in _CONTROL):
            raise _Unsupported("escape")
        self.i += 2
        return _CONTROL.get(nxt, nxt)

    def char_class(self) -> tuple[bool, frozenset]:
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.peek() in ("]", None):
            raise _Unsupported("class starting with ]")
        members: set[int] = set()
        while True:
            ch = self.peek()
            if ch is None or ch == "[":
                raise _Unsupported("class")
            if ch == "]":
                self.i += 1
                break
            lo = self.class_char()
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                hi = self.class_char()
                if hi < lo:
                    raise _Unsupported("range")
                members.update(range(lo, hi + 1))
            else:
                members.add(lo)
        return negated, frozenset(members)

    def class_char(self) -> int:
        ch = self.peek()
        if ch == "\\":
            return ord(self.escaped())
        if ch is None or ch in "[]" or ord(ch) > 127:
            raise _Unsupported("class")
        self.i += 1
        return ord(ch)


def _like_ast(pattern: str, escape: str | None) -> list:
    """SQL LIKE (case-sensitive) → AST; same escape rules as like_to_regex."""
    items, i, lit = [], 0, bytearray()

    def flush():
        if lit:
            items.append(["bytes", bytes(lit)])
            lit.clear()

    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            lit.extend(pattern[i + 1].encode())
            i += 2
            continue
        if ch == "%":
            flush()
            items.append(["rep", ["cls", _ANY], 0, None])
        elif ch == "_":
            flush()
            items.append(["cls", _ANY])
        else:
            lit.extend(ch.encode())
        i += 1
    flush()
    return ["cat", items]


_CONT = (0x80, 0xBF)      # UTF-8 continuation bytes
_LEADS = (0xC0, 0xFF)     # first bytes of non-ASCII code points


class _NFA:
    """Thompson NFA over bytes: states hold (lo, hi, target) byte ranges and ε-edges.

    In `codepoints` mode (every literal is ASCII) the automaton reads one symbol per
    code point: its first byte. Continuation bytes are skipped (the DFA stays put on
    them), so a non-ASCII code point is just a lead byte, which negated classes match
    and nothing else does. Otherwise code points are spelled out as UTF-8 sequences.
    """

    def __init__(self, codepoints: bool):
        self.codepoints = codepoints
        self.edges: list[list[tuple[int, int, int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, node: list) -> tuple[int, int]:
        tag = node[0]
        if tag == "cls":
            return self.char(node[1])
        if tag == "bytes":
            start = cur = self.state()
            for b in node[1]:
                nxt = self.state()
                self.edges[cur].append((b, b, nxt))
                cur = nxt
            return start, cur
        if tag == "cat":
            start = cur = self.state()
            for item in node[1]:
                s, e = self.build(item)
                self.eps[cur].append(s)
                cur = e
            return start, cur
        if tag == "alt":
            start, end = self.state(), self.state()
            for item in node[1]:
                s, e = self.build(item)
                self.eps[start].append(s)
                self.eps[e].append(end)
            return start, end
        if tag == "rep":
            _, sub, lo, hi = node
            start = cur = self.state()
            for _ in range(lo):
                s, e = self.build(sub)
                self.eps[cur].append(s)
                cur = e
            end = self.state()
            self.eps[cur].append(end)
            if hi is None:
                s, e = self.build(sub)
                self.eps[cur].append(s)
                self.eps[e].append(cur)
            else:
                for _ in range(hi - lo):
                    s, e = self.build(sub)
                    self.eps[cur].append(s)
                    self.eps[e].append(end)
                    cur = e
            return start, end
        raise AssertionError(tag)

    def char(self, cls: tuple[bool, frozenset]) -> tuple[int, int]:
        """One code point of the class."""
        negated, members = cls
        start, end = self.state(), self.state()
        for lo, hi in _runs([b for b in range(128) if (b in members) != negated]):
            self.edges[start].append((lo, hi, end))
        if negated and self.codepoints:
            self.edges[start].append((_LEADS[0], _LEADS[1], end))
        elif negated:             # a lead byte, then its continuation bytes
            for lead_lo, lead_hi, tail in ((0xC0, 0xDF, 1), (0xE0, 0xEF, 2), (0xF0, 0xFF, 3)):
                cur = self.state()
                self.edges[start].append((lead_lo, lead_hi, cur))
                for k in range(tail):
                    nxt = end if k == tail - 1 else self.state()
                    self.edges[cur].append((_CONT[0], _CONT[1], nxt))
                    cur = nxt
        return start, end


def _runs(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _ascii_only(node) -> bool:
    if node[0] == "bytes":
        return all(b < 128 for b in node[1])
    if node[0] in ("cat", "alt"):
        return all(_ascii_only(x) for x in node[1])
    if node[0] == "rep":
        return _ascii_only(node[1])
    return True


_STAY, _NEXT, _DEAD, _MATCH, _JUMP = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Dfa:
    """A byte DFA in the layout the kernel reads.

    Live states are numbered so that a state's usual successor is the next number (a
    walk from the start), and the two terminal states (no match / a match whatever
    follows) are not numbered. ``act[s * 256 + b]`` says what byte b does in state s:
    _STAY, _NEXT (s + 1), _DEAD, _MATCH, or _JUMP to ``trans[s * 256 + b]``. So the
    kernel's next state rarely waits for a table look-up: the branch on the action is
    predicted and s + 1 is known at once. ``final[s]`` is the verdict when the string
    ends in s. A skip state (``skip[s]``) stays put on most bytes: the kernel scans
    ahead to the next byte that does not, 8 bytes at a time where ``swar[s]`` allows
    (every such ASCII byte is one of three; any byte >= 0x80 is a candidate when the
    mask is set). A match must start with ``prefix[:nprefix]``: compared directly,
    then the DFA goes on from ``after_prefix``. ``sparse``: the same automaton for the
    sparse kernel, where it qualifies (Sparse).
    """

    act: np.ndarray
    trans: np.ndarray
    final: np.ndarray
    skip: np.ndarray
    swar: np.ndarray      # [state, 5] uint64: 3 stop bytes broadcast, high-bit mask, usable
    start: int            # -1: dead at once, -2: a match at once
    prefix: np.ndarray
    nprefix: int
    after_prefix: int     # state after the prefix; -1 / -2 as for start
    states: int           # before the terminal states were dropped (for tests and stats)
    sparse: "Sparse | None" = None


def compile_dfa(ast: list, anchored_start: bool, anchored_end: bool) -> Dfa:
    """Subset construction, minimization, kernel layout. Raises _Unsupported if large."""
    codepoints = _ascii_only(ast)
    nfa = _NFA(codepoints)
    start, accept = nfa.build(ast)
    if not anchored_start:             # search: anything may come first
        pre = nfa.state()
        nfa.edges[pre].append((0, 255, pre))
        nfa.eps[pre].append(start)
        start = pre
    # byte classes: bytes no edge tells apart (continuation bytes always a class)
    cuts = {0, 256, _CONT[0], _CONT[1] + 1}
    for edges in nfa.edges:
        for lo, hi, _ in edges:
            cuts.update((lo, hi + 1))
    bounds = sorted(cuts)
    cls = np.zeros(256, dtype=np.int64)
    reps = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        cls[lo:hi] = k
        reps.append(lo)
    cont = int(cls[_CONT[0]])

    def closure(states) -> frozenset:
        seen, todo = set(states), list(states)
        while todo:
            for t in nfa.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    first = closure([start])
    index, order, rows = {first: 0}, [first], []
    k = 0
    while k < len(order):
        cur = order[k]
        k += 1
        row = []
        for c, b in enumerate(reps):
            if codepoints and c == cont:
                row.append(index[cur])       # continuation bytes: stay
                continue
            nxt = closure([t for s in cur for lo, hi, t in nfa.edges[s] if lo <= b <= hi])
            if nxt not in index:
                if len(order) >= MAX_DFA_STATES:
                    raise _Unsupported("too many DFA states")
                index[nxt] = len(order)
                order.append(nxt)
            row.append(index[nxt])
        rows.append(row)
    final = np.array([int(accept in st) for st in order], dtype=np.uint8)
    table = np.array(rows, dtype=np.int64).reshape(len(order), len(reps))
    if not anchored_end:               # a search is decided at its first match
        for st in np.flatnonzero(final):
            table[st] = st
    table, reps = _minimize(table, final)
    return _layout(table, cls, final[reps], codepoints)


def _minimize(table: np.ndarray, final: np.ndarray):
    """Moore's partition refinement: merge states no input tells apart.

    Returns (table over blocks, one representative state per block); block 0 holds
    state 0, the start.
    """
    block = final.astype(np.int64)
    while True:
        sig = np.concatenate([block[:, None], block[table]], axis=1)
        _, new = np.unique(sig, axis=0, return_inverse=True)
        new = new.ravel()
        if new.max() == block.max():
            break
        block = new
    _, first = np.unique(block, return_index=True)
    order = np.argsort(first)                  # blocks by first state: start's block first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    block = rank[block]
    reps = first[order]
    return block[table[reps]], reps


def _layout(table: np.ndarray, cls: np.ndarray, final: np.ndarray, codepoints: bool) -> Dfa:
    """Number the live states along the usual path, classify each transition, and find
    the literal bytes every match starts with."""
    nstates = table.shape[0]
    full = table[:, cls]                                        # [state, byte]
    home = np.arange(nstates)[:, None]
    symbols = np.ones(256, dtype=bool)
    if codepoints:
        symbols[_CONT[0]:_CONT[1] + 1] = False                  # never move the state
    stays = ((full == home) | ~symbols).all(axis=1)
    term = np.where(stays, np.where(final != 0, 2, 1), 0)      # the verdict cannot change
    # number live states depth first from the start, the successor most bytes lead to
    # first, so that runs of states follow each other
    order: list[int] = []
    seen = set()
    todo = [0]
    while todo:
        st = todo.pop()
        if st in seen or term[st]:
            continue
        seen.add(st)
        order.append(st)
        succ, counts = np.unique(full[st][symbols], return_counts=True)
        nxt = [int(x) for _, x in sorted(zip(counts, succ)) if x != st and not term[x] and x not in seen]
        todo.extend(nxt)                     # the most common successor is popped first
    nlive = len(order)
    rank = np.full(nstates, -1, dtype=np.int64)
    rank[order] = np.arange(nlive)
    code = np.where(term == 1, -1, -2)       # terminal states as -1 (dead) / -2 (match)
    target = np.where(term[full] != 0, code[full], rank[full])    # [state, byte]
    act = np.full((max(nlive, 1), 256), _DEAD, dtype=np.uint8)
    trans = np.zeros((max(nlive, 1), 256), dtype=np.int64)
    skip = np.zeros(max(nlive, 1), dtype=np.uint8)
    swar = np.zeros((max(nlive, 1), 5), dtype=np.uint64)
    for k, st in enumerate(order):
        t = target[st]
        a = np.full(256, _JUMP, dtype=np.uint8)
        a[t == k] = _STAY
        a[t == k + 1] = _NEXT
        a[t == -1] = _DEAD
        a[t == -2] = _MATCH
        act[k] = a
        trans[k] = np.maximum(t, 0)
        stops = np.flatnonzero(a != _STAY)
        if (a == _STAY)[symbols].sum() >= 32:
            skip[k] = 1
            low = [int(b) for b in stops if b < 128] or [0]
            if len(low) <= 3:
                swar[k, :3] = [b * 0x0101010101010101 for b in (low * 3)[:3]]
                swar[k, 3] = 0x8080808080808080 if (stops >= 128).any() else 0
                swar[k, 4] = 1
    # a literal prefix: from the start, while one byte alone avoids the dead state
    prefix, state = bytearray(), 0
    while term[state] == 0 and not final[state] and len(prefix) < 64:
        live = np.flatnonzero((term[full[state]] != 1) & symbols)
        if len(live) != 1:
            break
        prefix.append(int(live[0]))
        state = int(full[state, live[0]])

    def number(st: int) -> int:
        return int(rank[st]) if not term[st] else int(code[st])

    return Dfa(np.ascontiguousarray(act.ravel()), np.ascontiguousarray(trans.ravel()),
               np.array([final[st] for st in order] or [0], dtype=np.uint8), skip, swar,
               number(0), np.frombuffer(bytes(prefix) or b"\0", dtype=np.uint8).copy(),
               len(prefix), number(state), nstates,
               _sparse(full, final, term, symbols) if codepoints else None)


@dataclass(frozen=True)
class Sparse:
    """A DFA in which at most three ASCII bytes matter and a run of any other code
    points acts like one (``x[x[s]] == x[s]``, as in ``[^@]+`` or ``%``): a row is
    decided by where those bytes are and whether the gaps between them are empty. The
    kernel finds them 8 bytes at a time and makes one move per byte found and per gap.

    ``x[s]``: the move on a non-empty gap; ``on[s * 4 + k]``: on special byte k (index
    ``kind[b]``; k = 3 for padding bytes, a gap of one); ``term[s]``: 1 dead, 2 a match
    whatever follows (both absorbing: the DFA is minimized); ``final[s]``: the verdict
    at the end.

    The kernel reads two tables composed from these, so that a row's moves are one
    dependent load per special byte and one at the end (the chain of loads through the
    state is what a row costs): ``step[s * 8 + g * 4 + k]`` is the move on special byte
    k after a gap (g = 1) or none (g = 0), ``verdict[s * 2 + g]`` the verdict at the
    end after a trailing gap or none.
    """

    patterns: np.ndarray      # 3 uint64: the special bytes, broadcast (the last repeated)
    kind: np.ndarray          # int64[256]
    x: np.ndarray
    on: np.ndarray
    term: np.ndarray
    final: np.ndarray
    step: np.ndarray
    verdict: np.ndarray

    @classmethod
    def of(cls, patterns, kind, x: np.ndarray, on: np.ndarray, term: np.ndarray, final: np.ndarray) -> "Sparse":
        moves = on.reshape(-1, 4)
        step = np.ascontiguousarray(np.stack([moves, moves[x]], axis=1).ravel())

        def hit(s: int) -> bool:
            return bool(term[s] == 2 or (term[s] == 0 and final[s]))
        verdict = np.array([[hit(s), hit(int(x[s])) if term[s] == 0 else hit(s)] for s in range(len(x))],
                           dtype=np.uint8).ravel()
        return cls(patterns, kind, x, on, term, final, step, verdict)


def _sparse(full: np.ndarray, final: np.ndarray, term: np.ndarray, symbols: np.ndarray) -> Sparse | None:
    columns, counts = np.unique(full[:, symbols].T, axis=0, return_counts=True)
    x = columns[np.argmax(counts)]                 # what most code points do
    special = [b for b in range(256) if symbols[b] and (full[:, b] != x).any()]
    if len(special) > 3 or any(b >= 128 for b in special) or (x[x] != x).any():
        return None
    kind = np.full(256, 3, dtype=np.int64)
    on = np.repeat(x[:, None], 4, axis=1)
    for k, b in enumerate(special):
        kind[b] = k
        on[:, k] = full[:, b]
    pad = (special + special[-1:] * 2)[:3] if special else [0, 0, 0]   # the kernel counts distinct ones
    return Sparse.of(np.array([b * 0x0101010101010101 for b in pad], dtype=np.uint64), kind,
                     x.astype(np.int64), np.ascontiguousarray(on.ravel()).astype(np.int64),
                     term.astype(np.uint8), final.astype(np.uint8))


@dataclass(frozen=True)
class FastPlan:
    """How a fast kernel evaluates one string expression."""

    kind: str                     # "dfa", "set" or "length"
    dfa: Dfa | None = None
    words: "_Words | None" = None
    negate: bool = False          # <>: the literal set holds the '=' side
    miss_is_null: bool = False    # IN with a NULL in the list: no match is NULL


_PLANS: dict[str, FastPlan | None] = {}


def fast_plan(e: list) -> FastPlan | None:
    """A kernel for `e`, or None when it is left to pyarrow.compute."""
    key = json.dumps(e)
    if key not in _PLANS:
        try:
            _PLANS[key] = _plan(e)
        except _Unsupported:
            _PLANS[key] = None
    return _PLANS[key]


def _plan(e: list) -> FastPlan:
    tag = e[0]
    if tag != "cmp" and (len(e) < 2 or e[1] != ["col"]):
        raise _Unsupported("argument is not the column itself")
    if tag == "length":
        return FastPlan("length")
    if tag == "like":
        _, _, pattern, ci, escape = e
        if ci:
            raise _Unsupported("ILIKE: Unicode case folding")
        return FastPlan("dfa", compile_dfa(_like_ast(pattern, escape), True, True))
    if tag in ("starts_with", "ends_with", "contains"):
        anything = ["rep", ["cls", _ANY], 0, None]
        head = [anything] if tag != "starts_with" else []
        tail = [anything] if tag != "ends_with" else []
        ast = ["cat", head + [["bytes", e[2].encode()]] + tail]
        return FastPlan("dfa", compile_dfa(ast, True, True))
    if tag == "regexp_full":
        ast, a0, a1 = _RegexParser(full_match_regex(e[2])).parse()
        return FastPlan("dfa", compile_dfa(ast, a0, a1))
    if tag == "regexp":
        ast, a0, a1 = _RegexParser(e[2]).parse()
        return FastPlan("dfa", compile_dfa(ast, a0, a1))
    if tag == "in":
        present = [x for x in e[2] if x is not None]
        return FastPlan("set", words=_Words.of(present), miss_is_null=len(present) < len(e[2]))
    if tag == "cmp":
        _, op, a, b = e
        if a != ["col"]:
            a, b = b, a
        if op not in ("eq", "ne") or a != ["col"] or b[0] != "lit" or b[1] is None:
            raise _Unsupported("comparison")
        return FastPlan("set", words=_Words.of([b[1]]), negate=op == "ne")
    raise _Unsupported(tag)


@dataclass(frozen=True)
class _Words:
    """Literal strings for = and IN, as UTF-8 bytes grouped by length: the ones of
    length L are data[offsets[k]:offsets[k + 1]] for k in range(by_len[L], by_len[L + 1]).

    Literals of up to 16 bytes also sit in a collision-free hash table: a row of up to
    16 bytes is two zero-padded little-endian words, hashed to one slot and compared
    there, with no branch that depends on the row (rows of random statuses made the
    length-grouped scan mispredict about once a row). ``table[slot]`` = (word 0, word
    1, length; -1 when empty), slot = (_short_hash(...) * mult) >> shift.
    """

    data: np.ndarray
    offsets: np.ndarray
    by_len: np.ndarray
    table: np.ndarray         # uint64 (slots, 3)
    mult: np.uint64
    shift: np.uint64

    @classmethod
    def of(cls, values: list[str]) -> "_Words":
        raw = sorted(set(v.encode() for v in values), key=lambda b: (len(b), b))
        maxlen = max((len(b) for b in raw), default=0)
        by_len = np.searchsorted(np.array([len(b) for b in raw], dtype=np.int64),
                                 np.arange(maxlen + 2), side="left").astype(np.int64)
        offsets = np.zeros(len(raw) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(b) for b in raw])
        data = np.frombuffer(b"".join(raw) + b"\0", dtype=np.uint8).copy()
        return cls(data, offsets, by_len, *_short_table([b for b in raw if len(b) <= 16]))


_SHORT_SLOTS_MAX = 1 << 16


def _short_table(raw: list[bytes]) -> tuple[np.ndarray, np.uint64, np.uint64]:
    """A collision-free table of these short literals (see _Words), or an empty one
    (mult 0) when none is found within _SHORT_SLOTS_MAX slots: the kernel then scans."""
    keys = np.array([[int.from_bytes(b[:8], "little"), int.from_bytes(b[8:16], "little"), len(b)]
                     for b in raw], dtype=np.uint64).reshape(-1, 3)
    hashes = _short_hash.py_func(keys[:, 0], keys[:, 1], keys[:, 2])   # numpy: wraps like the kernel
    rng = np.random.default_rng(0)
    bits = max(2, int(np.ceil(np.log2(len(raw) + 1))) + 1)
    while (1 << bits) <= _SHORT_SLOTS_MAX and len(raw):
        for _ in range(32):
            mult = np.uint64(int(rng.integers(1, 1 << 62)) * 2 + 1)
            shift = np.uint64(64 - bits)
            slots = (hashes * mult) >> shift
            if len(np.unique(slots)) == len(raw):
                table = np.full((1 << bits, 3), np.iinfo(np.uint64).max, dtype=np.uint64)
                table[slots.astype(np.int64)] = keys
                return table, mult, shift
        bits += 1
    return np.full((1, 3), np.iinfo(np.uint64).max, dtype=np.uint64), np.uint64(0), np.uint64(63)


@numba.njit(inline="always")
def _short_hash(w0, w1, n):
    h = (w0 * _K0) ^ (w1 * _K1) ^ (n * _K2)
    return h ^ (h >> np.uint64(29))


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(offsets of rows 0..n, data, validity bitmap, bit offset or -1) of a string array."""
    if pa.types.is_large_string(values.type):
        offsets_dtype = np.int64
    elif pa.types.is_string(values.type):
        offsets_dtype = np.int32
    else:
        raise _Unsupported(str(values.type))
    bufs = values.buffers()
    n = len(values)
    if bufs[1] is not None:
        offsets = np.frombuffer(bufs[1], dtype=offsets_dtype, count=values.offset + n + 1)[values.offset:]
    else:
        offsets = _read_only(np.zeros(n + 1, offsets_dtype))
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else _EMPTY
    if values.null_count == 0 or bufs[0] is None:
        return offsets, data, _EMPTY, -1
    return offsets, data, np.frombuffer(bufs[0], dtype=np.uint8), values.offset


def _read_only(a: np.ndarray) -> np.ndarray:
    """Like the arrays over Arrow buffers, so kernels see one signature, not two."""
    a.flags.writeable = False
    return a


_EMPTY = _read_only(np.zeros(1, dtype=np.uint8))


def run_fast(plan: FastPlan, buffers, words: np.ndarray, valid: np.ndarray, lo: int, hi: int) -> None:
    """Entries [lo, hi) of a lookup table for the rows of `buffers` (string_buffers)."""
    offsets, data, bitmap, bitoff = buffers
    if plan.kind == "length":
        _length_kernel(offsets, data, bitmap, bitoff, lo, hi, words, valid)
        return
    if plan.kind == "set":
        w = plan.words
        _set_kernel(offsets, data, bitmap, bitoff, lo, hi, w.data, w.offsets, w.by_len, w.table,
                    w.mult, w.shift, plan.negate, plan.miss_is_null, words, valid)
        return
    d = plan.dfa
    if d.sparse is not None:
        sp = d.sparse
        _sparse_kernel(offsets, data, bitmap, bitoff, lo, hi, sp.patterns, sp.kind, sp.step,
                       sp.term, sp.verdict, plan.negate, plan.miss_is_null, words, valid)
        return
    _dfa_kernel(offsets, data, bitmap, bitoff, lo, hi, d.act, d.trans, d.final, d.skip, d.swar,
                d.start, d.prefix, d.nprefix,
                np.uint64(int.from_bytes(d.prefix[:8].tobytes(), "little")),
                np.uint64((1 << (8 * min(d.nprefix, 8))) - 1), d.after_prefix,
                plan.negate, plan.miss_is_null, words, valid)


@intrinsic
def _trailing_zeros(typingctx, x):
    sig = nbt.int64(nbt.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))
    return sig, codegen


_ONE = np.uint64(1)
_LOW_ONES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)


@numba.njit(nogil=True, inline="always")
def _is_null(bitmap, bitoff, i):
    """Row i is NULL by its Arrow validity bitmap (bit offset -1: no NULLs)."""
    if bitoff < 0:
        return False
    bit = bitoff + i
    return not (bitmap[bit >> 3] >> (bit & 7)) & 1


@numba.njit(nogil=True, inline="always")
def _zero_byte(x):
    """Nonzero iff some byte of x is zero."""
    return (x - _LOW_ONES) & ~x & _HIGH_BITS


@numba.njit(nogil=True, cache=True)
def _dfa_kernel(offsets, data, bitmap, bitoff, lo, hi, act, trans, final, skip, swar, start,
                prefix, nprefix, prefix_word, prefix_mask, after_prefix, negate, miss_is_null,
                words, valid):
    """Run the DFA (see Dfa) over rows [lo, hi)."""
    ndata = data.shape[0]
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        j = np.int64(offsets[i])
        end = np.int64(offsets[i + 1])
        s = start
        if nprefix:
            ok = end - j >= nprefix
            if ok and nprefix <= 8 and j + 8 <= ndata:
                ok = ((load_u64(data, j) ^ prefix_word) & prefix_mask) == 0
            elif ok:
                for k in range(nprefix):
                    if data[j + k] != prefix[k]:
                        ok = False
                        break
            s = after_prefix if ok else -1
            j += nprefix
        # s >= 0: a live state; -1: no match; -2: a match, whatever follows
        while s >= 0 and j < end:
            base = s << 8
            if skip[s]:
                found = False
                if swar[s, 4]:
                    p0, p1, p2, high = swar[s, 0], swar[s, 1], swar[s, 2], swar[s, 3]
                    # words may reach past the row (not past the buffer): bytes beyond
                    # `end` are masked off, so short rows take one step and no byte loop
                    while j + 8 <= ndata:
                        x = load_u64(data, j)
                        hits = _zero_byte(x ^ p0) | _zero_byte(x ^ p1) | _zero_byte(x ^ p2) | (x & high)
                        left = end - j
                        if left < 8:
                            hits &= (_ONE << np.uint64(8 * left)) - _ONE
                        if hits != 0:   # the lowest flagged byte is the first candidate
                            shift = _trailing_zeros(hits) & 56
                            j += shift >> 3
                            b = np.int64((x >> np.uint64(shift)) & np.uint64(255))
                            if act[base + b] != _STAY:
                                found = True
                                break
                            j += 1      # a byte >= 0x80 that does not move it
                            if j >= end:
                                break
                        elif left <= 8:
                            j = end
                            break
                        else:
                            j += 8
                if not found:
                    while j < end and act[base + data[j]] == _STAY:
                        j += 1
                    if j >= end:
                        break
            b = np.int64(data[j])
            j += 1
            a = act[base + b]
            if a == _NEXT:
                s += 1
            elif a == _STAY:
                pass
            elif a == _DEAD:
                s = -1
            elif a == _MATCH:
                s = -2
            else:
                s = trans[base + b]
        hit = s == -2 or (s >= 0 and final[s] != 0)
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null else 1


@numba.njit(nogil=True, cache=True)
def _length_kernel(offsets, data, bitmap, bitoff, lo, hi, words, valid):
    """Code points per row: bytes that are not UTF-8 continuation bytes (10xxxxxx)."""
    if hi <= lo:
        return
    chunk = data[np.int64(offsets[lo]):np.int64(offsets[hi])]
    seen = np.uint8(0)
    for j in range(chunk.shape[0]):
        seen |= chunk[j]
    ascii_only = seen < 128
    for i in range(lo, hi):
        a = np.int64(offsets[i])
        b = np.int64(offsets[i + 1])
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        if ascii_only:
            words[i] = b - a
        else:
            row = data[a:b]
            n = 0
            for j in range(row.shape[0]):
                n += (row[j] & 0xC0) != 0x80
            words[i] = n
        valid[i] = 1


@numba.njit(nogil=True, cache=True)
def _set_kernel(offsets, data, bitmap, bitoff, lo, hi, wdata, woffsets, by_len, table, mult, shift,
                negate, miss_is_null, words, valid):
    """Whether each row equals one of the literal strings: up to 16 bytes by one probe
    of the literals' hash table (_Words), longer ones against the literals of their
    length, byte by byte."""
    maxlen = by_len.shape[0] - 2
    ndata = data.shape[0]
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        a = np.int64(offsets[i])
        n = np.int64(offsets[i + 1]) - a
        hit = False
        if n <= 16 and mult != 0:
            if a + 16 <= ndata:
                w0 = load_u64(data, a) & _MASKS[min(8 * n, 64)]
                w1 = load_u64(data, a + 8) & _MASKS[max(8 * n - 64, 0)]
            else:
                w0 = _load_head(data, a, n)
                w1 = _load_head(data, a + 8, n - 8)
            slot = np.int64((_short_hash(w0, w1, np.uint64(n)) * mult) >> shift)
            hit = (table[slot, 0] == w0) & (table[slot, 1] == w1) & (table[slot, 2] == np.uint64(n))
        elif n <= maxlen:
            for k in range(by_len[n], by_len[n + 1]):
                w = woffsets[k]
                same = True
                for m in range(n):
                    if data[a + m] != wdata[w + m]:
                        same = False
                        break
                if same:
                    hit = True
                    break
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null and not negate else 1


# -- dictionary encoding of a low-cardinality column --------------------------------------

ENCODE_MAX_DISTINCT = 4096          # codes are uint16
_K0, _K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)


def encode(values: pa.Array) -> tuple[np.ndarray, pa.Array] | None:
    """(uint16 codes, dictionary) of a string array with few distinct values, or None
    when it has more than ENCODE_MAX_DISTINCT. Codes of NULL rows are 0; the dictionary
    holds no NULL. Several times faster than pc.dictionary_encode on short strings.
    Two-byte codes: a quarter of the memory traffic of int64 words, for the encoder
    writing them and the kernel reading them."""
    try:
        buffers = string_buffers(values)
    except _Unsupported:
        return None
    offsets, data, bitmap, bitoff = buffers
    codes = np.zeros(len(values), dtype=np.uint16)
    first = np.zeros(ENCODE_MAX_DISTINCT, dtype=np.int64)
    ndistinct = _encode_kernel(offsets, data, bitmap, bitoff, codes, first)
    if ndistinct < 0:
        return None
    dictionary = values.take(pa.array(first[:ndistinct]))
    return codes, dictionary


@numba.njit(nogil=True, inline="always")
def _load_head(data, a, n):
    """The first min(n, 8) bytes at data[a:] as a little-endian uint64, zero-filled."""
    if n <= 0:
        return np.uint64(0)
    if a + 8 <= data.shape[0]:
        x = load_u64(data, a)
        if n < 8:
            x &= (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
        return x
    x = np.uint64(0)
    for k in range(min(n, 8)):
        x |= np.uint64(data[a + k]) << np.uint64(8 * k)
    return x


@numba.njit(nogil=True, inline="always")
def _slot_of(w0, w1, n, mask):
    h = (w0 * _K0) ^ (w1 * _K1) ^ (np.uint64(n) * _K2)
    h ^= h >> np.uint64(29)
    return np.int64((h * _K1) >> np.uint64(40)) & mask


@numba.njit(nogil=True, cache=True)
def _grow(table, mask):
    """The open-addressing table rehashed into twice the slots."""
    bigger = np.zeros((2 * table.shape[0], 4), dtype=np.uint64)
    new_mask = 2 * table.shape[0] - 1
    for t in range(table.shape[0]):
        if table[t, 3] != 0:
            s = _slot_of(table[t, 0], table[t, 1], np.int64(table[t, 2]), new_mask)
            while bigger[s, 3] != 0:
                s = (s + 1) & new_mask
            bigger[s] = table[t]
    return bigger, new_mask


@numba.njit(nogil=True, cache=True)
def _encode_kernel(offsets, data, bitmap, bitoff, codes, first):
    """Hash each row's bytes into an open-addressing table of distinct values; -1 once
    there are more than first.shape[0] of them. Strings of up to 16 bytes are two
    zero-padded words, hashed and compared without a loop.

    The table starts at 64 slots and doubles at half full: a row (w0, w1, length,
    code + 1; 0 empty) per slot, so a probe touches one cache line, and a column of
    a few statuses probes a table that stays in L1."""
    cap = first.shape[0]
    table = np.zeros((64, 4), dtype=np.uint64)
    mask = 63
    ndistinct = 0
    ndata = data.shape[0]
    for i in range(codes.shape[0]):
        if _is_null(bitmap, bitoff, i):
            continue
        a = np.int64(offsets[i])
        n = np.int64(offsets[i + 1]) - a
        short = n <= 16
        if short and a + 16 <= ndata:
            w0 = load_u64(data, a)
            w1 = load_u64(data, a + 8)
            keep = 8 * n
            w0 &= _MASKS[min(keep, 64)]
            w1 &= _MASKS[max(keep - 64, 0)]
        elif short:
            w0 = _load_head(data, a, n)
            w1 = _load_head(data, a + 8, n - 8)
        else:
            w0 = np.uint64(0)
            w1 = np.uint64(0)
            k = 0
            while k < n:
                w1 = (w1 ^ _load_head(data, a + k, n - k)) * _K0
                k += 8
        s = _slot_of(w0, w1, n, mask)
        while True:
            c = table[s, 3]
            if c == 0:                          # a new value
                if ndistinct == cap:
                    return -1
                table[s, 0] = w0
                table[s, 1] = w1
                table[s, 2] = np.uint64(n)
                table[s, 3] = np.uint64(ndistinct + 1)
                first[ndistinct] = i
                codes[i] = ndistinct
                ndistinct += 1
                if 2 * ndistinct > mask:
                    table, mask = _grow(table, mask)
                break
            if table[s, 0] == w0 and table[s, 1] == w1 and table[s, 2] == np.uint64(n):
                code = np.int64(c) - 1
                same = True
                if not short:                   # words were a digest: compare the bytes
                    b = np.int64(offsets[first[code]])
                    k = 0
                    while same and k < n:
                        same = _load_head(data, a + k, n - k) == _load_head(data, b + k, n - k)
                        k += 8
                if same:
                    codes[i] = code
                    break
            s = (s + 1) & mask
    return ndistinct


_MASKS = np.array([(1 << b) - 1 if b < 64 else (1 << 64) - 1 for b in range(65)], dtype=np.uint64)


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)


@numba.njit(nogil=True, inline="always")
def _equal_bytes(x, pattern):
    """The high bit of each byte of x that equals the pattern's byte (exact, no borrow)."""
    y = x ^ pattern
    return ~(((y & _LOW7) + _LOW7) | y | _LOW7)


_GATHER = np.uint64(0x0102040810204080)   # bit 0 of byte k -> bit 56 + k (no carries)


@numba.njit(nogil=True, inline="always")
def _byte_bits(hits):
    """The high bit of each byte of `hits` -> bit k for byte k."""
    return np.uint8(((hits >> np.uint64(7)) * _GATHER) >> np.uint64(56))


@numba.njit(nogil=True, cache=True)
def _special_bits(data, d0, d1, p0, p1, p2, nspecial):
    """A bitmap of data[d0:d1]: bit k set iff data[d0 + k] is special. Eight bytes per
    step; one loop per number of special bytes, so that each is branch-free and
    vectorizes (a test inside the loop, or comparing against all three patterns
    always, made this pass 2-3x slower). 16 zero bytes of padding let readers load
    any 8 bytes."""
    n = d1 - d0
    whole = min(n >> 3, (data.shape[0] - d0) >> 3)
    bits = np.empty((n >> 3) + 16, dtype=np.uint8)
    bits[whole:] = 0
    if nspecial == 1:
        for m in range(whole):
            bits[m] = _byte_bits(_equal_bytes(load_u64(data, d0 + 8 * m), p0))
    elif nspecial == 2:
        for m in range(whole):
            w = load_u64(data, d0 + 8 * m)
            bits[m] = _byte_bits(_equal_bytes(w, p0) | _equal_bytes(w, p1))
    else:
        for m in range(whole):
            w = load_u64(data, d0 + 8 * m)
            bits[m] = _byte_bits(_equal_bytes(w, p0) | _equal_bytes(w, p1) | _equal_bytes(w, p2))
    for k in range(8 * whole, n):                        # the last few bytes, one at a time
        b = np.uint64(data[d0 + k]) * _LOW_ONES
        if b == p0 or b == p1 or b == p2:
            bits[k >> 3] |= np.uint8(1 << (k & 7))
    return bits


@numba.njit(nogil=True, cache=True)
def _sparse_kernel(offsets, data, bitmap, bitoff, lo, hi, patterns, kind, step, term, verdict,
                   negate, miss_is_null, words, valid):
    """Run a Sparse DFA over rows [lo, hi).

    One branch-free pass marks the special bytes of the rows' data in a bitmap (1 bit
    per byte); each row then reads its bits 56 at a time and moves once per special
    byte found (with the gap before it, if any), so a row of up to 56 bytes is one load.
    """
    if hi <= lo:
        return
    p0, p1, p2 = patterns[0], patterns[1], patterns[2]
    nspecial = 1 if p1 == p0 else (2 if p2 == p1 else 3)
    only = kind[np.int64(p0 & np.uint64(255))]   # one special byte: its kind, without reading it
    d0 = np.int64(offsets[lo])
    bits = _special_bits(data, d0, np.int64(offsets[hi]), p0, p1, p2, nspecial)
    for i in range(lo, hi):
        if _is_null(bitmap, bitoff, i):
            words[i] = 0
            valid[i] = 0
            continue
        a = np.int64(offsets[i]) - d0
        end = np.int64(offsets[i + 1]) - d0
        s = np.int64(0)
        last = a - 1                      # where the last special byte was
        j = a
        while j < end and term[s] == 0:
            take = min(end - j, 56)
            win = (load_u64(bits, j >> 3) >> np.uint64(j & 7)) & ((_ONE << np.uint64(take)) - _ONE)
            while win != 0:          # terminal states absorb: checked once per window
                pos = j + _trailing_zeros(win)
                k = only if nspecial == 1 else kind[np.int64(data[d0 + pos])]
                s = step[s * 8 + np.int64(pos - last > 1) * 4 + k]
                last = pos
                win &= win - _ONE
            j += take
        hit = verdict[s * 2 + np.int64(end - last > 1)] != 0
        if hit != negate:
            words[i] = 1
            valid[i] = 1
        else:
            words[i] = 0
            valid[i] = 0 if miss_is_null else 1
