"""Rule compiler: SQL text → typed IR → bytecode → optimized :class:`Program`.

:func:`compile_rules` is the entry every run uses (validate, submit, inspect): each rule
spec becomes a Program (a row rule) or a dataset check bound to the schema.
"""
from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

import pyarrow as pa

from ..errors import RuleError
from .program import Program

__all__ = ["Program", "compile_rule", "compile_rules", "compile_cached", "register_check", "Optimizer"]


class Optimizer(Protocol):
    """The C optimizer (batchaot.native.Optimizer) or its Python twin (compiler/twin.py)."""

    def optimize(self, code, kval, kvalid, nregs, ncols, nluts, passes=None): ...


_default_optimizer = None


def default_optimizer() -> Optimizer:
    """One C optimizer per process (a Ray worker builds its own)."""
    global _default_optimizer
    if _default_optimizer is None:
        from ..native import Optimizer as NativeOptimizer
        _default_optimizer = NativeOptimizer()
    return _default_optimizer


def compile_rule(name: str, sql: str, schema: pa.Schema, *, strict: bool = False,
                 optimizer: Optimizer | None = None,
                 passes: Iterable[str] | None = None) -> Program:
    """Compile one row predicate against `schema`.

    `optimizer` defaults to the C optimizer; pass ``batchaot.compiler.twin`` for the
    pure-Python one, and `passes` (names from ``native.PASS_NAMES``) to run a subset.
    """
    # the parser (sqlglot) only where a rule is compiled: a Ray worker runs Programs
    from .lower import lower
    from .parse import bind

    bound = bind(name, sql, schema)
    try:
        low = lower(bound.root)
    except OverflowError as exc:
        raise RuleError(name, f"constant {exc} does not fit in 64 bits") from None
    opt = optimizer if optimizer is not None else default_optimizer()
    res = opt.optimize(low.code, low.kval, low.kvalid, low.nregs, len(bound.columns),
                       len(low.luts), passes)
    return Program(
        name=name, source=sql, strict=strict,
        columns=tuple((n, str(t)) for n, t in bound.columns),
        luts=tuple(low.luts), nregs=low.nregs,
        code=res.code, kval=res.kval, kvalid=res.kvalid,
        code0=low.code, kval0=low.kval, kvalid0=low.kvalid,
        removed=dict(res.removed), verdict=res.verdict,
        optimizer=getattr(opt, "__name__", "native").rsplit(".", 1)[-1],
    )


# Dataset-level check kinds → their class (a check binds itself to a schema). Filled by
# batchaot.checks when it is imported (it sits above the compiler: it compiles `where`
# predicates and aggregates with it), so this layer imports neither checks nor engine.
CHECK_KINDS: dict[str, Callable] = {}


def register_check(kind: str, build: Callable) -> None:
    CHECK_KINDS[kind] = build


def compile_rules(specs: Sequence, schema: pa.Schema, cached: bool = False) -> list:
    """One entry per rule spec, in order: a Program for a row rule, otherwise a dataset
    check bound to `schema` (by the class batchaot.checks registered for its kind).
    `cached`: row rules come from the on-disk program cache (compiler/cache.py) when
    compiled before against the same schema, and go there when not; a run whose rules are
    all there does not load the parser (sqlglot: about 0.15 s of a small job's start)."""
    cache = None
    if cached:
        from .cache import ProgramCache
        cache = ProgramCache()

    def row(spec) -> Program:
        if cache is None:
            return compile_rule(spec.name, spec.body, schema, strict=spec.strict)
        return compile_cached(spec, schema, cache)[0]
    return [row(spec) if spec.is_row_rule else _build_check(spec, schema) for spec in specs]


def compile_cached(spec, schema: pa.Schema, cache) -> tuple[Program, bool]:
    """(the row rule's Program, whether it came from `cache`, a compiler.cache.ProgramCache):
    compiled and stored when missing, unless it read the clock (current_date, now()), as
    such a Program holds this run's instant."""
    from . import clock
    from .cache import key
    k = key(spec.name, spec.body, spec.strict, schema)
    program = cache.get(k)
    if program is not None:
        return program, True
    with clock.watched() as read_clock:
        program = compile_rule(spec.name, spec.body, schema, strict=spec.strict)
    if not read_clock:
        cache.put(k, program)
    return program, False


def _build_check(spec, schema: pa.Schema):
    build = CHECK_KINDS.get(spec.kind)
    if build is None:
        raise RuleError(spec.name, f"dataset-level check '{spec.kind}' is not available here "
                        "(batchaot.checks registers the kinds when it is imported)")
    try:
        return build(spec, schema)
    except KeyError:                 # pyarrow's schema.field() of a name the data holds twice
        twice = sorted({n for n in schema.names if schema.names.count(n) > 1})
        if not twice:
            raise
        raise RuleError(spec.name, f"column(s) {', '.join(twice)} appear more than once in the data: "
                        "which one the check means is ambiguous; rename the copies") from None
