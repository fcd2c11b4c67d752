"""Byte automata: Thompson NFA, subset construction, Moore minimization, and the
layouts the kernels read (a dense DFA, and a sparse one where at most three bytes
matter)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regex import _Unsupported

MAX_DFA_STATES = 512


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
