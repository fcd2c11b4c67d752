"""A run and its metrics history (--history PATH, `history:` in a job): the checks that
compare with past runs get their baseline before the run reads any data, and the run is
appended once it is done. The file itself is batchaot/io/history.py's.

Which past runs count (the *series*): for `submit`, runs of the same job name on the
same source paths; for `validate`, runs with the same rules file (whatever the data
files are called: today's file is compared with yesterday's), or, for rules given as
Python objects, the same rules.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

from .._version import __version__
from ..errors import RuleError, SpecError
from ..io.history import History, RunRecord, utc_text
from ..spec import RuleSpec, suggest
from .plan import Plan


def require(specs: Sequence[RuleSpec], path: str | None) -> None:
    """A rule that compares with past runs needs a history to read: refuse the run before
    it starts when there is none."""
    if path is not None:
        return
    for spec in specs:
        if spec.needs_history:
            raise SpecError(f"{spec.where}: rule '{spec.name}': a {spec.kind} check compares this run "
                            "with past runs: give --history PATH (history: PATH in a job file)")


def rules_hash(specs: Sequence[RuleSpec]) -> str:
    text = json.dumps([[s.name, s.kind, s.body, s.severity, s.strict, s.mostly, s.options] for s in specs],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def job_series(name: str, paths: Sequence[str]) -> str:
    return json.dumps({"job": name, "source": list(paths)})


def rules_series(rules, specs: Sequence[RuleSpec]) -> tuple[str, str]:
    """(job name, series) of a validate run: its rules file, or the rules themselves."""
    if isinstance(rules, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(rules))
        return os.path.splitext(os.path.basename(path))[0], json.dumps({"rules": path})
    return "validate", json.dumps({"rules_hash": rules_hash(specs)})


class Recorder:
    """The open history of one run: baselines handed out, then :meth:`record`."""

    def __init__(self, path: str, plan: Plan, *, job: str, series: str, sources: Sequence[str],
                 now=None):
        _check_references(plan)
        self.plan, self.job, self.series, self.sources = plan, job, series, list(sources)
        self.now = utc_text(now) if now is not None else None
        self.store = History(path, version=__version__)
        self.started = utc_text()
        before = self.now or self.started
        try:
            for check in plan.checks:
                if check.reads_history:
                    check.load_history(lambda rule, metric, limit: self.store.series(series, rule, metric,
                                                                                       before, limit))
        except BaseException:
            self.store.close()
            raise

    def record(self, result) -> None:
        """Append the finished run (a Result) and note where on it."""
        run = RunRecord(job=self.job, series=self.series, rules_hash=rules_hash(self.plan.specs),
                        sources=self.sources, started=self.started, finished=utc_text(), rows=result.rows,
                        verdict=result.verdict, now=self.now, version=__version__)
        run_id = self.store.append(run, result.metrics())
        result.history = {"path": self.store.path, "run": run_id}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_references(plan: Plan) -> None:
    """violations(rule) must name another rule of the run."""
    names = [s.name for s in plan.specs]
    for check in plan.checks:
        if not check.reads_results:
            continue
        target = check.ref.text
        if target == check.name:
            raise RuleError(check.name, f"violations({target}) is this rule's own count; name another rule")
        if target not in names:
            raise RuleError(check.name, f"violations({target}): no rule named '{target}' in this run"
                            f"{suggest(target, names)}")
