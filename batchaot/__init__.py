"""batchaot: data-quality rules compiled ahead of time.

    import batchaot
    result = batchaot.validate("orders.parquet", "rules.yaml")
    result.ok, result.summary, result.violations

Rules are SQL predicates; each compiles to register bytecode, is shrunk by a C
peephole optimizer and runs in a Numba VM over Arrow data.
"""
from .api import compile, validate
from .compiler.program import Program
from .distributed import Job
from .errors import BatchaotError, DataError, OutputError, RuleError, SpecError
from .result import Result
from ._version import __version__

__all__ = ["validate", "compile", "Job", "Program", "Result", "BatchaotError", "DataError",
           "OutputError", "RuleError", "SpecError", "__version__"]
