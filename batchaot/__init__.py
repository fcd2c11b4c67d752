"""batchaot: data-quality rules compiled ahead of time.

    import batchaot
    result = batchaot.validate("orders.parquet", "rules.yaml")
    result.ok, result.summary, result.violations

Rules are SQL predicates; each compiles to register bytecode, is shrunk by a C
peephole optimizer and runs in a Numba VM over Arrow data.

The names below are imported when first used (PEP 562): ``import batchaot`` costs
nothing, so a process that needs one module of the package (a Ray worker, a small
CLI command) does not load the compiler, the checks and Numba for it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import BatchaotError, DataError, OutputError, RuleError, SpecError

if TYPE_CHECKING:
    from .api import compile, validate
    from .compiler.program import Program
    from .distributed import Job
    from .result import Result

__all__ = ["validate", "compile", "Job", "Program", "Result", "BatchaotError", "DataError",
           "OutputError", "RuleError", "SpecError", "__version__"]

_LAZY = {"validate": ".api", "compile": ".api", "Job": ".distributed",
         "Program": ".compiler.program", "Result": ".result"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchaot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value             # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
