"""User-facing errors.

Everything a user can cause (a bad rule, a bad file, a bad path) raises a subclass of
:class:`BatchaotError`; the CLI prints its message on one line and exits with code 2.
Any other exception is a bug in batchaot and keeps its traceback.

A message is always one line of bounded length (:func:`one_line`): rule text, names and
schemas may hold line breaks, terminal escapes or megabytes, and none of that may turn
one error into a screenful.
"""
from __future__ import annotations

import re

MAX_MESSAGE_CHARS = 2_000

_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` on one line: line breaks become spaces, tabs too, other control characters
    are shown escaped (\\x1b), and the middle of an overlong text is cut."""
    text = _BREAKS.sub(" ", text).replace("\t", " ")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > limit:
        head, tail = limit * 2 // 3, limit // 4
        text = f"{text[:head]} ... [{len(text) - head - tail:,} characters cut] ... {text[-tail:]}"
    return text


class BatchaotError(Exception):
    """Base of all errors a user can act on."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class SpecError(BatchaotError):
    """A malformed rules or job file; the message names file:line and the field."""


class RuleError(BatchaotError):
    """A rule that cannot be compiled: unknown column, type mismatch, unsupported SQL."""

    def __init__(self, rule: str, message: str):
        super().__init__(f"rule '{rule}': {message}")
        self.rule = rule
        self.detail = message

    def __reduce__(self):
        # pickled across processes (Ray workers) with both arguments
        return (type(self), (self.rule, self.detail))


class DataError(BatchaotError):
    """Input data that cannot be read or does not fit the rules."""


class OutputError(BatchaotError):
    """An output location that cannot be written."""


class ResourceError(BatchaotError):
    """The machine ran out of something the run needs (memory): it cannot finish."""


class HistoryError(BatchaotError):
    """A metrics history file that cannot be opened, read or written (--history PATH)."""
