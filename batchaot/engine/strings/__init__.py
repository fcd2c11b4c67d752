"""String expressions: lookup tables of their values, and string column encoding.

A Program's LUT instruction indexes a table built here from a column's dictionary:
entry i is the expression's value for dictionary value i, and one extra last entry
holds its value for a NULL input. So a predicate over 10M rows with 5 distinct
statuses costs 6 evaluations, never a Python object per row. A mostly-distinct column
(emails, ids) is its own dictionary: entry i is row i's value.

Two evaluators give the same answers. ``evaluate`` (compiler/strexpr.py, which the
compiler also folds constants with) uses pyarrow.compute (RE2 for LIKE and
regexp_matches) and handles every expression. For large tables the common shapes
on the column itself run as Numba kernels over the Arrow offsets and data buffers
(``fast_plan`` / ``run_fast``), writing the table in place, on several threads (one
where they run compiled ahead of time, engine/aot.py):

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

The modules: regex.py (the RE2 subset and LIKE, parsed), automata.py (NFA -> minimized
DFA, dense and sparse layouts), arrow.py (Arrow string buffers as arrays), swar.py
(word-at-a-time primitives), kernels.py (the Numba kernels, called through
engine/aot.py), fast.py (which kernel evaluates an expression: fast_plan / run_fast),
encode.py (dictionary encoding), joint.py (two columns' joint lookup tables). Only
swar.py and kernels.py import Numba.
"""
from ...compiler.strexpr import arrow_type, evaluate, full_match_regex, like_to_regex
from .arrow import string_buffers
from .automata import MAX_DFA_STATES, Dfa, Sparse, compile_dfa
from .encode import ENCODE_MAX_DISTINCT, encode
from .fast import FastPlan, fast_plan, run_fast
from .joint import joint_lut, partner

__all__ = ["Dfa", "ENCODE_MAX_DISTINCT", "FastPlan", "MAX_DFA_STATES", "Sparse", "arrow_type", "compile_dfa",
           "encode", "evaluate", "fast_plan", "full_match_regex", "joint_lut", "like_to_regex", "partner",
           "run_fast", "string_buffers"]
