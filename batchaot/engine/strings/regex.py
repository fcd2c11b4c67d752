"""The subset of RE2 syntax (and SQL LIKE) the byte automata take, parsed to an AST.

Anything outside it raises _Unsupported while planning, and pyarrow.compute (RE2)
evaluates the expression instead.
"""
from __future__ import annotations

import re

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
