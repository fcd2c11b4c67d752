"""Size and nesting limits of one rule, so that hostile SQL gets a clear error, never a
RecursionError, a hang or an out-of-memory.

- ``MAX_SQL_CHARS``: a rule's SQL text outside its string literals (what sqlglot turns
  into tokens and nodes; about 3 s and 300 MB at the limit). Literal contents are free.
- ``MAX_DEPTH``: nesting levels (parentheses, ``NOT``, ``CASE``, function calls, casts,
  arithmetic, comparisons). A chain of the same ``AND``/``OR`` counts once however long.
- ``MAX_NODES``: typed IR nodes after binding (each one about a bytecode instruction and a
  register of every running block). A string ``IN`` list is one node however long; a
  numeric one (``MAX_IN_VALUES``) three per value.

sqlglot's parser takes about 25 Python frames per nesting level, so parsing and binding
run with the recursion limit raised by a bounded amount (:func:`stack_budget`); anything
deeper than that budget is refused like a rule over ``MAX_DEPTH``.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from typing import Iterator

from sqlglot import exp

MAX_SQL_CHARS = 1_000_000
MAX_DEPTH = 128
MAX_NODES = 5_000
MAX_IN_VALUES = 1_000          # IN (...) of numbers, dates...: 3 nodes each
FRAMES_PER_LEVEL = 40          # sqlglot's parser needs ~25; rendering an error ~10

_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_DOLLAR = re.compile(r"\$(\w*)\$.*?\$\1\$", re.S)

_lock = threading.Lock()
_users = 0
_saved_limit = 0


def code_length(sql: str) -> int:
    """Characters of `sql` outside quoted strings and identifiers (each counts as 2)."""
    if "'" not in sql and '"' not in sql and "$" not in sql:
        return len(sql)
    return len(_DOLLAR.sub("$$", _STRING.sub("''", sql)))


def too_long(sql: str) -> str | None:
    n = code_length(sql)
    if n <= MAX_SQL_CHARS:
        return None
    return (f"rule too long: {n:,} characters of SQL outside string literals "
            f"(limit {MAX_SQL_CHARS:,}); check long lists of values with a `reference:` rule")


def too_deep_message() -> str:
    return (f"rule nested too deeply (limit {MAX_DEPTH} levels of parentheses, NOT, CASE, "
            "function calls or arithmetic)")


def nesting(tree: exp.Expression, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed rule, stopping early once above `limit`.

    Every parenthesis, operator, function call and value is a level, except an AND right
    inside an AND (or an OR inside an OR): the binder flattens such chains without
    recursing, so `a AND b AND ...` is one level however long. A CASE is one level with
    its WHEN branches.
    """
    deepest = 0
    stack: list[tuple[exp.Expression, int, type | None]] = [(tree, 0, None)]
    while stack:
        node, depth, chain = stack.pop()
        if isinstance(node, exp.If) and isinstance(node.parent, exp.Case):
            pass      # a CASE's WHEN ... THEN ... branch is part of the CASE's level
        elif isinstance(node, (exp.And, exp.Or)) and type(node) is chain:
            pass
        else:
            depth += 1
            chain = type(node) if isinstance(node, (exp.And, exp.Or)) else None
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        for child in node.iter_expressions():
            stack.append((child, depth, chain))
    return deepest


def ir_size(root, limit: int = MAX_NODES) -> int:
    """IR nodes under `root` (a tree; shared nodes counted each time), stopping early
    once above `limit`."""
    from .ir import children

    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        stack.extend(children(node))
    return count


def too_big_message() -> str:
    return (f"rule too large: more than {MAX_NODES:,} operations after binding; split it "
            "into several rules")


def in_list_message(n: int) -> str:
    return (f"IN list of {n:,} values: at most {MAX_IN_VALUES:,} unless compared with a string "
            "column (each value is a comparison); check a long list of allowed values with a "
            "`reference:` rule")


def excerpt(sql: str, limit: int = 300) -> str:
    """`sql` for an error message: at most `limit` characters."""
    if len(sql) <= limit:
        return sql
    return f"{sql[:limit - 60]} ... {sql[-40:]}"


@contextlib.contextmanager
def stack_budget() -> Iterator[None]:
    """Raise the recursion limit by MAX_DEPTH × FRAMES_PER_LEVEL while parsing and binding.

    The limit is process-wide: the first of concurrent users raises it, the last one
    restores it. Python-to-Python calls do not grow the C stack (3.11+), and MAX_DEPTH
    bounds how deep a rule can go, so the raise is bounded too.
    """
    global _users, _saved_limit
    with _lock:
        if _users == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(_saved_limit + MAX_DEPTH * FRAMES_PER_LEVEL)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                sys.setrecursionlimit(_saved_limit)


class _QuietWhileParsing(logging.Filter):
    """Drops sqlglot's log records ("... Falling back to parsing as a 'Command'", "STRPOS
    does not support the occurrence parameter" when an error message renders SQL) raised
    while this thread parses or binds a rule: the rule's error says what is wrong, on one
    line."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "parsing", False)


_quiet = _QuietWhileParsing()
logging.getLogger("sqlglot").addFilter(_quiet)


@contextlib.contextmanager
def quiet_sqlglot() -> Iterator[None]:
    before = getattr(_quiet.local, "parsing", False)
    _quiet.local.parsing = True
    try:
        yield
    finally:
        _quiet.local.parsing = before
