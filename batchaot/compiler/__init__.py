"""Rule compiler: SQL text → typed IR → bytecode → optimized :class:`Program`."""
from __future__ import annotations

from typing import Iterable, Protocol

import pyarrow as pa

from ..errors import RuleError
from .lower import lower
from .parse import bind
from .program import Program

__all__ = ["Program", "compile_rule", "Optimizer"]


class Optimizer(Protocol):
    """The C optimizer (batchaot.native.Optimizer) or the reference module."""

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

    `optimizer` defaults to the C optimizer; pass ``batchaot.compiler.reference`` for the
    pure-Python one, and `passes` (names from ``native.PASS_NAMES``) to run a subset.
    """
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
