"""Aggregate expressions (`aggregate: "avg(amount)"`) → a :class:`Call`, parsed like row
rules (parse.parse_sql: sqlglot's DuckDB dialect within compiler/limits.py), so that
sqlglot stays inside the compiler.

Only the shape is checked here (a supported function of one column, a quantile in
[0, 1]); the dataset check (batchaot/checks/aggregate.py) binds the column to the data
and checks its type.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from ..errors import RuleError
from .parse import parse_sql

FUNCTIONS = ("count(*)", "count", "sum", "avg", "min", "max", "stddev_samp", "count_distinct",
             "approx_count_distinct", "approx_quantile", "null_fraction")
_CLASSES = {exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
            exp.StddevSamp: "stddev_samp", exp.Stddev: "stddev_samp",
            exp.ApproxDistinct: "approx_count_distinct", exp.ApproxQuantile: "approx_quantile"}
_ANONYMOUS = ("count_distinct", "null_fraction")


@dataclass(frozen=True)
class Call:
    """One aggregate function of one column (None for count(*)); `q` for approx_quantile."""

    fn: str
    column: str | None
    q: float | None = None

    def __str__(self) -> str:
        if self.fn == "count(*)":
            return "count(*)"
        return f"{self.fn}({self.column}" + (f", {self.q})" if self.q is not None else ")")


def parse_aggregate(rule: str, text: str) -> Call:
    """The aggregate text → Call (its column as written), with errors naming the rule and
    what is supported."""
    node = parse_sql(rule, text)
    while isinstance(node, exp.Paren):       # (avg(x)) is avg(x)
        node = node.this
    fn, arg, q = _function(rule, node, text)
    if fn == "count(*)":
        return Call(fn, None)
    if not isinstance(arg, exp.Column) or arg.table:
        raise RuleError(rule, f"the argument of {fn}() must be a column name, got `{arg.sql('duckdb') if arg else ''}`; "
                        "to aggregate an expression, filter rows with `where:` instead")
    return Call(fn, arg.name, q)


def _function(rule: str, node: exp.Expression, text: str) -> tuple[str, exp.Expression | None, float | None]:
    if isinstance(node, exp.Count):
        arg = node.this
        if isinstance(arg, exp.Star):
            return "count(*)", None, None
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                raise RuleError(rule, f"`{text}`: count(DISTINCT ...) takes one column")
            return "count_distinct", arg.expressions[0], None
        return "count", arg, None
    if isinstance(node, exp.Anonymous) and node.name.lower() in _ANONYMOUS:
        if len(node.expressions) != 1:
            raise RuleError(rule, f"`{text}`: {node.name.lower()}() takes one column")
        return node.name.lower(), node.expressions[0], None
    fn = next((name for cls, name in _CLASSES.items() if type(node) is cls), None)
    if fn is None:
        raise RuleError(rule, f"unsupported aggregate `{text}`; supported: {', '.join(FUNCTIONS)}")
    if len(node.expressions or []) > 0:
        raise RuleError(rule, f"`{text}`: {fn}() takes one column")
    q = None
    if fn == "approx_quantile":
        q = _quantile(rule, node.args.get("quantile"), text)
    return fn, node.this, q


def _quantile(rule: str, node: exp.Expression | None, text: str) -> float:
    try:
        q = float(node.this) if isinstance(node, exp.Literal) and not node.is_string else None
    except ValueError:
        q = None
    if q is None or not 0.0 <= q <= 1.0:
        raise RuleError(rule, f"`{text}`: approx_quantile(x, q) needs a number 0 <= q <= 1")
    return q
