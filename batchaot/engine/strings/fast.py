"""Fast plans: which kernel evaluates a string expression on the column itself, with
the automaton or literal table it reads (None: pyarrow.compute evaluates it)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ...compiler.strexpr import full_match_regex
from .. import aot
from .arrow import short_hash
from .automata import Dfa, compile_dfa
from .regex import _ANY, _RegexParser, _Unsupported, _like_ast


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
    hashes = short_hash(keys[:, 0], keys[:, 1], keys[:, 2])   # numpy: wraps like the kernel
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


def run_fast(plan: FastPlan, buffers, words: np.ndarray, valid: np.ndarray, lo: int, hi: int) -> None:
    """Entries [lo, hi) of a lookup table for the rows of `buffers` (string_buffers)."""
    offsets, data, bitmap, bitoff = buffers
    if plan.kind == "length":
        aot.call("length_kernel", offsets, data, bitmap, bitoff, lo, hi, words, valid)
        return
    if plan.kind == "set":
        w = plan.words
        aot.call("set_kernel", offsets, data, bitmap, bitoff, lo, hi, w.data, w.offsets, w.by_len, w.table,
                 w.mult, w.shift, plan.negate, plan.miss_is_null, words, valid)
        return
    d = plan.dfa
    if d.sparse is not None:
        sp = d.sparse
        aot.call("sparse_kernel", offsets, data, bitmap, bitoff, lo, hi, sp.patterns, sp.kind, sp.step,
                 sp.term, sp.verdict, plan.negate, plan.miss_is_null, words, valid)
        return
    aot.call("dfa_kernel", offsets, data, bitmap, bitoff, lo, hi, d.act, d.trans, d.final, d.skip, d.swar,
             d.start, d.prefix, d.nprefix,
             np.uint64(int.from_bytes(d.prefix[:8].tobytes(), "little")),
             np.uint64((1 << (8 * min(d.nprefix, 8))) - 1), d.after_prefix,
             plan.negate, plan.miss_is_null, words, valid)
