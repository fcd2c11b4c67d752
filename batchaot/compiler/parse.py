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
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..errors import RuleError
from . import types as T
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
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        errs = exc.errors[0] if exc.errors else {}
        where = f" at col {errs.get('col')}" if errs.get("col") else ""
        raise RuleError(rule, f"cannot parse `{sql}`{where}: "
                        f"{errs.get('description', str(exc).splitlines()[0])}") from None
    except sqlglot.errors.SqlglotError as exc:
        raise RuleError(rule, f"cannot parse `{sql}`: {exc}") from None
    if tree is None:
        raise RuleError(rule, "empty predicate")
    return tree


def bind(rule: str, sql: str, schema: pa.Schema) -> BoundRule:
    """Parse and bind one row predicate; the result is a BOOL-typed IR tree."""
    binder = Binder(rule, sql, schema)
    root = binder.predicate(parse_sql(rule, sql))
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
        return self.value(node.this)

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
        if any(c in text for c in "eE") or text.lower() in ("inf", "nan"):
            return Lit(T.FLOAT, float(text))
        if "." in text:
            d = decimal.Decimal(text)
            scale = max(0, -d.as_tuple().exponent)
            return Lit(Type(Kind.DECIMAL, scale), int(d.scaleb(scale)))
        return Lit(T.INT, int(text))

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
        lo = self.compare("ge", node.this, node.args["low"])
        hi = self.compare("le", node.this, node.args["high"])
        return And(T.BOOL, (lo, hi))

    def _v_in(self, node: exp.In) -> Node:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            self.unsupported(node)
        this = self.value(node.this)
        if isinstance(this, _Str):
            values = [self.string_const(x) for x in node.expressions]
            return self.str_predicate(T.BOOL, ["in", this.sexpr, values], this, node)
        return Or(T.BOOL, tuple(self.compare("eq", node.this, x) for x in node.expressions))

    # -- comparisons and arithmetic ---------------------------------------------
    def compare(self, op: str, left: exp.Expression, right: exp.Expression) -> Node:
        a, b = self.value(left), self.value(right)
        if isinstance(a, _Str) and isinstance(b, _Str):
            return self.str_compare(op, a, b, left, right)
        text = _Sql(left, _SYMBOL[op], right)
        if isinstance(a, _Str):
            a = self.coerce_string_literal(a, b, text)
        if isinstance(b, _Str):
            b = self.coerce_string_literal(b, a, text)
        a, b = self.unify(a, b, text)
        return Op(T.BOOL, op, (a, b))

    def str_compare(self, op: str, a: _Str, b: _Str, left, right) -> Node:
        if a.col is not None and b.col is not None and a.col != b.col:
            self.fail(f"comparing two string columns ('{a.col.name}', '{b.col.name}') is not "
                      "supported: string predicates are evaluated per distinct value of one column")
        if a.col is None and b.col is not None:
            return self.str_compare(_FLIP[op], b, a, right, left)
        if a.col is None:
            return Lit(T.BOOL, int(_py_compare(op, a.sexpr, b.sexpr)))
        return self.str_predicate(T.BOOL, ["cmp", op, a.sexpr, b.sexpr], a, left)

    def arith(self, op: str, a: Node, b: Node, node: exp.Expression) -> Node:
        text = _Sql(node)
        a, b = _resolve_str_const(self, a, b), _resolve_str_const(self, b, a)
        if op in ("add", "sub") and (a.type.is_temporal or b.type.is_temporal):
            return self.date_arith(op, a, b, text)
        self.need_numeric(a, node)
        self.need_numeric(b, node)
        if op == "div":
            return Op(T.FLOAT, "div", (self.to_float(a), self.to_float(b)))
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
        return Op(typ, op, (a, b))

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
            return self.to_float(a), self.to_float(b)
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
        """DATE (days) or TIMESTAMP(u) → TIMESTAMP(unit) ticks."""
        factor = 86400 * 10 ** unit if node.type.kind is Kind.DATE else 10 ** (unit - node.type.scale)
        typ = Type(Kind.TIMESTAMP, unit)
        return _mul_const(node, factor, typ)

    def to_float(self, node: Node) -> Node:
        k = node.type.kind
        if k is Kind.FLOAT:
            return node
        if isinstance(node, Lit):
            v = node.value
            return Lit(T.FLOAT, None if v is None else
                       (v / 10 ** node.type.scale if k is Kind.DECIMAL else float(v)))
        out = Op(T.FLOAT, "i2f", (node,))
        if k is Kind.DECIMAL and node.type.scale:
            out = Op(T.FLOAT, "div", (out, Lit(T.FLOAT, float(10 ** node.type.scale))))
        return out

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
            self.fail(f"constant string expression `{where.sql('duckdb')}`: "
                      "write its value instead")
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
            return Op(T.FLOAT, "round", (arg,), imm=digits)
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
        out = vals[-1]
        for v in reversed(vals[:-1]):
            v, out = self.unify(v, out, node.sql("duckdb"))
            out = Op(v.type if v.type.kind is not Kind.NULL else out.type, "coalesce", (v, out))
        return out

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
        values = [self.convert(v, typ, node) for v in values]
        return Case(typ, tuple((c, v) for (c, _), v in zip(whens, values)), values[-1])

    def convert(self, v: Node, typ: Type, node) -> Node:
        """Implicit conversion of a value to a (wider) common type."""
        if v.type == typ:
            return v
        if v.type.kind is Kind.NULL:
            return Lit(typ, None)
        if typ.kind is Kind.FLOAT:
            return self.to_float(v)
        if typ.kind is Kind.DECIMAL:
            return self.rescale(v, typ.scale)
        if typ.is_temporal:
            return self.to_ts(v, typ.scale) if typ.kind is Kind.TIMESTAMP else v
        return _retype(v, typ)

    def _v_cast(self, node: exp.Cast) -> Node | _Str:
        target = self.cast_target(node)
        safe = isinstance(node, exp.TryCast) or bool(node.args.get("safe"))
        arg = self.value(node.this)
        if isinstance(arg, _Str):
            if target.kind is Kind.STRING:
                return arg
            if arg.col is None:
                return _literal_from_string(self, arg.sexpr[1], target, node, safe)
            return self.lookup(target, ["cast", arg.sexpr, target.kind.value, target.scale, safe],
                               arg.col)
        value = self.cast_value(arg, target, node)
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
            return self.to_float(arg)
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
        return _literal_from_string(self, s.sexpr[1], target, text, False)


# --- helpers -------------------------------------------------------------------

class _Sql:
    """SQL text of expressions for error messages, rendered only if an error needs it
    (rendering costs as much as binding)."""

    def __init__(self, *parts):
        self.parts = parts

    def __str__(self) -> str:
        return " ".join(p if isinstance(p, str) else p.sql("duckdb") for p in self.parts)


def _type_name(node: exp.Cast) -> str:
    """The CAST target's type name as sqlglot spells it (INT, TINYINT, DECIMAL, ...)."""
    to = node.args["to"]
    return to.this.name if hasattr(to.this, "name") else str(to.this)


_INT_BOUNDS = {1: (-2 ** 7, 2 ** 7 - 1), 2: (-2 ** 15, 2 ** 15 - 1), 3: (-2 ** 31, 2 ** 31 - 1),
               4: (0, 2 ** 8 - 1), 5: (0, 2 ** 16 - 1), 6: (0, 2 ** 32 - 1), 7: (0, 2 ** 63 - 1)}


def _fits(value: int, code: int) -> bool:
    lo, hi = _INT_BOUNDS[code]
    return lo <= value <= hi


class _StrConst:
    """Placeholder for a string literal in arithmetic; resolved by _resolve_str_const."""

    def __init__(self, s: _Str):
        self.s = s
        self.type = T.STRING


def _resolve_str_const(binder: Binder, v, other) -> Node:
    if isinstance(v, _StrConst):
        target = other.type if not isinstance(other, _StrConst) else T.FLOAT
        return _literal_from_string(binder, v.s.sexpr[1], target, None, False)
    return v


def _literal_from_string(binder: Binder, text: str | None, target: Type, where, safe: bool) -> Lit:
    """DuckDB's implicit cast of a string literal to a typed constant."""
    if text is None:
        return Lit(target, None)
    try:
        return Lit(target, _parse_literal(text.strip(), target))
    except (ValueError, decimal.InvalidOperation, OverflowError):
        if safe:
            return Lit(target, None)
        if isinstance(where, exp.Expression):
            where = where.sql("duckdb")
        ctx = f" in `{where}`" if where else ""
        binder.fail(f"type mismatch: '{text}' is not a valid {target}{ctx}")


def _parse_literal(text: str, target: Type):
    k = target.kind
    if k is Kind.INT:
        return int(text)
    if k is Kind.FLOAT:
        return float(text)
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
        return (_dt.date.fromisoformat(text) - _EPOCH).days
    if k is Kind.TIMESTAMP:
        ts = _dt.datetime.fromisoformat(text.replace("T", " "))
        if ts.tzinfo is not None:
            ts = ts.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        delta = ts - _dt.datetime(1970, 1, 1)
        micros = (delta.days * 86400 + delta.seconds) * 10 ** 6 + delta.microseconds
        return micros * 10 ** target.scale // 10 ** 6 if target.scale >= 6 else micros // 10 ** (6 - target.scale)
    raise ValueError(text)


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


def _floor_div_const(node: Node, divisor: int) -> Node:
    """Floor division by a positive constant (timestamps before 1970 round down to their day)."""
    q = Op(node.type, "idiv", (node, Lit(T.INT, divisor)))
    neg_rem = Op(T.BOOL, "lt", (Op(node.type, "mod", (node, Lit(T.INT, divisor))), Lit(T.INT, 0)))
    return Op(node.type, "sub", (q, _retype(neg_rem, T.INT)))


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
        return next(v.type for v in values if v.type.kind is k)
    if kinds <= {Kind.INT, Kind.BOOL}:
        return T.INT
    if kinds <= {Kind.INT, Kind.BOOL, Kind.DECIMAL}:
        return Type(Kind.DECIMAL, max(_scale(v) for v in values))
    if kinds <= {Kind.INT, Kind.BOOL, Kind.DECIMAL, Kind.FLOAT}:
        return T.FLOAT
    if kinds <= {Kind.DATE, Kind.TIMESTAMP}:
        return Type(Kind.TIMESTAMP, max(_ts_scale(v.type) for v in values))
    binder.fail(f"CASE/COALESCE branches have incompatible types "
                f"{', '.join(sorted(k.value for k in kinds))} in `{node.sql('duckdb')}`")
