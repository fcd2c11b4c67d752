"""User-facing errors.

Everything a user can cause (a bad rule, a bad file, a bad path) raises a subclass of
:class:`BatchaotError`; the CLI prints its message on one line and exits with code 2.
Any other exception is a bug in batchaot and keeps its traceback.
"""
from __future__ import annotations


class BatchaotError(Exception):
    """Base of all errors a user can act on."""


class SpecError(BatchaotError):
    """A malformed rules or job file; the message names file:line and the field."""


class RuleError(BatchaotError):
    """A rule that cannot be compiled: unknown column, type mismatch, unsupported SQL."""

    def __init__(self, rule: str, message: str):
        super().__init__(f"rule '{rule}': {message}")
        self.rule = rule
        self.detail = message


class DataError(BatchaotError):
    """Input data that cannot be read or does not fit the rules."""


class OutputError(BatchaotError):
    """An output location that cannot be written."""


class ResourceError(BatchaotError):
    """The machine ran out of something the run needs (memory): it cannot finish."""
