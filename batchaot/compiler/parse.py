"""SQL rule text → typed IR bound to an Arrow schema.

sqlglot (DuckDB dialect) parses; :class:`Binder` resolves columns, checks types and
inserts the casts DuckDB would (int → double, decimal rescaling, date → timestamp),
so the lowering never has to think about types. Anything outside the supported
subset is refused with an error that names the rule and the construct.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..errors import RuleError
from . import clock, limits, sqltext, strexpr
from . import types as T
from .civil import days_from_civil, days_in_month
from .ir import And, Case, Col, Lit, Lookup, Node, Op, Or, freeze
from .types import Kind, Type

_EPOCH = _dt.date(1970, 1, 1)
_CMP = {exp.EQ: "eq", exp.NEQ: "ne", exp.LT: "lt", exp.LTE: "le", exp.GT: "gt", exp.GTE: "ge"}
_SYMBOL = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_FLIP = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
_ARITH = {exp.Add: "add", exp.Sub: "sub", exp.Mul: "mul", exp.Div: "div", exp.Mod: "mod",
          exp.IntDiv: "idiv"}


@dataclass(frozen=True)
class _Str:
    """A string-valued intermediate: an SExpr over at most one string column."""

    sexpr: list
    col: Col | None


@dataclass(frozen=True)
class BoundRule:
    root: Node
    columns: tuple[tuple[str, Type], ...]   # the program's column table, index order


def parse_sql(rule: str, sql: str) -> exp.Expression:
    """sqlglot's tree of one rule, within the limits of :mod:`.limits` (size, nesting)."""
    problem = limits.too_long(sql)
    if problem:
        raise RuleError(rule, problem)
    try:
        with limits.stack_budget(), limits.quiet_sqlglot():
            tree = sqlglot.parse_one(sql, read="duckdb")
    except RecursionError:
        raise RuleError(rule, limits.too_deep_message()) from None
    except sqlglot.errors.ParseError as exc:
        errs = exc.errors[0] if exc.errors else {}
        where = f" at col {errs.get('col')}" if errs.get("col") else ""
        raise RuleError(rule, f"cannot parse `{limits.excerpt(sql)}`{where}: "
                        f"{errs.get('description', str(exc).splitlines()[0])}") from None
    except sqlglot.errors.SqlglotError as exc:
        raise RuleError(rule, f"cannot parse `{limits.excerpt(sql)}`: {exc}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # sqlglot tripping over garbage it does not expect: still a rule that cannot parse
        raise RuleError(rule, f"cannot parse `{limits.excerpt(sql)}` "
                        f"({type(exc).__name__}: {exc})") from None
    if tree is None:
        raise RuleError(rule, "empty predicate")
    if limits.nesting(tree) > limits.MAX_DEPTH:
        raise RuleError(rule, limits.too_deep_message())
    return tree


def bind(rule: str, sql: str, schema: pa.Schema) -> BoundRule:
    """Parse and bind one row predicate; the result is a BOOL-typed IR tree."""
    with limits.stack_budget(), limits.quiet_sqlglot():   # rendering SQL for errors logs too
        tree = parse_sql(rule, sql)
        binder = Binder(rule, sql, schema)
        try:
            root = binder.predicate(tree)
        except RecursionError:
            raise RuleError(rule, limits.too_deep_message()) from None
        except OverflowError:
            raise RuleError(rule, "a number in the rule is out of range") from None
    if limits.ir_size(root) > limits.MAX_NODES:
        raise RuleError(rule, limits.too_big_message())
    return BoundRule(root, tuple(binder.columns))


class Binder:
    def __init__(self, rule: str, sql: str, schema: pa.Schema):
        self.rule, self.sql, self.schema = rule, sql, schema
        self.columns: list[tuple[str, Type]] = []
        self._by_name: dict[str, Col] = {}

    # -- entry points ----------------------------------------------------------
    def predicate(self, node: exp.Expression) -> Node:
        out = self.value(node)
        if isinstance(out, _Str):
            self.fail(f"`{node.sql('duckdb')}` is a string, not a condition")
        if out.type.kind is Kind.NULL:
            return Lit(T.BOOL, None)
        if out.type.kind is not Kind.BOOL:
            self.fail(f"`{node.sql('duckdb')}` is {out.type}, not a condition; "
                      "compare it with something, e.g. `... > 0`")
        return out

    def fail(self, message: str) -> None:
        raise RuleError(self.rule, message)

    def unsupported(self, node: exp.Expression) -> None:
        what = node.key if not isinstance(node, exp.Func) else f"function {node.sql_name()}"
        if isinstance(node, exp.Anonymous):
            what = f"function {node.name}()"
        self.fail(f"unsupported SQL construct: {what} in `{node.sql('duckdb')}`")

    # -- dispatch -------------------------------------------------------------
    def value(self, node: exp.Expression) -> Node | _Str:
        method = getattr(self, f"_v_{type(node).__name__.lower()}", None)
        if method is not None:
            return method(node)
        for cls, op in _CMP.items():
            if isinstance(node, cls):
                return self.compare(op, node.this, node.expression)
        for cls, op in _ARITH.items():
            if type(node) is cls:
                return self.arith(op, self.num(node.this), self.num(node.expression), node)
        self.unsupported(node)

    def num(self, node: exp.Expression) -> Node:
        """A non-string value (numbers, booleans, temporals)."""
        out = self.value(node)
        if isinstance(out, _Str):
            if out.col is None:
                return _StrConst(out)  # resolved against the other operand's type
            self.fail(f"`{node.sql('duckdb')}` is a string where a number, date or boolean is needed")
        return out

    def cond(self, node: exp.Expression) -> Node:
        return self.predicate(node)

    # -- leaves ---------------------------------------------------------------
    def _v_paren(self, node: exp.Paren) -> Node | _Str:
        while isinstance(node, exp.Paren):   # a loop: parentheses add no recursion
            node = node.this
        return self.value(node)

    def _v_column(self, node: exp.Column) -> Node | _Str:
        if node.table:
            self.fail(f"qualified column `{node.sql('duckdb')}`: name columns without a table")
        col = self.column(node.name)
        return _Str(["col"], col) if col.type.kind is Kind.STRING else col

    def column(self, name: str) -> Col:
        if name in self._by_name:
            return self._by_name[name]
        names = self.schema.names
        if name not in names:
            folded = [n for n in names if n.lower() == name.lower()]
            if len(folded) != 1:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else \
                    f"; columns are: {', '.join(names[:20])}"
                self.fail(f"unknown column '{name}'{hint}")
            name = folded[0]
        if name in self._by_name:
            return self._by_name[name]
        if names.count(name) > 1:
            self.fail(f"column '{name}' appears {names.count(name)} times in the data: "
                      "which one the rule means is ambiguous; rename the copies")
        field = self.schema.field(name)
        try:
            typ = T.from_arrow(field.type)
        except T.UnsupportedType as exc:
            self.fail(f"column '{name}' has unsupported type {exc}")
        if typ.kind is Kind.NULL:
            typ = T.INT  # an all-NULL column: every value is NULL, any type will do
        col = Col(typ, name, len(self.columns))
        self.columns.append((name, typ))
        self._by_name[name] = col
        return col

    def _v_literal(self, node: exp.Literal) -> Node | _Str:
        if node.is_string:
            return _Str(["lit", node.this], None)
        text = node.this
        try:
            if any(c in text for c in "eE") or text.lower() in ("inf", "nan"):
                return Lit(T.FLOAT, float(text))
            if "." in text:
                d = decimal.Decimal(text)
                scale = max(0, -d.as_tuple().exponent)
                return Lit(Type(Kind.DECIMAL, scale), int(d.scaleb(scale)))
            return Lit(T.INT, int(text))
        except (ValueError, ArithmeticError):
            shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"
            self.fail(f"number {shown} is out of range")

    def _v_boolean(self, node: exp.Boolean) -> Node:
        return Lit(T.BOOL, 1 if node.this else 0)

    def _v_null(self, node: exp.Null) -> Node:
        return Lit(T.NULL, None)

    def _v_neg(self, node: exp.Neg) -> Node:
        arg = self.num(node.this)
        if isinstance(arg, Lit) and arg.value is not None:
            return Lit(arg.type, -arg.value)
        self.need_numeric(arg, node)
        return Op(arg.type, "neg", (arg,))

    # -- logic ------------------------------------------------------------------
    def _v_and(self, node: exp.And) -> Node:
        return And(T.BOOL, tuple(self.cond(x) for x in _flatten(node, exp.And)))

    def _v_or(self, node: exp.Or) -> Node:
        return Or(T.BOOL, tuple(self.cond(x) for x in _flatten(node, exp.Or)))

    def _v_not(self, node: exp.Not) -> Node:
        inner = node.this
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return self.null_test(inner.this, "notnull")
        return Op(T.BOOL, "not", (self.cond(inner),))

    def _v_is(self, node: exp.Is) -> Node:
        rhs = node.expression
        if isinstance(rhs, exp.Null):
            return self.null_test(node.this, "isnull")
        if isinstance(rhs, exp.Boolean):
            arg = self.cond(node.this)
            if not rhs.this:
                arg = Op(T.BOOL, "not", (arg,))
            return Op(T.BOOL, "coalesce", (arg, Lit(T.BOOL, 0)))
        self.unsupported(node)

    def null_test(self, operand: exp.Expression, op: str) -> Node:
        arg = self.value(operand)
        if isinstance(arg, _Str):
            if arg.col is None:
                return Lit(T.BOOL, int(op == "notnull"))
            if arg.sexpr != ["col"]:
                arg = self.lookup(T.BOOL, ["isnull", arg.sexpr], arg.col)
                return arg if op == "isnull" else Op(T.BOOL, "not", (arg,))
            arg = arg.col
        return Op(T.BOOL, op, (arg,))

    def _v_between(self, node: exp.Between) -> Node:
        exprs = (node.this, node.args["low"], node.args["high"])
        x, lo, hi = (self.value(e) for e in exprs)
        floats = self.float_operands([x, lo, hi])
        if floats is not None:
            x, lo, hi = floats
            return And(T.BOOL, (Op(T.BOOL, "ge", (x, lo)), Op(T.BOOL, "le", (x, hi))))
        return And(T.BOOL, (self.compare_values("ge", x, lo, exprs[0], exprs[1]),
                            self.compare_values("le", x, hi, exprs[0], exprs[2])))

    def float_operands(self, values: list[Node | _Str]) -> list[Node] | None:
        """BETWEEN and IN compare in one type for all their operands, as DuckDB binds them:
        where one is a FLOAT or DOUBLE, every operand as FLOAT, or as DOUBLE once one is a
        DOUBLE (`f IN (0.1, 1e-3)` with a FLOAT f compares 0.1 as DOUBLE, unlike `f = 0.1`).
        None: no float among them (integers and decimals compare exactly pairwise)."""
        if any(isinstance(v, _Str) for v in values) or all(_kind(v) is not Kind.FLOAT for v in values):
            return None
        target = _float_target(*values)
        return [Lit(target, None) if _kind(v) is Kind.NULL else self.to_float(v, target) for v in values]

    def _v_in(self, node: exp.In) -> Node:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            self.unsupported(node)
        if not node.expressions:
            self.fail(f"empty IN list in `{limits.excerpt(node.sql('duckdb'))}`: give at least one value")
        this = self.value(node.this)
        if isinstance(this, _Str):
            values = [self.string_const(x) for x in node.expressions]
            return self.str_predicate(T.BOOL, ["in", this.sexpr, values], this, node)
        if len(node.expressions) > limits.MAX_IN_VALUES:
            self.fail(limits.in_list_message(len(node.expressions)))
        values = [self.value(x) for x in node.expressions]
        floats = self.float_operands([this, *values])
        if floats is not None:
            return Or(T.BOOL, tuple(Op(T.BOOL, "eq", (floats[0], v)) for v in floats[1:]))
        return Or(T.BOOL, tuple(self.compare_values("eq", this, v, node.this, x)
                                for v, x in zip(values, node.expressions)))

    # -- comparisons and arithmetic ---------------------------------------------
    def compare(self, op: str, left: exp.Expression, right: exp.Expression) -> Node:
        for cast, other, o in ((left, right, op), (right, left, _FLIP[op])):
            cast = _unparen(cast)
            if o in ("ge", "lt") and isinstance(cast, exp.Cast) and _type_name(cast) == "DATE":
                return self.compare_date_of(o, cast, other, op, left, right)
        return self.compare_values(op, self.value(left), self.value(right), left, right)

    def compare_date_of(self, o: str, cast: exp.Cast, other: exp.Expression, op: str,
                        left: exp.Expression, right: exp.Expression) -> Node:
        """`CAST(ts AS DATE) o other` (o: >= or <; `op` the comparison as written).
        floor(ts / day) >= d iff ts >= d * day, so against a DATE it is the timestamp
        compared with the date (exact, infinities kept, no division per row)."""
        ts = self.value(cast.this)
        if isinstance(ts, _Str) or ts.type.kind is not Kind.TIMESTAMP:
            return self.compare_values(op, self.value(left), self.value(right), left, right)
        value = self.value(other)
        if not isinstance(value, _Str) and value.type.kind is Kind.DATE:
            return _temporal_compare(o, ts, value)
        date = self.cast_value(ts, T.DATE, cast)
        a, b = (date, value) if cast is _unparen(left) else (value, date)
        return self.compare_values(op, a, b, left, right)

    def compare_values(self, op: str, a: Node | _Str, b: Node | _Str,
                       left: exp.Expression, right: exp.Expression) -> Node:
        """`a op b` for the bound values of `left` and `right` (named in messages)."""
        if isinstance(a, _Str) or isinstance(b, _Str):      # NULL next to a string is a string
            a, b = _null_str(a), _null_str(b)
        if isinstance(a, _Str) and isinstance(b, _Str):
            return self.str_compare(op, a, b, left, right)
        text = _Sql(left, _SYMBOL[op], right)
        if isinstance(a, _Str):
            a = self.coerce_string_literal(a, b, text)
        if isinstance(b, _Str):
            b = self.coerce_string_literal(b, a, text)
        exact = self.exact_compare(op, a, b)
        if exact is not None:
            return exact
        a, b = self.unify(a, b, text)
        return Op(T.BOOL, op, (a, b))

    def exact_compare(self, op: str, a: Node, b: Node) -> Node | None:
        """`a op b` where bringing both to one type could leave int64 (and make the verdict
        NULL): temporal values in different units, an integer against a scaled decimal,
        decimals of different scales. None when the common type is safe."""
        if _units_differ(a, b):
            return _temporal_compare(op, a, b)
        if _is_integer(b) and _scaled_decimal(a):
            return self.compare_int_decimal(_FLIP[op], b, a)
        if _is_integer(a) and _scaled_decimal(b):
            return self.compare_int_decimal(op, a, b)
        if _scales_differ(a, b):
            # a decimal of scale s against one of scale t > s: its unscaled integer against
            # the other read at the relative scale t - s (orders alike, no rescaling)
            if _scale(a) > _scale(b):
                return self.exact_compare(_FLIP[op], b, a)
            relative = Type(Kind.DECIMAL, _scale(b) - _scale(a))
            return self.compare_int_decimal(op, _retype(a, T.INT), _retype(b, relative))
        return None

    def compare_int_decimal(self, op: str, i: Node, d: Node) -> Node:
        """`i op d` for an integer i and a decimal d of scale s > 0, exactly as DuckDB.

        Scaling i by 10^s may leave int64 (0.5 <> i for i = 7.6e18), which would make the
        verdict NULL. Against a literal the bound is rounded instead (i > 0.5 is i > 0,
        i = 0.5 is FALSE): exact and one comparison. Otherwise i*10^s is compared with d
        where it fits int64; beyond ±bound = (2^63-1) // 10^s it is above (below) every
        int64, so `i op d` is known wherever d is not NULL (an evaluated branch, not a
        clamped i: a computed d can equal bound*10^s)."""
        i, scale = self.as_int(i), d.type.scale
        if isinstance(d, Lit):
            return _int_vs_literal(op, i, d.value, 10 ** scale)
        bound = (2 ** 63 - 1) // 10 ** scale
        above, below = _known_unless_null(d, op in ("gt", "ge", "ne")), _known_unless_null(d, op in ("lt", "le", "ne"))
        if isinstance(i, Lit) and i.value is not None and abs(i.value) > bound:
            return above if i.value > 0 else below
        widened = Op(T.BOOL, op, (self.rescale(i, scale), d))
        if isinstance(i, Lit):
            return widened
        return Case(T.BOOL, ((Op(T.BOOL, "gt", (i, Lit(T.INT, bound))), above),
                             (Op(T.BOOL, "lt", (i, Lit(T.INT, -bound))), below)), widened)

    def str_compare(self, op: str, a: _Str, b: _Str, left, right) -> Node:
        if a.col is not None and b.col is not None and a.col != b.col:
            ra, rb = self.joint_ranks(a, b, left, ordered=op not in ("eq", "ne"))
            return Op(T.BOOL, op, (ra, rb))
        if a.col is None and b.col is not None:
            return self.str_compare(_FLIP[op], b, a, right, left)
        if a.col is None:
            a, b = self.fold_str(a), self.fold_str(b)
            verdict = _py_compare(op, a.sexpr, b.sexpr)
            return Lit(T.BOOL, None if verdict is None else int(verdict))
        return self.str_predicate(T.BOOL, ["cmp", op, a.sexpr, b.sexpr], a, left)

    def arith(self, op: str, a: Node, b: Node, node: exp.Expression) -> Node:
        text = _Sql(node)
        a, b = _resolve_str_const(self, a, b), _resolve_str_const(self, b, a)
        if isinstance(a, _Interval) or isinstance(b, _Interval):
            return self.interval_arith(op, a, b, text)
        if op in ("add", "sub") and (a.type.is_temporal or b.type.is_temporal):
            return self.date_arith(op, a, b, text)
        self.need_numeric(a, node)
        self.need_numeric(b, node)
        if op == "div":
            target = _float_target(a, b)
            return _rounded(Op(target, "div", (self.to_float(a, target), self.to_float(b, target))))
        if op == "idiv" and Kind.FLOAT not in (a.type.kind, b.type.kind):
            if Kind.DECIMAL in (a.type.kind, b.type.kind):
                self.fail(f"integer division of decimals in `{text}`: CAST to BIGINT or DOUBLE first")
            return Op(T.INT, "idiv", (a, b))
        if op == "idiv":
            self.fail(f"`//` needs integer operands in `{text}`")
        kinds = (a.type.kind, b.type.kind)
        if op == "mul" and Kind.DECIMAL in kinds and Kind.FLOAT not in kinds:
            # exact: the scales add, no rescaling needed
            scale = _scale(a) + _scale(b)
            return Op(Type(Kind.DECIMAL, scale), "mul", (self.as_int(a), self.as_int(b)))
        a, b = self.unify(a, b, text)
        typ = a.type if a.type.kind is not Kind.BOOL else T.INT
        return _rounded(Op(typ, op, (a, b)))

    def date_arith(self, op: str, a: Node, b: Node, text: "_Sql") -> Node:
        if a.type.kind is Kind.DATE and b.type.kind is Kind.DATE and op == "sub":
            return Op(T.INT, "sub", (a, b))
        if a.type.kind is Kind.DATE and b.type.kind in (Kind.INT, Kind.BOOL):
            return Op(T.DATE, op, (a, b))
        if op == "add" and b.type.kind is Kind.DATE and a.type.kind in (Kind.INT, Kind.BOOL):
            return Op(T.DATE, op, (b, a))
        self.fail(f"unsupported date/timestamp arithmetic `{text}`: dates support "
                  "date ± integer days and date - date")

    def need_numeric(self, node: Node, where: exp.Expression) -> None:
        if not (node.type.is_numeric or node.type.kind is Kind.NULL):
            self.fail(f"`{where.sql('duckdb')}` needs numbers, got {node.type}")

    # -- typing -----------------------------------------------------------------
    def unify(self, a: Node, b: Node, text: "str | _Sql") -> tuple[Node, Node]:
        """Bring two operands to one comparable representation, as DuckDB would."""
        ka, kb = a.type.kind, b.type.kind
        if ka is Kind.NULL and kb is Kind.NULL:
            return Lit(T.INT, None), Lit(T.INT, None)
        if ka is Kind.NULL:
            return Lit(b.type, None), b
        if kb is Kind.NULL:
            return a, Lit(a.type, None)
        if a.type.is_temporal or b.type.is_temporal:
            return self.unify_temporal(a, b, text)
        if not (a.type.is_numeric and b.type.is_numeric):
            self.fail(f"type mismatch in `{text}`: {a.type} vs {b.type}")
        if Kind.FLOAT in (ka, kb):
            target = _float_target(a, b)
            return self.to_float(a, target), self.to_float(b, target)
        if Kind.DECIMAL in (ka, kb):
            scale = max(_scale(a), _scale(b))
            return self.rescale(a, scale), self.rescale(b, scale)
        return a, b

    def unify_temporal(self, a: Node, b: Node, text: "str | _Sql") -> tuple[Node, Node]:
        if not (a.type.is_temporal and b.type.is_temporal):
            self.fail(f"type mismatch in `{text}`: {a.type} vs {b.type}")
        if a.type == b.type:
            return a, b
        unit = max(_ts_scale(a.type), _ts_scale(b.type))
        return self.to_ts(a, unit), self.to_ts(b, unit)

    def to_ts(self, node: Node, unit: int) -> Node:
        """DATE (days) or TIMESTAMP(u) → TIMESTAMP(unit) ticks; to a coarser unit the value
        is rounded half away from zero, as DuckDB's CAST does."""
        typ = Type(Kind.TIMESTAMP, unit)
        if node.type.kind is not Kind.DATE and unit < node.type.scale:
            shift = node.type.scale - unit
            rounded = Op(node.type, "round", (node,), imm=-shift)
            return _retype(_div_const(rounded, 10 ** shift), typ)
        factor = 86400 * 10 ** unit if node.type.kind is Kind.DATE else 10 ** (unit - node.type.scale)
        return _mul_const(node, factor, typ)

    def to_float(self, node: Node, target: Type = T.FLOAT) -> Node:
        """A number as DOUBLE, or as FLOAT (`target` T.FLOAT32) the way DuckDB converts:
        a decimal M/10^s divides the two as DOUBLEs, then rounds to FLOAT."""
        k, single = node.type.kind, target.is_single
        if k is Kind.FLOAT:
            if node.type == target or not single:
                return _retype(node, target)             # FLOAT -> DOUBLE is exact
            return Lit(target, _single_or_none(node.value)) if isinstance(node, Lit) \
                else Op(target, "f2s", (node,))
        if isinstance(node, Lit):
            return Lit(target, None if node.value is None else _float_value(node, single))
        out = Op(T.FLOAT, "i2f", (node,))
        if k is Kind.DECIMAL and node.type.scale:
            out = Op(T.FLOAT, "div", (out, Lit(T.FLOAT, float(10 ** node.type.scale))))
        return Op(target, "f2s", (out,)) if single else out

    def rescale(self, node: Node, scale: int) -> Node:
        node = self.as_int(node)
        return _mul_const(node, 10 ** (scale - _scale(node)), Type(Kind.DECIMAL, scale))

    def as_int(self, node: Node) -> Node:
        return node if node.type.kind is not Kind.BOOL else _retype(node, T.INT)

    # -- strings ----------------------------------------------------------------
    def string_const(self, node: exp.Expression) -> str | None:
        v = self.value(node)
        if isinstance(v, Lit) and v.value is None:
            return None
        if not isinstance(v, _Str) or v.col is not None or v.sexpr[0] != "lit":
            self.fail(f"IN list of a string must hold string literals, got `{node.sql('duckdb')}`")
        return v.sexpr[1]

    def str_predicate(self, typ: Type, sexpr: list, operand: _Str, where) -> Node:
        if operand.col is None:
            return self.fold(typ, sexpr)
        return self.lookup(typ, sexpr, operand.col)

    def lookup(self, typ: Type, sexpr: list, col: Col) -> Node:
        return Lookup(typ, col, freeze(sexpr))

    def strings(self, node: exp.Expression, *args: exp.Expression) -> list[_Str]:
        out = []
        for a in args:
            v = self.value(a)
            if isinstance(v, Lit) and v.value is None:
                v = _Str(["lit", None], None)
            if not isinstance(v, _Str):
                self.fail(f"`{node.sql('duckdb')}` needs a string, got {v.type} `{a.sql('duckdb')}`")
            out.append(v)
        cols = {v.col for v in out if v.col is not None}
        if len(cols) > 1:
            names = ", ".join(sorted(c.name for c in cols))
            self.fail(f"`{node.sql('duckdb')}` combines string columns {names}: string "
                      "expressions may use one column each")
        return out

    def one_col(self, parts: list[_Str]) -> Col | None:
        return next((p.col for p in parts if p.col is not None), None)

    def str_fn(self, name: str, node: exp.Expression) -> _Str:
        (arg,) = self.strings(node, node.this)
        return _Str([name, arg.sexpr], arg.col)

    def _v_lower(self, node):
        return self.str_fn("lower", node)

    def _v_upper(self, node):
        return self.str_fn("upper", node)

    def _v_length(self, node):
        arg = self.str_fn("length", node)
        return self.str_predicate(T.INT, arg.sexpr, arg, node)

    def _pattern(self, node: exp.Expression, name: str, escape: str | None = None) -> Node:
        s, pat = self.strings(node, node.this, node.expression)
        if pat.col is not None or pat.sexpr[0] != "lit":
            self.fail(f"the pattern of {name} must be a string literal in `{node.sql('duckdb')}`")
        if pat.sexpr[1] is None:
            return Lit(T.BOOL, None)
        if name in ("like", "ilike"):
            sexpr = ["like", s.sexpr, pat.sexpr[1], name == "ilike", escape]
        elif name == "regexp_matches":
            sexpr = ["regexp", s.sexpr, pat.sexpr[1]]
        else:
            sexpr = ["starts_with", s.sexpr, pat.sexpr[1]]
        out = self.str_predicate(T.BOOL, sexpr, s, node)
        return Op(T.BOOL, "not", (out,)) if node.args.get("negate") else out

    def _v_like(self, node):
        return self._pattern(node, "like")

    def _v_ilike(self, node):
        return self._pattern(node, "ilike")

    def _v_escape(self, node: exp.Escape) -> Node:
        inner, esc = node.this, node.expression
        if not isinstance(inner, (exp.Like, exp.ILike)) or not (isinstance(esc, exp.Literal) and esc.is_string):
            self.unsupported(node)
        if len(esc.this) != 1:
            self.fail(f"ESCAPE must be a single character in `{node.sql('duckdb')}`")
        return self._pattern(inner, "ilike" if isinstance(inner, exp.ILike) else "like", esc.this)

    def _v_regexplike(self, node):
        if node.args.get("flag"):
            self.fail(f"regexp_matches options are not supported in `{node.sql('duckdb')}`; "
                      "use (?i) inside the pattern")
        return self._pattern(node, "regexp_matches")

    def _v_startswith(self, node):
        return self._pattern(node, "starts_with")

    # -- more string functions (per distinct value: strexpr.py, engine/strings/) ------------------
    def as_text(self, v, where: exp.Expression) -> _Str:
        """A string function's argument: a string, or DuckDB's text of a constant or of
        a plain column (what CAST(x AS VARCHAR) gives)."""
        if isinstance(v, _Str):
            return v
        if isinstance(v, Lit):
            return _Str(["lit", _literal_text(v)], None)
        if isinstance(v, Col) and "text" in sqltext.ENGINE_FEATURES:
            return _Str(["col"], self.text_column(v))
        what = (f"the text of column '{v.name}'" if isinstance(v, Col)
                else f"the text of a computed {v.type} value")
        self.fail(f"{what} (CAST to VARCHAR) is not supported in `{where.sql('duckdb')}`; "
                  "compare the value itself instead")

    def text_column(self, col: Col) -> Col:
        """The column read as DuckDB's text of its values (a column-table entry of its own)."""
        views = self.__dict__.setdefault("_text_views", {})
        if col.name not in views:
            views[col.name] = Col(T.STRING, col.name, len(self.columns))
            self.columns.append((col.name, T.STRING))
        return views[col.name]

    def fold_str(self, s: _Str) -> _Str:
        """A string expression without a column, evaluated now: its literal."""
        if s.col is not None or s.sexpr[0] == "lit":
            return s
        return _Str(["lit", _constant(s.sexpr).as_py()], None)

    def fold(self, typ: Type, sexpr: list) -> Lit:
        """A predicate or number computed from string constants only, evaluated now."""
        value = _constant(sexpr)
        if not value.is_valid:
            return Lit(typ, None)
        if typ.kind is Kind.FLOAT:
            return Lit(typ, _single(float(value.as_py())) if typ.is_single else float(value.as_py()))
        if typ.kind is Kind.DECIMAL:
            return Lit(typ, int(value.as_py().scaleb(typ.scale)))
        if typ.is_temporal:
            return Lit(typ, value.cast(pa.int32() if typ.kind is Kind.DATE else pa.int64()).as_py())
        return Lit(typ, int(value.as_py()))

    def cast_text_literal(self, text: str | None, target: Type, node: exp.Cast, safe: bool) -> Lit:
        """CAST('...' AS number or boolean), read as DuckDB reads text (' 2.5 ' -> 3)."""
        if text is None:
            return Lit(target, None)
        k = target.kind
        if k is Kind.INT:
            lo, hi = sqltext.INT_RANGES.get(_type_name(node), sqltext.INT_RANGES["BIGINT"])
            value = sqltext.parse_int(text, lo, hi)
        elif k is Kind.FLOAT:
            value = _single_or_none(sqltext.parse_float(text)) if target.is_single else sqltext.parse_float(text)
        elif k is Kind.DECIMAL:
            value = sqltext.parse_decimal(text, _decimal_precision(node), target.scale)
        else:
            value = sqltext.parse_bool(text)
            value = None if value is None else int(value)
        if value is None and not safe:
            self.fail(f"CAST of '{text}' to {_type_name(node)} fails (DuckDB raises) in "
                      f"`{node.sql('duckdb')}`; use TRY_CAST for NULL")
        return Lit(target, value)

    def texts(self, node: exp.Expression, *args: exp.Expression) -> list[_Str]:
        """String arguments of one function, all over one column (or none)."""
        out = [self.as_text(self.value(a), node) for a in args]
        self.one_column_of(node, out)
        return out

    def one_column_of(self, node: exp.Expression, parts: list[_Str]) -> Col | None:
        cols = {p.col for p in parts if p.col is not None}
        if len(cols) > 1:
            names = ", ".join(sorted(f"'{c.name}'" for c in cols))
            self.fail(f"`{node.sql('duckdb')}` combines columns {names} in one string expression: "
                      "a string expression may use one column (comparing expressions of two "
                      "columns is fine, e.g. lower(a) = lower(b))")
        return next(iter(cols), None)

    def literal_arg(self, node: exp.Expression, arg: exp.Expression, what: str) -> str | None:
        """A string-literal argument (NULL gives None)."""
        v = self.value(arg)
        if isinstance(v, Lit) and v.value is None:
            return None
        if not (isinstance(v, _Str) and v.col is None and v.sexpr[0] == "lit"):
            self.fail(f"{what} must be a string literal in `{node.sql('duckdb')}`")
        return v.sexpr[1]

    def int_arg(self, node: exp.Expression, arg: exp.Expression, what: str) -> int | None:
        v = self.num(arg)
        if not (isinstance(v, Lit) and v.type.kind in (Kind.INT, Kind.NULL)):
            self.fail(f"{what} must be an integer literal in `{node.sql('duckdb')}`")
        return v.value

    def _v_dpipe(self, node: exp.DPipe) -> _Str:          # a || b: NULL if either is
        parts = self.texts(node, node.this, node.expression)
        return _Str(["concat", [p.sexpr for p in parts], False], self.one_column_of(node, parts))

    def _v_concat(self, node: exp.Concat) -> _Str:        # concat(...): NULLs are skipped
        parts = self.texts(node, *node.expressions)
        return _Str(["concat", [p.sexpr for p in parts], True], self.one_column_of(node, parts))

    def _v_trim(self, node: exp.Trim) -> _Str:
        side = {"LEADING": "left", "TRAILING": "right"}.get((node.args.get("position") or "").upper(), "both")
        (arg,) = self.texts(node, node.this)
        chars = None
        if node.expression is not None:
            chars = self.literal_arg(node, node.expression, "the characters to trim")
            if chars is None:
                return _Str(["lit", None], None)
        return _Str(["trim", arg.sexpr, chars, side], arg.col)

    def _v_substring(self, node: exp.Substring) -> _Str:
        (arg,) = self.texts(node, node.this)
        start = self.int_arg(node, node.args["start"], "the start of substring") if node.args.get("start") else 1
        length = None
        if node.args.get("length") is not None:
            length = self.int_arg(node, node.args["length"], "the length of substring")
            if length is None:
                return _Str(["lit", None], None)
        if start is None:
            return _Str(["lit", None], None)
        return _Str(["substr", arg.sexpr, start, length], arg.col)

    def _v_replace(self, node: exp.Replace) -> _Str:
        if node.args.get("replacement") is None:
            self.fail(f"replace takes 3 arguments (string, text to replace, replacement) in "
                      f"`{node.sql('duckdb')}`")
        (arg,) = self.texts(node, node.this)
        old = self.literal_arg(node, node.expression, "the text to replace")
        new = self.literal_arg(node, node.args["replacement"], "the replacement")
        if old is None or new is None:
            return _Str(["lit", None], None)
        return _Str(["replace", arg.sexpr, old, new], arg.col)

    def str_test(self, node: exp.Expression, name: str, needle: exp.Expression, typ: Type = T.BOOL) -> Node:
        """contains / ends_with / strpos / regexp_full_match of a string and a literal."""
        (arg,) = self.texts(node, node.this)
        what = "the pattern" if name == "regexp_full" else "the text to find"
        lit = self.literal_arg(node, needle, f"{what} of {node.sql_name().lower()}")
        if lit is None:
            return Lit(typ, None)
        return self.str_predicate(typ, [name, arg.sexpr, lit], arg, node)

    def _v_contains(self, node: exp.Contains) -> Node:
        return self.str_test(node, "contains", node.expression)

    def _v_endswith(self, node: exp.EndsWith) -> Node:
        return self.str_test(node, "ends_with", node.expression)

    def _v_strposition(self, node: exp.StrPosition) -> Node:
        if node.args.get("position") is not None or node.args.get("occurrence") is not None:
            self.unsupported(node)
        return self.str_test(node, "strpos", node.args["substr"], T.INT)

    def _v_regexpfullmatch(self, node: exp.RegexpFullMatch) -> Node:
        if node.args.get("options") is not None:
            self.fail(f"regexp_full_match options are not supported in `{node.sql('duckdb')}`; "
                      "use (?i) inside the pattern")
        return self.str_test(node, "regexp_full", node.expression)

    def _v_anonymous(self, node: exp.Anonymous) -> Node | _Str:
        """Functions sqlglot does not model: by name."""
        handler = getattr(self, f"_fn_{node.name.lower()}", None)
        if handler is None:
            self.unsupported(node)
        return handler(node, node.expressions)

    # -- the run's fixed "now" (compiler/clock.py): literal constants, never kernel text
    def _v_currentdate(self, node: exp.CurrentDate) -> Node:
        if node.this is not None:
            self.fail(f"current_date takes no time zone in `{node.sql('duckdb')}`: now is UTC")
        return Lit(T.DATE, clock.days(clock.now()))

    def _v_currenttimestamp(self, node: exp.CurrentTimestamp) -> Node:
        if node.this is not None:
            self.fail(f"`{node.sql('duckdb')}`: current_timestamp takes no precision or zone here")
        return Lit(T.TIMESTAMP_US, clock.micros(clock.now()))

    def _fn_now(self, node, args) -> Node:
        if args:
            self.unsupported(node)
        return Lit(T.TIMESTAMP_US, clock.micros(clock.now()))

    _fn_get_current_timestamp = _fn_now
    _fn_transaction_timestamp = _fn_now

    def _fn_suffix(self, node, args) -> Node:
        if len(args) != 2:
            self.unsupported(node)
        return self.str_test(exp.EndsWith(this=args[0], expression=args[1]), "ends_with", args[1])

    # -- NULL and comparison helpers ---------------------------------------------------
    def joint_ranks(self, a: _Str, b: _Str, where, ordered: bool = True) -> tuple[Node, Node]:
        """Integers that compare as the strings of two columns' expressions do: codes in
        the joint dictionary of both, sorted when `ordered` (engine/strings/joint.py)."""
        if "joint" not in sqltext.ENGINE_FEATURES:
            self.fail(f"comparing two string columns ('{a.col.name}', '{b.col.name}') is not "
                      f"supported by this engine in `{where.sql('duckdb')}`")
        ra = self.lookup(T.INT, ["joint", a.sexpr, b.col.name, b.sexpr, ordered], a.col)
        rb = self.lookup(T.INT, ["joint", b.sexpr, a.col.name, a.sexpr, ordered], b.col)
        return ra, rb

    def _v_nullsafeneq(self, node: exp.NullSafeNEQ) -> Node:   # IS DISTINCT FROM
        return self.distinct(node)

    def _v_nullsafeeq(self, node: exp.NullSafeEQ) -> Node:     # IS NOT DISTINCT FROM
        return Op(T.BOOL, "not", (self.distinct(node),))

    def distinct(self, node: exp.Expression) -> Node:
        """`a IS DISTINCT FROM b`: never NULL; two NULLs are not distinct."""
        a, b = self.value(node.this), self.value(node.expression)
        if isinstance(a, _Str) or isinstance(b, _Str):
            a, b = (_null_str(x) for x in (a, b))
            if isinstance(a, _Str) and isinstance(b, _Str):
                if a.col is not None and b.col is not None and a.col != b.col:
                    return _distinct(*self.joint_ranks(a, b, node, ordered=False))
                if a.col is None and b.col is None:
                    a, b = self.fold_str(a), self.fold_str(b)
                    return Lit(T.BOOL, int(a.sexpr[1] != b.sexpr[1]))
                return self.lookup(T.BOOL, ["distinct", a.sexpr, b.sexpr], a.col or b.col)
            text = _Sql(node)
            a = self.coerce_string_literal(a, b, text) if isinstance(a, _Str) else a
            b = self.coerce_string_literal(b, a, text) if isinstance(b, _Str) else b
        differ = self.exact_compare("ne", a, b)
        if differ is not None:          # NULL-ness from the operands, not a rescaled copy
            return _distinct(a, b, differ)
        a, b = self.unify(a, b, _Sql(node))
        return _distinct(a, b)

    def _v_nullif(self, node: exp.Nullif) -> Node | _Str:
        a, b = self.value(node.this), self.value(node.expression)
        if isinstance(a, _Str) or isinstance(b, _Str):
            parts = [self.as_text(_null_str(x), node) for x in (a, b)]
            return _Str(["nullif", parts[0].sexpr, parts[1].sexpr], self.one_column_of(node, parts))
        if a.type.kind is Kind.NULL:
            return a
        x, y = self.unify(a, b, _Sql(node))
        return Case(a.type, ((Op(T.BOOL, "eq", (x, y)), Lit(a.type, None)),), a)

    def _v_greatest(self, node: exp.Greatest) -> Node | _Str:
        return self.extreme(node, "max")

    def _v_least(self, node: exp.Least) -> Node | _Str:
        return self.extreme(node, "min")

    def extreme(self, node: exp.Expression, which: str) -> Node | _Str:
        """greatest / least: NULLs are skipped (NULL only when every argument is)."""
        exprs = [node.this, *node.expressions]
        if len(exprs) > _MAX_EXTREME_ARGS:
            self.fail(f"{node.sql_name().lower()} takes at most {_MAX_EXTREME_ARGS} arguments "
                      f"in a rule, got {len(exprs)}")
        vals = [self.value(e) for e in exprs]
        if all(isinstance(v, Lit) and v.type.kind is Kind.NULL for v in vals):
            return Lit(T.NULL, None)
        if any(isinstance(v, _Str) for v in vals):
            parts = [self.as_text(_null_str(v), node) for v in vals]
            return _Str(["extreme", which, [p.sexpr for p in parts]], self.one_column_of(node, parts))
        typ = _common_type(self, vals, node)
        vals = [self.convert(v, typ, node) for v in vals]
        cmp = "gt" if which == "max" else "lt"
        while len(vals) > 1:       # pairwise, so each argument is read a logarithmic number of times
            nxt = []
            for k in range(0, len(vals) - 1, 2):
                x, y = vals[k], vals[k + 1]
                take = Or(T.BOOL, (Op(T.BOOL, cmp, (y, x)), Op(T.BOOL, "isnull", (x,))))
                nxt.append(Case(typ, ((take, y),), x))
            vals = nxt + vals[len(vals) - len(vals) % 2:]
        return vals[0]

    def _v_isnan(self, node: exp.IsNan) -> Node:
        x = self.float_arg(node)
        if x.type.kind is not Kind.FLOAT:
            return _false_unless_null(x)
        return Op(T.BOOL, "gt", (x, Lit(T.FLOAT, float("inf"))))    # NaN sorts above inf

    def _v_isinf(self, node: exp.IsInf) -> Node:
        x = self.float_arg(node)
        if x.type.kind is not Kind.FLOAT:
            return _false_unless_null(x)
        return Or(T.BOOL, (Op(T.BOOL, "eq", (x, Lit(T.FLOAT, float("inf")))),
                           Op(T.BOOL, "eq", (x, Lit(T.FLOAT, float("-inf"))))))

    def _fn_isfinite(self, node, args) -> Node:
        if len(args) != 1:
            self.unsupported(node)
        x = self.float_arg(exp.IsInf(this=args[0]))
        if x.type.kind is not Kind.FLOAT:
            return Op(T.BOOL, "notnull", (x,)) if x.type.kind is not Kind.NULL else Lit(T.BOOL, None)
        return And(T.BOOL, (Op(T.BOOL, "lt", (x, Lit(T.FLOAT, float("inf")))),
                            Op(T.BOOL, "gt", (x, Lit(T.FLOAT, float("-inf"))))))

    def float_arg(self, node: exp.Expression) -> Node:
        x = self.num(node.this)
        x = _resolve_str_const(self, x, Lit(T.FLOAT, None))
        if not (x.type.is_numeric or x.type.kind is Kind.NULL):
            self.fail(f"`{node.sql('duckdb')}` needs a number, got {x.type}")
        return x

    # -- dates and timestamps -------------------------------------------------------------
    def temporal_arg(self, node: exp.Expression, arg: exp.Expression) -> Node:
        v = self.num(arg)
        v = _resolve_str_const(self, v, Lit(T.TIMESTAMP_US, None))
        if not (v.type.is_temporal or v.type.kind is Kind.NULL):
            self.fail(f"`{node.sql('duckdb')}` needs a date or timestamp, got {v.type}")
        return v

    def part(self, node: exp.Expression, unit: str, arg: exp.Expression) -> Node:
        """date_part(unit, x) / extract(unit FROM x) / year(x) ..."""
        x = self.temporal_arg(node, arg)
        name = _PART_ALIASES.get(unit.lower(), unit.lower())
        if x.type.kind is Kind.NULL:
            return Lit(T.FLOAT if name == "epoch" else T.INT, None)
        if name not in _PARTS:
            self.fail(f"unsupported date part '{unit}' in `{node.sql('duckdb')}`; supported: "
                      f"{', '.join(sorted(_PARTS))}")
        clock = _Clock(x)
        clock.tz = isinstance(x, Col) and _is_tz(self.schema.field(x.name).type)
        return _PARTS[name](clock)

    def _v_extract(self, node: exp.Extract) -> Node:
        return self.part(node, node.this.name, node.expression)

    def _fn_date_part(self, node, args) -> Node:
        if len(args) != 2 or not (isinstance(args[0], exp.Literal) and args[0].is_string):
            self.fail(f"date_part needs a part name and a value, e.g. date_part('year', d), "
                      f"in `{node.sql('duckdb')}`")
        return self.part(node, args[0].this, args[1])

    _fn_datepart = _fn_date_part

    def _v_year(self, node):
        return self.part(node, "year", node.this)

    def _v_quarter(self, node):
        return self.part(node, "quarter", node.this)

    def _v_month(self, node):
        return self.part(node, "month", node.this)

    def _v_day(self, node):
        return self.part(node, "day", node.this)

    _v_dayofmonth = _v_day

    def _v_hour(self, node):
        return self.part(node, "hour", node.this)

    def _v_minute(self, node):
        return self.part(node, "minute", node.this)

    def _v_second(self, node):
        return self.part(node, "second", node.this)

    def _v_dayofweek(self, node):
        return self.part(node, "dow", node.this)

    def _v_dayofweekiso(self, node):
        return self.part(node, "isodow", node.this)

    def _v_dayofyear(self, node):
        return self.part(node, "doy", node.this)

    def _v_week(self, node):
        if node.args.get("mode") is not None:
            self.unsupported(node)
        return self.part(node, "week", node.this)

    def _v_weekofyear(self, node):
        return self.part(node, "week", node.this)

    def _v_timestamptrunc(self, node: exp.TimestampTrunc) -> Node:
        """date_trunc(unit, x): a TIMESTAMP (also for a DATE, as DuckDB)."""
        if node.args.get("zone") is not None:
            self.unsupported(node)
        unit = node.args["unit"].name.lower()
        unit = _TRUNC_ALIASES.get(unit, unit)
        x = self.temporal_arg(node, node.this)
        if x.type.kind is Kind.NULL:
            return Lit(T.TIMESTAMP_US, None)
        if unit not in _TRUNC_UNITS:
            self.fail(f"unsupported date_trunc unit '{unit}' in `{node.sql('duckdb')}`; supported: "
                      f"{', '.join(_TRUNC_UNITS)}")
        if x.type.kind is Kind.TIMESTAMP and x.type.scale == 9 and unit in ("millisecond", "microsecond"):
            self.fail(f"date_trunc to a {unit} of a TIMESTAMP_NS value is not supported in "
                      f"`{node.sql('duckdb')}`")
        return _trunc(_Clock(x), unit)

    _v_datetrunc = _v_timestamptrunc

    def _v_datediff(self, node: exp.DateDiff) -> Node:
        """date_diff(unit, start, end): unit boundaries crossed from start to end."""
        unit = (node.args.get("unit").name if node.args.get("unit") is not None else "day").lower()
        unit = _PART_ALIASES.get(unit, unit)
        end = self.temporal_arg(node, node.this)
        start = self.temporal_arg(node, node.expression)
        if Kind.NULL in (start.type.kind, end.type.kind):
            return Lit(T.INT, None)
        if unit not in _DIFF_UNITS:
            self.fail(f"unsupported date_diff unit '{unit}' in `{node.sql('duckdb')}`; supported: "
                      f"{', '.join(_DIFF_UNITS)}")
        if start.type != end.type:
            start, end = self.unify_temporal(start, end, _Sql(node))
        return _diff(unit, _Clock(start), _Clock(end))

    def _v_datefromparts(self, node: exp.DateFromParts) -> Node:
        """make_date(y, m, d); NULL for a day that does not exist (DuckDB raises)."""
        if any(node.args.get(k) is None for k in ("year", "month", "day")):
            self.fail(f"make_date takes 3 arguments (year, month, day) in `{node.sql('duckdb')}`")
        parts = []
        for key in ("year", "month", "day"):
            v = self.num(node.args[key])
            v = _resolve_str_const(self, v, Lit(T.INT, None))
            if v.type.kind not in (Kind.INT, Kind.BOOL, Kind.NULL):
                self.fail(f"make_date needs integers, got {v.type} in `{node.sql('duckdb')}`")
            parts.append(_as_i(v) if v.type.kind is not Kind.NULL else Lit(T.INT, None))
        y, m, d = parts
        q = _i("add", _i("mul", _i("add", y, 400 * _SHIFT), 12), _i("sub", m, 3))
        first = _first_of(q)
        length = _i("sub", _first_of(_i("add", q, 1)), first)
        ok = And(T.BOOL, (Op(T.BOOL, "ge", (y, _k(-5877641))), Op(T.BOOL, "le", (y, _k(5881580))),
                          Op(T.BOOL, "ge", (m, _k(1))), Op(T.BOOL, "le", (m, _k(12))),
                          Op(T.BOOL, "ge", (d, _k(1))), Op(T.BOOL, "le", (d, length))))
        return Case(T.DATE, ((ok, _retype(_i("add", first, _i("sub", d, 1)), T.DATE)),), Lit(T.DATE, None))

    def _v_interval(self, node: exp.Interval) -> "_Interval":
        if not isinstance(node.parent, (exp.Add, exp.Sub, exp.DateAdd, exp.DateSub)):
            self.fail(f"an INTERVAL can only be added to or subtracted from a date or timestamp "
                      f"in `{node.sql('duckdb')}`")
        if _AGO.search(self.sql):       # sqlglot drops a trailing 'ago' (which negates)
            self.fail(f"INTERVAL '... ago' is not supported in `{self.sql}`; subtract the interval instead")
        unit = node.args.get("unit")
        if unit is None:
            text = node.this.this if isinstance(node.this, exp.Literal) else None
            parsed = _parse_interval(text) if text is not None else None
            if parsed is None:
                self.fail(f"cannot read the interval `{node.sql('duckdb')}`")
            return _Interval(*(Lit(T.INT, v) for v in parsed))
        name = unit.name.lower()
        if name not in _INTERVAL_UNITS:
            self.fail(f"unsupported INTERVAL unit {unit.name} in `{node.sql('duckdb')}`")
        if isinstance(node.this, exp.Literal):
            parsed = _parse_interval(f"{node.this.this} {name}")
            if parsed is None:
                self.fail(f"cannot read the interval `{node.sql('duckdb')}`")
            return _Interval(*(Lit(T.INT, v) for v in parsed))
        count = self.num(node.this)
        if count.type.kind not in (Kind.INT, Kind.BOOL, Kind.NULL):
            self.fail(f"an INTERVAL count must be an integer in `{node.sql('duckdb')}`")
        count = _as_i(count) if count.type.kind is not Kind.NULL else Lit(T.INT, None)
        field, factor = _INTERVAL_UNITS[name]
        parts = {"months": _k(0), "days": _k(0), "micros": _k(0)}
        parts[field] = _mul_const(count, factor, T.INT) if factor != 1 else count
        return _Interval(parts["months"], parts["days"], parts["micros"])

    def _v_dateadd(self, node: exp.DateAdd) -> Node:
        return self.interval_arith("add", self.num(node.this), self.num(node.expression), _Sql(node))

    def _v_datesub(self, node: exp.DateSub) -> Node:
        return self.interval_arith("sub", self.num(node.this), self.num(node.expression), _Sql(node))

    def interval_arith(self, op: str, a, b, text) -> Node:
        """date/timestamp ± INTERVAL: months first (the day clamped to the month's
        length), then days, then the time; a DATE gives a TIMESTAMP, as in DuckDB."""
        if isinstance(a, _Interval) and op == "add":
            a, b = b, a
        if isinstance(a, _StrConst):
            a = _resolve_str_const(self, a, Lit(T.TIMESTAMP_US, None))
        if isinstance(a, _Interval) or not isinstance(b, _Interval):
            self.fail(f"unsupported interval arithmetic `{text}`: add an INTERVAL to a date or "
                      "timestamp, or subtract it from one")
        if not (a.type.is_temporal or a.type.kind is Kind.NULL):
            self.fail(f"`{text}` adds an INTERVAL to {a.type}; it needs a date or timestamp")
        if a.type.kind is Kind.NULL:
            return Lit(T.TIMESTAMP_US, None)
        if op == "sub":
            b = b.negated()
        return _add_interval(_Clock(a), b)

    def _v_try(self, node: exp.Expression) -> Node | _Str:
        """TRY(x): x, NULL where it errs. batchaot already answers so for every row value
        (overflow, bad text, impossible dates give NULL)."""
        return self.value(node.this)

    # -- functions ----------------------------------------------------------------
    def _v_abs(self, node: exp.Abs) -> Node:
        arg = self.num(node.this)
        self.need_numeric(arg, node)
        arg = self.as_int(arg)
        return Op(arg.type, "abs", (arg,))

    def _v_round(self, node: exp.Round) -> Node:
        arg = self.num(node.this)
        self.need_numeric(arg, node)
        digits = 0
        if node.args.get("decimals") is not None:
            d = self.num(node.args["decimals"])
            if not (isinstance(d, Lit) and d.type.kind is Kind.INT and d.value is not None):
                self.fail(f"round() digits must be an integer literal in `{node.sql('duckdb')}`")
            digits = d.value
            if not -18 <= digits <= 18:
                self.fail(f"round() digits must be between -18 and 18 in `{node.sql('duckdb')}`")
        arg = self.as_int(arg)
        if arg.type.kind is Kind.FLOAT:
            return _rounded(Op(arg.type, "round", (arg,), imm=digits))
        scale = _scale(arg)
        if digits >= scale:
            return arg
        return Op(arg.type, "round", (arg,), imm=digits - scale)

    def _v_coalesce(self, node: exp.Coalesce) -> Node | _Str:
        exprs = [node.this, *node.expressions]
        vals = [self.value(e) for e in exprs]
        if any(isinstance(v, _Str) for v in vals):
            parts = self.strings(node, *exprs)
            return _Str(["coalesce", [p.sexpr for p in parts]], self.one_col(parts))
        text = _Sql(node)

        def tree(lo: int, hi: int) -> Node:
            # COALESCE is associative: a balanced tree keeps 1,000 arguments 10 levels deep
            # (a chain would be 1,000); up to three arguments this is the chain
            if hi - lo == 1:
                return vals[lo]
            mid = (lo + hi) // 2
            a, b = self.unify(tree(lo, mid), tree(mid, hi), text)
            return Op(a.type if a.type.kind is not Kind.NULL else b.type, "coalesce", (a, b))

        return tree(0, len(vals))

    def _v_case(self, node: exp.Case) -> Node:
        subject = node.this
        whens = []
        for branch in node.args.get("ifs") or []:
            cond = (self.compare("eq", subject, branch.this) if subject is not None
                    else self.cond(branch.this))
            whens.append((cond, branch.args["true"]))
        default = node.args.get("default")
        return self.case(whens, default, node)

    def _v_if(self, node: exp.If) -> Node:
        return self.case([(self.cond(node.this), node.args["true"])], node.args.get("false"), node)

    def case(self, whens: list, default, node) -> Node:
        values = [self.num(v) for _, v in whens]
        values.append(self.num(default) if default is not None else Lit(T.NULL, None))
        typ = _common_type(self, values, node)
        if typ.kind is Kind.STRING:       # string literals only: no column to evaluate them over
            self.fail(f"CASE/IF with string results is not supported in `{_Sql(node)}`; "
                      "compare inside the branches, e.g. CASE WHEN ... THEN status = 'a' ... END")
        values = [self.convert(v, typ, node) for v in values]
        return Case(typ, tuple((c, v) for (c, _), v in zip(whens, values)), values[-1])

    def convert(self, v: Node, typ: Type, node) -> Node:
        """Implicit conversion of a value to a (wider) common type."""
        if v.type == typ:
            return v
        if v.type.kind is Kind.NULL:
            return Lit(typ, None)
        if typ.kind is Kind.FLOAT:
            return self.to_float(v, typ)
        if typ.kind is Kind.DECIMAL:
            return self.rescale(v, typ.scale)
        if typ.is_temporal:
            return self.to_ts(v, typ.scale) if typ.kind is Kind.TIMESTAMP else v
        return _retype(v, typ)

    def _v_cast(self, node: exp.Cast) -> Node | _Str:
        target = self.cast_target(node)
        safe = isinstance(node, exp.TryCast) or bool(node.args.get("safe"))
        arg = self.value(node.this)
        if target.kind is Kind.STRING and not isinstance(arg, _Str):
            return self.as_text(arg, node)                 # DuckDB's text of the value
        if isinstance(arg, _Str):
            if target.kind is Kind.STRING:
                return arg
            arg = self.fold_str(arg)
            if arg.col is None and target.kind in (Kind.INT, Kind.FLOAT, Kind.DECIMAL, Kind.BOOL):
                return self.cast_text_literal(arg.sexpr[1], target, node, safe)
            if arg.col is None:
                return _literal_from_string(self, arg.sexpr[1], target, node, safe,
                                            tz=_cast_name(node) == "TIMESTAMPTZ")
            # bad text gives NULL, CAST or TRY_CAST (sqltext.py says why)
            return self.lookup(target, ["cast", arg.sexpr, target.kind.value, target.scale, safe,
                                        _type_name(node), _decimal_precision(node)], arg.col)
        value = self.cast_value(arg, target, node)
        if target.kind is Kind.DECIMAL and _decimal_precision(node) <= T.MAX_DECIMAL_PRECISION:
            value = _fit_precision(value, target, _decimal_precision(node))
        code = T.INT_RANGE_CODES.get(_type_name(node))
        if code and target.kind is Kind.INT and not isinstance(value, Lit):
            return Op(T.INT, "narrow", (value,), imm=code)     # out of range: NULL
        if code and isinstance(value, Lit) and value.value is not None and not _fits(value.value, code):
            return Lit(T.INT, None)
        return value

    _v_trycast = _v_cast

    def cast_target(self, node: exp.Cast) -> Type:
        to = node.args["to"]
        name = _type_name(node)
        if name in ("TIMESTAMPNTZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMPTZ"):
            scale = {"TIMESTAMP_S": 0, "TIMESTAMP_MS": 3, "TIMESTAMP_NS": 9}.get(name, 6)
            return Type(Kind.TIMESTAMP, scale)
        if name == "DECIMAL":
            params = [int(p.this.this) for p in to.expressions] if to.expressions else [18, 3]
            scale = params[1] if len(params) > 1 else 0
            if params[0] > T.MAX_DECIMAL_PRECISION:
                self.fail(f"DECIMAL precision above {T.MAX_DECIMAL_PRECISION} in `{node.sql('duckdb')}`")
            return Type(Kind.DECIMAL, scale)
        if name not in T.CAST_TARGETS:
            self.fail(f"unsupported CAST target {to.sql('duckdb')} in `{node.sql('duckdb')}`")
        return T.CAST_TARGETS[name]

    def cast_value(self, arg: Node, target: Type, node) -> Node:
        src = arg.type
        text = node.sql("duckdb")
        if src.kind is Kind.NULL or src == target:
            return Lit(target, None) if src.kind is Kind.NULL else arg
        if target.kind is Kind.STRING:
            self.fail(f"CAST of {src} to VARCHAR is not supported in `{text}`")
        if target.kind is Kind.FLOAT and src.is_numeric:
            return self.to_float(arg, target)
        if target.kind is Kind.INT and src.kind is Kind.FLOAT:
            return Op(T.INT, "f2i", (arg,))
        if target.kind is Kind.INT and src.kind is Kind.DECIMAL:
            rounded = Op(src, "round", (arg,), imm=-src.scale) if src.scale else arg
            return _retype(_div_const(rounded, 10 ** src.scale), T.INT)
        if target.kind is Kind.INT and src.kind is Kind.BOOL:
            return _retype(arg, T.INT)
        if target.kind is Kind.BOOL and src.is_numeric:
            zero = Lit(T.FLOAT, 0.0) if src.kind is Kind.FLOAT else Lit(T.INT, 0)
            return Op(T.BOOL, "ne", (self.as_int(arg) if src.kind is not Kind.FLOAT else arg, zero))
        if target.kind is Kind.DECIMAL and src.kind in (Kind.INT, Kind.BOOL, Kind.DECIMAL):
            if src.kind is Kind.DECIMAL and src.scale > target.scale:
                rounded = Op(src, "round", (arg,), imm=target.scale - src.scale)
                return _retype(_div_const(rounded, 10 ** (src.scale - target.scale)), target)
            return self.rescale(arg, target.scale)
        if target.is_temporal and src.is_temporal:
            if target.kind is Kind.TIMESTAMP:
                return self.to_ts(arg, target.scale)
            return _retype(_floor_div_const(arg, 86400 * 10 ** src.scale), T.DATE)
        self.fail(f"unsupported CAST from {src} to {target} in `{text}`")

    def coerce_string_literal(self, s: _Str, other: Node, text: "_Sql") -> Node:
        if s.col is not None:
            self.fail(f"type mismatch in `{text}`: string column '{s.col.name}' compared with {other.type}")
        target = other.type if other.type.kind is not Kind.NULL else T.STRING
        if target.kind is Kind.STRING:
            self.fail(f"constant string expression `{text}`")
        if s.sexpr[0] != "lit":     # DuckDB casts only a literal implicitly
            self.fail(f"type mismatch in `{text}`: a string expression compared with {other.type}; "
                      "CAST it or write its value")
        return _literal_from_string(self, s.sexpr[1], target, text, False, tz=self.has_tz(other))

    def has_tz(self, node: Node) -> bool:
        """A column of an Arrow timestamp type with a time zone (DuckDB's TIMESTAMPTZ)."""
        if not isinstance(node, Col) or node.name not in self.schema.names:
            return False
        t = self.schema.field(node.name).type
        return pa.types.is_timestamp(t) and t.tz is not None


# --- helpers -------------------------------------------------------------------

def _type_name(node: exp.Cast) -> str:
    """The CAST target's type name as sqlglot spells it (INT, TINYINT, DECIMAL, ...)."""
    to = node.args["to"]
    return to.this.name if hasattr(to.this, "name") else str(to.this)


_INT_BOUNDS = {1: (-2 ** 7, 2 ** 7 - 1), 2: (-2 ** 15, 2 ** 15 - 1), 3: (-2 ** 31, 2 ** 31 - 1),
               4: (0, 2 ** 8 - 1), 5: (0, 2 ** 16 - 1), 6: (0, 2 ** 32 - 1), 7: (0, 2 ** 63 - 1)}


def _fits(value: int, code: int) -> bool:
    lo, hi = _INT_BOUNDS[code]
    return lo <= value <= hi


class _Sql:
    """SQL text of expressions for error messages, rendered only if an error needs it
    (rendering costs as much as binding)."""

    def __init__(self, *parts):
        self.parts = parts

    def __str__(self) -> str:
        return " ".join(p if isinstance(p, str) else p.sql("duckdb") for p in self.parts)


class _StrConst:
    """Placeholder for a string literal in arithmetic; resolved by _resolve_str_const."""

    def __init__(self, s: _Str):
        self.s = s
        self.type = T.STRING


def _resolve_str_const(binder: Binder, v, other) -> Node:
    if isinstance(v, _StrConst):
        target = other.type if not isinstance(other, _StrConst) else T.FLOAT
        if v.s.sexpr[0] != "lit":   # DuckDB casts only a literal implicitly: 5 < '1' || '2' fails
            binder.fail("a string expression where a number is needed: CAST it or write its value")
        return _literal_from_string(binder, v.s.sexpr[1], target, None, False)
    return v


def _literal_from_string(binder: Binder, text: str | None, target: Type, where, safe: bool,
                         tz: bool = False) -> Lit:
    """DuckDB's implicit cast of a string literal to a typed constant (`tz`: to TIMESTAMPTZ)."""
    if text is None:
        return Lit(target, None)
    try:
        return Lit(target, _parse_literal(text.strip(), target, tz))
    except (ValueError, decimal.InvalidOperation, OverflowError):
        if safe:
            return Lit(target, None)
        if isinstance(where, exp.Expression):
            where = where.sql("duckdb")
        ctx = f" in `{where}`" if where else ""
        binder.fail(f"type mismatch: '{text}' is not a valid {target}{ctx}")


def _parse_literal(text: str, target: Type, tz: bool = False):
    k = target.kind
    if k is Kind.INT:
        return int(text)
    if k is Kind.FLOAT:
        return _single(float(text)) if target.is_single else float(text)
    if k is Kind.BOOL:
        low = text.lower()
        if low in ("true", "t", "1", "yes", "y"):
            return 1
        if low in ("false", "f", "0", "no", "n"):
            return 0
        raise ValueError(text)
    if k is Kind.DECIMAL:
        d = decimal.Decimal(text)
        scaled = d.scaleb(target.scale).to_integral_value(rounding=decimal.ROUND_HALF_UP)
        return int(scaled)
    if k is Kind.DATE:
        return _timestamp_text(text, 9, False)[0]
    if k is Kind.TIMESTAMP:
        return _timestamp_literal(text, target.scale, tz)
    raise ValueError(text)


_TS_TEXT = re.compile(
    r"(?P<y>\d{1,6})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{1,2})(?::(?P<S>\d{1,2})(?:\.(?P<f>\d*))?)?)?"
    r"(?:\s*(?P<off>Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)|\s+(?P<zone>[A-Za-z][A-Za-z0-9_/+-]*))?", re.ASCII)


def _timestamp_literal(text: str, unit: int, tz: bool) -> int:
    """A timestamp string as DuckDB casts it, in ticks of 10^-unit s since 1970 (UTC).

    TIMESTAMP ignores a UTC offset or zone name written after the time (its value is the
    wall clock as written); TIMESTAMPTZ (`tz`) applies it (no offset: the session time
    zone, UTC for batchaot). Digits past the unit's are cut; TIMESTAMP_S / _MS literals
    are read to microseconds and then rounded half away from zero, as DuckDB's cast does.
    """
    parse_unit = 9 if unit == 9 else 6
    days, ticks, offset_s = _timestamp_text(text, parse_unit, tz)
    value = (days * 86400 - offset_s) * 10 ** parse_unit + ticks
    if unit < parse_unit:
        step = 10 ** (parse_unit - unit)
        q, r = divmod(abs(value), step)
        value = (q + (2 * r >= step)) * (1 if value >= 0 else -1)
    return value


def _timestamp_text(text: str, unit: int, tz: bool) -> tuple[int, int, int]:
    """(days since 1970, ticks of 10^-unit s within the day, UTC offset in seconds to
    subtract) of a DuckDB timestamp or date string; ValueError if it is not one."""
    m = _TS_TEXT.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)) or y == 0:
        raise ValueError(text)
    h, mi, sec = int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0)
    frac = (m["f"] or "")[:unit].ljust(unit, "0")
    if mi > 59 or sec > 59 or h > 24 or (h == 24 and (mi or sec or int(frac or 0))):
        raise ValueError(text)          # 24:00:00 is the next midnight, as in DuckDB
    ticks = (h * 3600 + mi * 60 + sec) * 10 ** unit + int(frac or 0)
    offset = 0
    if m["off"] and m["off"] != "Z":
        sign = -1 if m["off"][0] == "-" else 1
        digits = m["off"][1:].replace(":", "")
        parts = [int(digits[i:i + 2]) for i in range(0, len(digits), 2)]
        hh, mm, ss = (parts + [0, 0])[:3]
        offset = sign * (hh * 3600 + mm * 60 + ss)
    days = days_from_civil(y, mo, d)
    if m["zone"]:
        offset = _zone_offset(m["zone"], days, ticks // 10 ** unit)
    return days, ticks, offset if tz else 0


def _zone_offset(name: str, days: int, seconds: int) -> int:
    """UTC offset in seconds of a named time zone at that wall-clock time."""
    import zoneinfo
    if name.upper() in ("UTC", "GMT", "Z"):
        return 0
    try:
        zone = zoneinfo.ZoneInfo(name)
        wall = _dt.datetime(1970, 1, 1) + _dt.timedelta(days=days, seconds=seconds)
        return int(wall.replace(tzinfo=zone).utcoffset().total_seconds())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError):
        raise ValueError(name) from None


def _cast_name(node: exp.Expression) -> str:
    to = node.args.get("to")
    return "" if to is None else getattr(to.this, "name", str(to.this))


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _units_differ(a: Node, b: Node) -> bool:
    """Two temporal values in different units (DATE, TIMESTAMP_S ... TIMESTAMP_NS)."""
    return a.type.is_temporal and b.type.is_temporal and a.type != b.type


def _ticks_per_second_exp(t: Type) -> int:
    return t.scale if t.kind is Kind.TIMESTAMP else -1       # DATE: coarser than any


def _temporal_compare(op: str, a: Node, b: Node) -> Node:
    """`a op b` for a date/timestamp `a` and `b` in different units, exact for every value.

    DuckDB widens the coarser operand to the finer unit, which overflows 64 bits for
    years outside 1677-2262 in nanoseconds (DuckDB then raises an error). Instead the
    finer value x is brought to the coarser unit (f ticks of x per tick of y), with no
    overflow and the same answer wherever widening fits (infinities stay infinities):
    x < y*f iff floor(x/f) < y; x >= y*f iff floor(x/f) >= y; x > y*f iff ceil(x/f) > y;
    x <= y*f iff ceil(x/f) <= y; = and <> take both.
    """
    if _ticks_per_second_exp(a.type) < _ticks_per_second_exp(b.type):
        return _temporal_compare(_FLIP[op], b, a)
    fine, coarse = a, b
    if coarse.type.kind is Kind.DATE:
        f = 86400 * 10 ** fine.type.scale
    else:
        f = 10 ** (fine.type.scale - coarse.type.scale)
    if isinstance(fine, Lit):           # the bounds are computed here: no division per row
        return _divided_compare(op, fine, coarse, f)
    # Where y*f is a finite tick of the finer unit (every date and timestamp of 1677-2262
    # in nanoseconds, all of them in coarser units), x op y*f is exact: one multiply. The
    # division-based form is kept for the rest (far years, infinities), evaluated only
    # where a row needs it.
    bound = min((2 ** 63 - 2) // f, _INFINITY[coarse.type.kind] - 1)
    widened = Op(T.BOOL, op, (fine, _mul_const(coarse, f, fine.type)))
    if isinstance(coarse, Lit):
        if coarse.value is None or -bound <= coarse.value <= bound:
            return widened
        return _divided_compare(op, fine, coarse, f)
    outside = Or(T.BOOL, (Op(T.BOOL, "gt", (coarse, _k(bound))), Op(T.BOOL, "lt", (coarse, _k(-bound)))))
    return Case(T.BOOL, ((outside, _divided_compare(op, fine, coarse, f)),), widened)


def _divided_compare(op: str, fine: Node, coarse: Node, f: int) -> Node:
    """`fine op coarse` with the finer value brought to the coarser unit (see above)."""
    lo, hi = (_keep_infinity(fine, coarse.type, _floor_div_const(fine, f, coarse.type)),
              _keep_infinity(fine, coarse.type, _ceil_div_const(fine, f, coarse.type)))
    if op in ("lt", "ge"):
        return Op(T.BOOL, op, (lo, coarse))
    if op in ("gt", "le"):
        return Op(T.BOOL, op, (hi, coarse))
    if op == "eq":
        return And(T.BOOL, (Op(T.BOOL, "ge", (lo, coarse)), Op(T.BOOL, "le", (hi, coarse))))
    return Or(T.BOOL, (Op(T.BOOL, "lt", (lo, coarse)), Op(T.BOOL, "gt", (hi, coarse))))


def _py_compare(op: str, a: list, b: list) -> bool | None:
    x, y = a[1], b[1]
    if x is None or y is None:
        return None
    return {"eq": x == y, "ne": x != y, "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}[op]


def _flatten(node: exp.Expression, cls: type) -> list[exp.Expression]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        while isinstance(n, exp.Paren):
            n = n.this
        if isinstance(n, cls):
            stack.extend([n.expression, n.this])
        else:
            out.append(n)
    return out


def _scale(node: Node) -> int:
    return node.type.scale if node.type.kind is Kind.DECIMAL else 0


def _ts_scale(t: Type) -> int:
    return t.scale if t.kind is Kind.TIMESTAMP else 0


def _retype(node: Node, typ: Type) -> Node:
    if isinstance(node, Lit):
        return Lit(typ, node.value)
    if isinstance(node, Op):
        return Op(typ, node.op, node.args, node.imm)
    if isinstance(node, Col):
        return Col(typ, node.name, node.index)
    if isinstance(node, Case):
        return Case(typ, node.whens, node.default)
    if isinstance(node, Lookup):
        return Lookup(typ, node.column, node.expr)
    return node


def _float_target(*nodes) -> Type:
    """DuckDB's float type where numbers meet a float: FLOAT (32-bit) when every float
    among them is a FLOAT, DOUBLE once one is a DOUBLE (f + 1 and f + 0.5 are FLOAT)."""
    floats = [n.type for n in nodes if _kind(n) is Kind.FLOAT]
    return T.FLOAT32 if floats and all(t.is_single for t in floats) else T.FLOAT


_INEXACT_IN_FLOAT32 = ("add", "sub", "mul", "div", "round")


def _rounded(node: Node) -> Node:
    """A FLOAT (32-bit) result rounded back to float32: computed in float64 from float32
    operands, + - * / are then exactly IEEE single precision (53 >= 2 * 24 + 2 bits)."""
    if isinstance(node, Op) and node.type.is_single and node.op in _INEXACT_IN_FLOAT32:
        return Op(node.type, "f2s", (node,))
    return node


def _single(x: float) -> float:
    """x rounded to the nearest float32 (+-inf past its range)."""
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def _single_or_none(x: float | None) -> float | None:
    return None if x is None else _single(x)


def _float_value(lit: Lit, single: bool) -> float:
    """A non-NULL integer or decimal literal as a DOUBLE or FLOAT value, as DuckDB's cast."""
    scale = lit.type.scale if lit.type.kind is Kind.DECIMAL else 0
    value = lit.value / 10 ** scale if scale else float(lit.value)     # correctly rounded
    return _single(value) if single else value


def _kind(node) -> Kind | None:
    """A typed node's kind (None for strings and intervals, which have no Type)."""
    typ = getattr(node, "type", None)
    return typ.kind if isinstance(typ, Type) else None


def _is_integer(node) -> bool:
    return _kind(node) in (Kind.INT, Kind.BOOL)


def _scales_differ(a: Node, b: Node) -> bool:
    """Two decimals (neither a NULL literal) of different scales."""
    return (_kind(a) is Kind.DECIMAL and _kind(b) is Kind.DECIMAL and _scale(a) != _scale(b)
            and not any(isinstance(x, Lit) and x.value is None for x in (a, b)))


def _scaled_decimal(node) -> bool:
    return (_kind(node) is Kind.DECIMAL and node.type.scale > 0
            and not (isinstance(node, Lit) and node.value is None))


def _int_vs_literal(op: str, i: Node, unscaled: int, factor: int) -> Node:
    """`i op unscaled/factor` for an integer i, as a comparison of integers: the literal
    rounded down (floor) or up (ceil) as the operator needs. A literal that no integer
    equals makes `=` FALSE and `<>` TRUE, still NULL where i is NULL (i < MIN, i >= MIN)."""
    floor, exact = unscaled // factor, unscaled % factor == 0
    ceil = floor if exact else floor + 1
    never, always = Op(T.BOOL, "lt", (i, Lit(T.INT, -2 ** 63))), Op(T.BOOL, "ge", (i, Lit(T.INT, -2 ** 63)))
    if op in ("eq", "ne") and not exact:
        return never if op == "eq" else always
    bound = {"gt": floor, "le": floor, "ge": ceil, "lt": ceil, "eq": floor, "ne": floor}[op]
    if bound > 2 ** 63 - 1:             # above every integer
        return never if op in ("gt", "ge", "eq") else always
    if bound < -2 ** 63:
        return always if op in ("gt", "ge", "ne") else never
    return Op(T.BOOL, op, (i, Lit(T.INT, bound)))


def _mul_const(node: Node, factor: int, typ: Type) -> Node:
    if factor == 1:
        return _retype(node, typ)
    if isinstance(node, Lit):
        return Lit(typ, None if node.value is None else node.value * factor)
    return Op(typ, "mul", (node, Lit(T.INT, factor)))


def _div_const(node: Node, divisor: int) -> Node:
    if divisor == 1:
        return node
    return Op(node.type, "idiv", (node, Lit(T.INT, divisor)))


_INFINITY = {Kind.TIMESTAMP: 2**63 - 1, Kind.DATE: 2**31 - 1}


def _keep_infinity(fine: Node, coarse: Type, value: Node) -> Node:
    """DuckDB reads a timestamp of ±(2^63-1) ticks (a date of ±(2^31-1) days) as ±infinity,
    which stays infinity in every unit: the finer value's infinities map to the coarser's."""
    inf, to = _INFINITY[fine.type.kind], _INFINITY[coarse.kind]
    if isinstance(fine, Lit):
        return Lit(coarse, to if fine.value == inf else -to if fine.value == -inf else value.value)
    return Case(coarse, ((Op(T.BOOL, "eq", (fine, Lit(fine.type, inf))), Lit(coarse, to)),
                         (Op(T.BOOL, "eq", (fine, Lit(fine.type, -inf))), Lit(coarse, -to))), value)


def _floor_div_const(node: Node, divisor: int, typ: Type | None = None) -> Node:
    """Floor division by a positive constant (timestamps before 1970 round down to their
    day), typed `typ` (default: the node's type)."""
    typ = typ or node.type
    if isinstance(node, Lit):
        return Lit(typ, None if node.value is None else node.value // divisor)
    q = Op(typ, "idiv", (node, Lit(T.INT, divisor)))
    neg_rem = Op(T.BOOL, "lt", (Op(node.type, "mod", (node, Lit(T.INT, divisor))), Lit(T.INT, 0)))
    return Op(typ, "sub", (q, _retype(neg_rem, T.INT)))


def _ceil_div_const(node: Node, divisor: int, typ: Type) -> Node:
    """Ceiling division by a positive constant: truncation, plus one for a positive rest."""
    if isinstance(node, Lit):
        return Lit(typ, None if node.value is None else -(-node.value // divisor))
    q = Op(typ, "idiv", (node, Lit(T.INT, divisor)))
    pos_rem = Op(T.BOOL, "gt", (Op(node.type, "mod", (node, Lit(T.INT, divisor))), Lit(T.INT, 0)))
    return Op(typ, "add", (q, _retype(pos_rem, T.INT)))


def _common_type(binder: Binder, values: list[Node], node) -> Type:
    kinds = {v.type.kind for v in values} - {Kind.NULL}
    if not kinds:
        return T.BOOL
    if len(kinds) == 1:
        (k,) = kinds
        if k is Kind.DECIMAL:
            return Type(Kind.DECIMAL, max(_scale(v) for v in values))
        if k is Kind.TIMESTAMP:
            return Type(Kind.TIMESTAMP, max(v.type.scale for v in values if v.type.kind is k))
        if k is Kind.FLOAT:             # FLOAT and DOUBLE branches meet as DOUBLE
            return _float_target(*values)
        return next(v.type for v in values if v.type.kind is k)
    if kinds <= {Kind.INT, Kind.BOOL}:
        return T.INT
    if kinds <= {Kind.INT, Kind.BOOL, Kind.DECIMAL}:
        return Type(Kind.DECIMAL, max(_scale(v) for v in values))
    if kinds <= {Kind.INT, Kind.BOOL, Kind.DECIMAL, Kind.FLOAT}:
        return _float_target(*values)
    if kinds <= {Kind.DATE, Kind.TIMESTAMP}:
        return Type(Kind.TIMESTAMP, max(_ts_scale(v.type) for v in values))
    binder.fail(f"CASE/COALESCE branches have incompatible types "
                f"{', '.join(sorted(k.value for k in kinds))} in `{node.sql('duckdb')}`")


# --- SQL functions: strings, NULLs, and the calendar as integer IR ---------------------
# (Binder's handlers above; the string functions run per distinct value in
# engine/strings/, the calendar compiles to integer bytecode like any arithmetic.)

_MAX_EXTREME_ARGS = 64


def _null_str(v):
    """A bare NULL literal as a string operand."""
    if isinstance(v, Lit) and v.value is None and v.type.kind is Kind.NULL:
        return _Str(["lit", None], None)
    return v


def _constant(sexpr: list) -> pa.Scalar:
    """The value of a string expression over constants only (as the engine computes it)."""
    out = strexpr.evaluate(sexpr, pa.array([None], pa.string()))
    return out[0] if isinstance(out, pa.Array) else out


def _plain_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _literal_text(v: Lit) -> str | None:
    """DuckDB's text of a constant (CAST(constant AS VARCHAR))."""
    if v.value is None:
        return None
    k = v.type.kind
    if k is Kind.BOOL:
        return "true" if v.value else "false"
    if k is Kind.INT:
        return str(v.value)
    if k is Kind.DECIMAL:
        return f"{decimal.Decimal(v.value).scaleb(-v.type.scale):f}"
    if k is Kind.FLOAT:
        return sqltext.float_text(v.value, single=v.type.is_single)
    if k is Kind.DATE:
        return sqltext.date_text(v.value)
    if k is Kind.TIMESTAMP:
        return sqltext.timestamp_text(v.value, v.type.scale)
    raise ValueError(f"no text for {v.type}")


def _distinct(a: Node, b: Node, differ: Node | None = None) -> Node:
    """a IS DISTINCT FROM b: `differ` (a <> b for two values of one type when not
    given), or else exactly one is NULL."""
    one_null = Op(T.BOOL, "ne", (Op(T.BOOL, "isnull", (a,)), Op(T.BOOL, "isnull", (b,))))
    return Op(T.BOOL, "coalesce", (Op(T.BOOL, "ne", (a, b)) if differ is None else differ, one_null))


def _known_unless_null(x: Node, verdict: bool) -> Node:
    """`verdict` where x is not NULL, else NULL."""
    return Case(T.BOOL, ((Op(T.BOOL, "notnull", (x,)), Lit(T.BOOL, int(verdict))),), Lit(T.BOOL, None))


def _false_unless_null(x: Node) -> Node:
    if isinstance(x, Lit) and x.value is None:
        return Lit(T.BOOL, None)
    return Case(T.BOOL, ((Op(T.BOOL, "notnull", (x,)), Lit(T.BOOL, 0)),), Lit(T.BOOL, None))


def _k(v: int) -> Lit:
    return Lit(T.INT, v)


def _as_i(node: Node) -> Node:
    return node if node.type == T.INT else _retype(node, T.INT)


def _i(op: str, a: Node, b: Node | int) -> Node:
    return Op(T.INT, op, (a, _k(b) if isinstance(b, int) else b))


def _flag(op: str, a: Node, b: Node | int) -> Node:
    """A comparison as 0 / 1."""
    return _retype(Op(T.BOOL, op, (a, _k(b) if isinstance(b, int) else b)), T.INT)


def _fdiv(a: Node, k: int) -> Node:
    return _floor_div_const(a, k)


def _pmod(a: Node, k: int) -> Node:
    """a mod k in [0, k), reading `a` once (the IR is a tree: every reuse copies it)."""
    return _i("mod", _i("add", _i("mod", a, k), k), k)


# Days are shifted by this many 400-year cycles (146097 days each) so that the calendar's
# divisions see non-negative values (integer division truncates): enough for every
# int64 timestamp, small enough that nothing overflows.
_SHIFT = 1 << 40


class _Civil:
    """Year, month and day of days since 1970-01-01 (proleptic Gregorian, astronomical
    years), after C. Neri and L. Schneider, "Euclidean affine functions and their
    application to calendar algorithms" (2022): each intermediate value is read at most
    twice, so the expression trees stay small."""

    def __init__(self, days: Node):
        z = _i("add", days, 719468 + 146097 * _SHIFT)        # days since 0000-03-01, shifted
        n1 = _i("add", _i("mul", z, 4), 3)
        self.c = _i("idiv", n1, 146097)                       # centuries
        n2 = _i("add", _i("mul", _i("idiv", _i("mod", n1, 146097), 4), 4), 3)
        self.yc = _i("idiv", n2, 1461)                        # year of the century
        ny = _i("idiv", _i("mod", n2, 1461), 4)               # day of the March-based year
        n3 = _i("add", _i("mul", ny, 5), 461)
        self.mm = _i("idiv", n3, 153)                         # 3..14: March..February
        self.d = _i("add", _i("idiv", _i("mod", n3, 153), 5), 1)
        self.j = _flag("ge", ny, 306)                         # January or February

    @property
    def ys(self) -> Node:
        """The calendar year + 400 * _SHIFT."""
        return _i("add", _i("add", _i("mul", self.c, 100), self.yc), self.j)

    @property
    def y(self) -> Node:
        return _i("sub", self.ys, 400 * _SHIFT)

    @property
    def m(self) -> Node:
        return _i("sub", self.mm, _i("mul", self.j, 12))

    @property
    def cm(self) -> Node:
        """12 * year + month - 1, + 4800 * _SHIFT (January and February fold in)."""
        return _i("sub", _i("add", _i("mul", _i("add", _i("mul", self.c, 100), self.yc), 12), self.mm), 1)


def _first_of(q: Node) -> Node:
    """Days since 1970 of the first day of month q, counted from March of the shifted
    year 0 (q = cm - 2)."""
    y = _i("idiv", q, 12)
    m = _i("add", _i("mod", q, 12), 3)
    days = _i("add", _i("idiv", _i("mul", _i("idiv", y, 100), 146097), 4),
              _i("idiv", _i("mul", _i("mod", y, 100), 1461), 4))
    return _i("sub", _i("add", days, _i("idiv", _i("sub", _i("mul", m, 153), 457), 5)),
              719468 + 146097 * _SHIFT)


def _jan1(ys: Node) -> Node:
    """Days since 1970 of January 1 of the shifted year ys."""
    return _first_of(_i("sub", _i("mul", ys, 12), 2))


def _min_i(a: Node, b: Node) -> Node:
    return Case(T.INT, ((Op(T.BOOL, "lt", (b, a)), b),), a)


class _Clock:
    """A date or timestamp split into days since 1970 and ticks since midnight."""

    tz = False      # a TIMESTAMPTZ column (only epoch differs)

    def __init__(self, x: Node):
        self.x = x
        split = _SPLITS.get(id(x))
        if split is not None and split[0] is x:        # built from days and a time of day
            self.scale = x.type.scale
            self.days = split[1]
            self.tod = split[2] if split[2] is not None else \
                Case(T.INT, ((Op(T.BOOL, "notnull", (split[1],)), _k(0)),), _k(None))
        elif x.type.kind is Kind.DATE:
            self.scale = None
            self.days = _as_i(x)
            self.tod = Case(T.INT, ((Op(T.BOOL, "notnull", (x,)), _k(0)),), _k(None))
        else:
            self.scale = x.type.scale
            per_day = 86400 * 10 ** self.scale
            self.days = _fdiv(_as_i(x), per_day)
            self.tod = _pmod(_as_i(x), per_day)
        self._civil = None

    @property
    def civil(self) -> _Civil:
        if self._civil is None:
            self._civil = _Civil(self.days)
        return self._civil

    def ticks(self, digits: int) -> Node:
        """The value in units of 10^-digits seconds since the epoch."""
        if self.scale is None:
            return _i("mul", self.days, 86400 * 10 ** digits)
        if digits >= self.scale:
            return _mul_const(_as_i(self.x), 10 ** (digits - self.scale), T.INT)
        return _fdiv(_as_i(self.x), 10 ** (self.scale - digits))

    def time_part(self, digits: int) -> Node:
        """Whole units of 10^-digits s since midnight (DATE: 0)."""
        if self.scale is None:
            return self.tod
        if digits >= self.scale:
            return _i("mul", self.tod, 10 ** (digits - self.scale))
        return _i("idiv", self.tod, 10 ** (self.scale - digits))


def _isodow(c: _Clock) -> Node:
    return _i("add", _pmod(_i("add", c.days, 3), 7), 1)


def _iso_thursday(c: _Clock) -> Node:
    """The Thursday of the date's ISO week (its year is the ISO year)."""
    return _i("add", _i("sub", c.days, _pmod(_i("add", c.days, 3), 7)), 3)


def _iso_week(c: _Clock) -> Node:
    t = _iso_thursday(c)
    return _i("add", _i("idiv", _i("sub", t, _jan1(_Civil(t).ys)), 7), 1)


def _yearweek(c: _Clock) -> Node:
    """ISO year * 100 + ISO week, the week negated in years BC (0 is 1 BC), as DuckDB."""
    y = _Civil(_iso_thursday(c)).y
    w = _iso_week(c)
    return Case(T.INT, ((Op(T.BOOL, "gt", (y, _k(0))), _i("add", _i("mul", y, 100), w)),),
                _i("sub", _i("mul", y, 100), w))


def _century(y: Node, size: int) -> Node:
    """DuckDB's century / millennium: counted from year 1 (year 0 is 1 BC)."""
    pos = _i("add", _i("idiv", _i("sub", y, 1), size), 1)
    neg = _i("sub", _i("idiv", y, size), 1)
    return Case(T.INT, ((Op(T.BOOL, "gt", (y, _k(0))), pos),), neg)


def _is_tz(t: pa.DataType) -> bool:
    t = _plain_type(t)
    return pa.types.is_timestamp(t) and t.tz is not None


def _epoch(c: _Clock) -> Node:
    if c.scale is None:
        return Op(T.FLOAT, "i2f", (_i("mul", c.days, 86400),))
    if c.tz and c.scale == 6:
        # TIMESTAMPTZ: DuckDB (ICU) adds whole milliseconds and the microseconds apart
        ms = Op(T.FLOAT, "div", (Op(T.FLOAT, "i2f", (_fdiv(_as_i(c.x), 1000),)), Lit(T.FLOAT, 1000.0)))
        us = Op(T.FLOAT, "div", (Op(T.FLOAT, "i2f", (_pmod(_as_i(c.x), 1000),)), Lit(T.FLOAT, 1e6)))
        return Op(T.FLOAT, "add", (ms, us))
    ticks = Op(T.FLOAT, "i2f", (_as_i(c.x),))
    return ticks if c.scale == 0 else Op(T.FLOAT, "div", (ticks, Lit(T.FLOAT, float(10 ** c.scale))))


_PARTS = {
    "year": lambda c: c.civil.y,
    "month": lambda c: c.civil.m,
    "day": lambda c: c.civil.d,
    "quarter": lambda c: _i("add", _i("idiv", _i("sub", c.civil.m, 1), 3), 1),
    "dow": lambda c: _pmod(_i("add", c.days, 4), 7),
    "isodow": _isodow,
    "doy": lambda c: _i("add", _i("sub", c.days, _jan1(c.civil.ys)), 1),
    "week": _iso_week,
    "isoyear": lambda c: _Civil(_iso_thursday(c)).y,
    "yearweek": _yearweek,
    "decade": lambda c: _i("idiv", c.civil.y, 10),
    "century": lambda c: _century(c.civil.y, 100),
    "millennium": lambda c: _century(c.civil.y, 1000),
    "hour": lambda c: _i("idiv", c.time_part(0), 3600),
    "minute": lambda c: _i("mod", _i("idiv", c.time_part(0), 60), 60),
    "second": lambda c: _i("mod", c.time_part(0), 60),
    "millisecond": lambda c: _i("mod", c.time_part(3), 60_000),
    "microsecond": lambda c: _i("mod", c.time_part(6), 60_000_000),
    "epoch": _epoch,
}


def _aliases(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {alias: name for name, names in table.items() for alias in names}


_PART_ALIASES = _aliases({
    "year": ("years", "y", "yr", "yrs"), "month": ("months", "mon", "mons"),
    "day": ("days", "d", "dayofmonth"), "quarter": ("quarters",),
    "dow": ("dayofweek", "weekday"), "doy": ("dayofyear",), "week": ("weeks", "w", "weekofyear"),
    "decade": ("decades", "dec", "decs"), "century": ("centuries", "c", "cent", "cents"),
    "millennium": ("millennia", "millenium", "mil", "mils"),
    "hour": ("hours", "h", "hr", "hrs"), "minute": ("minutes", "m", "min", "mins"),
    "second": ("seconds", "s", "sec", "secs"),
    "millisecond": ("milliseconds", "ms", "msec", "msecs", "msecond", "mseconds"),
    "microsecond": ("microseconds", "us", "usec", "usecs", "usecond", "useconds"),
})

_TRUNC_UNITS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second",
                "millisecond", "microsecond")
_TRUNC_ALIASES = _PART_ALIASES


_SPLITS: dict[int, tuple] = {}     # id(timestamp node) -> (node, days, ticks of the day)


def _ts_result(days: Node, tod: Node | None, scale: int | None, split: bool = True) -> Node:
    """days and ticks since midnight as a TIMESTAMP of that unit (None, a DATE's: us).

    With `split` (tod within the day), the parts are remembered: a calendar function of
    this value reads them instead of dividing the timestamp again (the IR is a tree, and
    each reuse copies the whole expression)."""
    scale = 6 if scale is None else scale
    ticks = _i("mul", days, 86400 * 10 ** scale)
    if tod is not None:
        ticks = _i("add", ticks, tod)
    out = _retype(ticks, Type(Kind.TIMESTAMP, scale))
    if split:
        if len(_SPLITS) > 1024:
            _SPLITS.clear()
        _SPLITS[id(out)] = (out, days, tod)
    return out


def _trunc(c: _Clock, unit: str) -> Node:
    if unit == "year":
        return _ts_result(_jan1(c.civil.ys), None, c.scale)
    if unit == "quarter":
        cm = c.civil.cm
        return _ts_result(_first_of(_i("sub", _i("sub", cm, _i("mod", cm, 3)), 2)), None, c.scale)
    if unit == "month":
        return _ts_result(_i("add", _i("sub", c.days, c.civil.d), 1), None, c.scale)
    if unit == "week":                                  # ISO: Monday
        return _ts_result(_i("sub", c.days, _pmod(_i("add", c.days, 3), 7)), None, c.scale)
    if unit == "day" or c.scale is None:
        return _ts_result(c.days, None, c.scale)
    digits = {"hour": 0, "minute": 0, "second": 0, "millisecond": 3, "microsecond": 6}[unit]
    size = {"hour": 3600, "minute": 60}.get(unit, 1)
    if c.scale <= digits and size == 1:
        return c.x                                      # already whole units
    step = size * 10 ** (c.scale - digits)
    return _ts_result(c.days, _i("mul", _i("idiv", c.tod, step), step), c.scale)


_DIFF_UNITS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second",
               "millisecond", "microsecond", "decade", "century", "millennium")


def _diff(unit: str, s: _Clock, e: _Clock) -> Node:
    if unit in ("year", "decade", "century", "millennium"):
        size = {"year": 1, "decade": 10, "century": 100, "millennium": 1000}[unit]
        return _i("sub", _i("idiv", e.civil.y, size), _i("idiv", s.civil.y, size))
    if unit in ("month", "quarter"):
        if unit == "month":
            return _i("sub", e.civil.cm, s.civil.cm)
        # DuckDB divides 12 * year + month - 1 by 3 truncating (years BC differ from floor)
        def quarters(c):
            return _i("idiv", _i("sub", c.civil.cm, 4800 * _SHIFT), 3)
        return _i("sub", quarters(e), quarters(s))
    if unit == "week":
        return _i("idiv", _i("sub", e.days, s.days), 7)
    if unit == "day":
        return _i("sub", e.days, s.days)
    digits = {"hour": 0, "minute": 0, "second": 0, "millisecond": 3, "microsecond": 6}[unit]
    size = {"hour": 3600, "minute": 60}.get(unit, 1)
    te, ts = e.ticks(digits), s.ticks(digits)
    if size == 1:
        return _i("sub", te, ts)
    return _i("sub", _fdiv(te, size), _fdiv(ts, size))


class _Interval:
    """An INTERVAL operand: months, days and microseconds (integer nodes), as DuckDB
    keeps them apart. Only `date/timestamp ± interval` uses it."""

    type = T.TIMESTAMP_US       # what a string literal next to it is read as

    def __init__(self, months: Node, days: Node, micros: Node):
        self.months, self.days, self.micros = months, days, micros

    def negated(self) -> "_Interval":
        def neg(n: Node) -> Node:
            if isinstance(n, Lit):
                return Lit(T.INT, None if n.value is None else -n.value)
            return Op(T.INT, "neg", (n,))
        return _Interval(neg(self.months), neg(self.days), neg(self.micros))


def _is_zero(n: Node) -> bool:
    return isinstance(n, Lit) and n.value == 0


def _month_start(y: Node, m: Node) -> Node:
    """Days since 1970 of the first day of month m (3..14: March..February) of the
    March-based year y (shifted by 400 * _SHIFT)."""
    days = _i("add", _i("idiv", _i("mul", _i("idiv", y, 100), 146097), 4),
              _i("idiv", _i("mul", _i("mod", y, 100), 1461), 4))
    return _i("sub", _i("add", days, _i("idiv", _i("sub", _i("mul", m, 153), 457), 5)),
              719468 + 146097 * _SHIFT)


def _month_length(y: Node, m: Node) -> Node:
    """Days in month m (3..14) of the March-based year y: February (14) has 28 or 29."""
    y1 = _i("add", y, 1)                       # February's calendar year (shifted: same leaps)
    leap = _i("add", _i("sub", _flag("eq", _i("mod", y1, 4), 0), _flag("eq", _i("mod", y1, 100), 0)),
              _flag("eq", _i("mod", y1, 400), 0))
    other = _i("sub", _i("idiv", _i("sub", _i("mul", m, 153), 304), 5),
               _i("idiv", _i("sub", _i("mul", m, 153), 457), 5))
    return Case(T.INT, ((Op(T.BOOL, "eq", (m, _k(14))), _i("add", leap, 28)),), other)


def _add_interval(c: _Clock, iv: _Interval) -> Node:
    if c.scale is not None and c.scale < 6:
        c = _Clock(_mul_const(_as_i(c.x), 10 ** (6 - c.scale), Type(Kind.TIMESTAMP, 6)))
    days = c.days
    if not _is_zero(iv.months):
        civ = c.civil
        year = _i("add", _i("mul", civ.c, 100), civ.yc)               # March-based, shifted
        r = _i("add", _i("add", civ.mm, iv.months), 12 * _SHIFT - 3)   # months from its March
        y = _i("sub", _i("add", year, _i("idiv", r, 12)), _SHIFT)
        m = _i("add", _i("mod", r, 12), 3)
        clamped = _min_i(civ.d, _month_length(y, m))                   # Jan 31 + 1 month: Feb 29
        days = _i("add", _month_start(y, m), _i("sub", clamped, 1))
    if not _is_zero(iv.days):
        days = _i("add", days, iv.days)
    scale = 6 if c.scale is None else c.scale
    tod = c.tod if c.scale is not None else None
    if not _is_zero(iv.micros):
        extra = _mul_const(iv.micros, 10 ** (scale - 6), T.INT)
        return _ts_result(days, extra if tod is None else _i("add", tod, extra), scale, split=False)
    return _ts_result(days, tod, scale)


_INTERVAL_UNITS = {}
for _names, _spec in ((("year", "years", "y", "yr", "yrs"), ("months", 12)),
                      (("quarter", "quarters"), ("months", 3)),
                      (("month", "months", "mon", "mons"), ("months", 1)),
                      (("week", "weeks", "w"), ("days", 7)),
                      (("day", "days", "d"), ("days", 1)),
                      (("hour", "hours", "h", "hr", "hrs"), ("micros", 3_600_000_000)),
                      (("minute", "minutes", "m", "min", "mins"), ("micros", 60_000_000)),
                      (("second", "seconds", "s", "sec", "secs"), ("micros", 1_000_000)),
                      (("millisecond", "milliseconds", "ms", "msec", "msecs"), ("micros", 1000)),
                      (("microsecond", "microseconds", "us", "usec", "usecs"), ("micros", 1))):
    for _n in _names:
        _INTERVAL_UNITS[_n] = _spec

_AGO = re.compile(r"interval\s*'[^']*\bago\b", re.IGNORECASE)
_INTERVAL_TOKEN = re.compile(
    r"\s*(?:(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[A-Za-z]+)"
    r"|(?P<sign>[+-])?(?P<h>\d+):(?P<mi>\d+)(?::(?P<s>\d+(?:\.\d*)?))?|(?P<ago>ago))", re.IGNORECASE)


def _parse_interval(text: str) -> tuple[int, int, int] | None:
    """(months, days, microseconds) of an interval string such as '1 month 2 days',
    '1.5 days', '01:30:00' or '2 hours ago'; None if it is not one."""
    months = days = micros = decimal.Decimal(0)
    pos, sign = 0, 1
    text = text.strip()
    if not text:
        return None
    while pos < len(text):
        m = _INTERVAL_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        pos = m.end()
        if m["ago"]:
            if text[pos:].strip():
                return None
            sign = -1
            break
        if m["num"] is not None:
            unit = _INTERVAL_UNITS.get(m["unit"].lower())
            if unit is None:
                return None
            field, factor = unit
            v = decimal.Decimal(m["num"]) * factor
            if field == "months":
                months += v
            elif field == "days":
                days += v
            else:
                micros += v
        else:
            t = (int(m["h"]) * 3600 + int(m["mi"]) * 60) * 10 ** 6 + decimal.Decimal(m["s"] or 0) * 10 ** 6
            micros += -t if m["sign"] == "-" else t
    whole_months = int(months)                           # toward zero, as DuckDB
    days += (months - whole_months) * 30
    whole_days = int(days)
    micros += (days - whole_days) * 86_400_000_000
    return sign * whole_months, sign * whole_days, sign * int(micros)


def _fit_precision(value: Node, target: Type, precision: int) -> Node:
    """A DECIMAL(p, s) value that needs more than p digits is NULL (DuckDB's TRY_CAST;
    its CAST raises). The value is scaled: it fits when |v| < 10^p."""
    limit = 10 ** precision
    if isinstance(value, Lit):
        return value if value.value is None or abs(value.value) < limit else Lit(target, None)
    fits = Op(T.BOOL, "lt", (Op(target, "abs", (value,)), Lit(target, limit)))
    return Case(target, ((fits, value),), Lit(target, None))


def _decimal_precision(node: exp.Cast) -> int:
    """The precision of a CAST to DECIMAL(p, s) (18 otherwise: what a word holds)."""
    to = node.args["to"]
    if _type_name(node) == "DECIMAL" and to.expressions:
        return int(to.expressions[0].this.this)
    return 18
