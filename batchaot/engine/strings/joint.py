"""Lookup tables over the joint dictionary of two string columns."""
from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...compiler.strexpr import broadcast, evaluate

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
    out = broadcast(evaluate(e, values), len(values))
    if out.type != pa.string():
        raise ValueError("joint lookup tables compare strings")
    return out
