"""The typed IR: what a rule means, after names and types are resolved.

Operands of every arithmetic or comparison node already share one physical class
(the binder inserts casts and decimal rescaling), so lowering to bytecode is
mechanical. String sub-expressions are not evaluated per row: a :class:`Lookup`
names one string column and an :data:`SExpr` that the engine evaluates once per
distinct value of that column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .types import Type

# A string expression over the one column of a Lookup, as JSON-able nested lists:
#   ["col"] | ["lit", value] | ["lower", e] | ["upper", e] | ["length", e]
#   | ["like", e, pattern, case_insensitive, escape] | ["regexp", e, pattern]
#   | ["starts_with", e, prefix] | ["cmp", op, e, e] | ["in", e, [values]]
#   | ["coalesce", [e, ...]] | ["cast", e, kind, scale, safe]
SExpr = list


@dataclass(frozen=True)
class Col:
    type: Type
    name: str
    index: int          # position in the program's column table


@dataclass(frozen=True)
class Lit:
    type: Type
    value: Any          # int for physical 'i' (scaled for decimals), float, or None for NULL


@dataclass(frozen=True)
class Op:
    """A fixed-arity operation; `op` is the opcode family (add, lt, not, round, i2f...)."""

    type: Type
    op: str
    args: tuple["Node", ...]
    imm: int = 0        # digits for round; the integer type (enum ba_int) for narrow


@dataclass(frozen=True)
class And:
    type: Type
    args: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    type: Type
    args: tuple["Node", ...]


@dataclass(frozen=True)
class Case:
    type: Type
    whens: tuple[tuple["Node", "Node"], ...]
    default: "Node"


@dataclass(frozen=True)
class Lookup:
    type: Type
    column: Col
    expr: tuple          # SExpr frozen as nested tuples (hashable)


Node = Union[Col, Lit, Op, And, Or, Case, Lookup]


def freeze(sexpr: Any) -> Any:
    """Nested lists → nested tuples, so IR nodes stay hashable."""
    if isinstance(sexpr, (list, tuple)):
        return tuple(freeze(x) for x in sexpr)
    return sexpr


def thaw(sexpr: Any) -> Any:
    if isinstance(sexpr, (list, tuple)):
        return [thaw(x) for x in sexpr]
    return sexpr


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Op, And, Or)):
        return node.args
    if isinstance(node, Case):
        return tuple(x for pair in node.whens for x in pair) + (node.default,)
    if isinstance(node, Lookup):
        return (node.column,)
    return ()


def columns_of(node: Node) -> list[str]:
    """Column names the expression reads, in first-use order."""
    seen: dict[str, None] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Col):
            seen.setdefault(n.name)
        stack.extend(reversed(children(n)))
    return list(seen)
