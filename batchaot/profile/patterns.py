"""Character-class patterns of short ASCII strings, as a mergeable state.

The state is which bytes were seen at each position (a 128-bit set per position, packed),
over the distinct values of a batch: merging two states is a bitwise OR, so any split of
the data gives the same state. From it, :func:`regex` derives one class per position
(a literal when one character was seen there, else the smallest of [0-9], [A-Z], [a-z],
[A-Za-z], [A-Z0-9], [a-z0-9], [A-Za-z0-9] holding what was seen) and writes runs of
equal classes with counts: ``^[A-Z]{3}-[0-9]{4}$``. Strings of different lengths fit
when every position past the shortest one falls in the last run (``^user[0-9]{1,6}$``).

Every value seen matches the pattern by construction (each of its characters is in its
position's class, its length within the run's counts). Values with a byte outside
printable ASCII, or longer than MAX_LEN, leave the column without a pattern.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_LEN = 64                     # longer strings get no pattern (and cost no state)
_DIGIT = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
# the classes tried, smallest first: the first that holds every character seen is used
CLASSES = (("[0-9]", _DIGIT), ("[A-Z]", _UPPER), ("[a-z]", _LOWER), ("[A-Z0-9]", _UPPER | _DIGIT),
           ("[a-z0-9]", _LOWER | _DIGIT), ("[A-Za-z]", _UPPER | _LOWER),
           ("[A-Za-z0-9]", _UPPER | _LOWER | _DIGIT))
_CLASS_OF = dict(CLASSES)
_SPECIAL = set("\\.+*?()|[]{}^$")     # escaped in a literal


def seen(values: pa.Array) -> np.ndarray | None:
    """(MAX_LEN, 16) uint8: the bytes seen at each position of the distinct non-NULL
    string `values`, packed; None when a value cannot have a pattern."""
    values = values.cast(pa.large_string()) if not pa.types.is_large_string(values.type) else values
    values = pc.drop_null(values)
    out = np.zeros((MAX_LEN, 128), dtype=bool)
    if len(values):
        offsets = np.frombuffer(values.buffers()[1], np.int64)[values.offset:values.offset + len(values) + 1]
        lengths = np.diff(offsets)
        if lengths.max() > MAX_LEN:
            return None
        data = np.frombuffer(values.buffers()[2], np.uint8)
        starts = offsets[:-1]
        for position in range(int(lengths.max())):     # a gather per position, never per value
            found = np.unique(data[starts[lengths > position] + position])
            if found[-1] > 126 or found[0] < 32:
                return None
            out[position, found] = True
    return np.packbits(out, axis=1)


def merge(states: list[np.ndarray | None]) -> np.ndarray | None:
    """The union of the states (None if any value had no pattern)."""
    if not states or any(s is None for s in states):
        return None
    return np.bitwise_or.reduce(np.stack(states), axis=0)


def regex(state: np.ndarray | None, shortest: int, longest: int) -> str | None:
    """The anchored pattern every value seen matches, or None where none fits (a position
    holding characters no class covers, lengths varying over more than the last run, or
    no class at all: a single value is better said with `=` or IN)."""
    if state is None or longest == 0 or longest > MAX_LEN:
        return None
    bits = np.unpackbits(state, axis=1)[:longest].astype(bool)
    chars = [frozenset(chr(b) for b in np.flatnonzero(row)) for row in bits]
    tokens = [_token(c) for c in chars]
    if any(t is None for t in tokens):
        return None
    for i in range(max(shortest, 1), longest):
        # past the shortest value fewer values speak: a position whose characters fit the
        # class before it takes that class, so one run can hold the varying tail
        if chars[i] <= _CLASS_OF.get(tokens[i - 1], frozenset()):
            tokens[i] = tokens[i - 1]
    if all(not t.startswith("[") for t in tokens):
        return None
    runs: list[list] = []                 # [token, first position, count]
    for i, token in enumerate(tokens):
        if runs and runs[-1][0] == token:
            runs[-1][2] += 1
        else:
            runs.append([token, i, 1])
    last_start = runs[-1][1]
    if last_start > shortest:
        return None                       # the lengths vary across more than the last run
    parts = [_repeat(t, n, n) for t, _, n in runs[:-1]]
    token, start, count = runs[-1]
    parts.append(_repeat(token, max(shortest - start, 0), count))
    return "^" + "".join(parts) + "$"


def _token(chars: frozenset) -> str | None:
    if not chars:
        return None
    if len(chars) == 1:
        (c,) = chars
        return "\\" + c if c in _SPECIAL else c
    for token, allowed in CLASSES:
        if chars <= allowed:
            return token
    return None


def _repeat(token: str, lo: int, hi: int) -> str:
    if lo == hi:
        if not token.startswith("[") and lo <= 3:
            return token * lo             # short literal runs read better spelled out
        return token if lo == 1 else f"{token}{{{lo}}}"
    return f"{token}{{{lo},{hi}}}"
