"""`change` and `anomaly`: a metric of this run against the same metric in past runs of
the same job, read from the run's metrics history (batchaot/io/history.py).

    - {name: volume_steady, change: {metric: row_count, max_pct: 20}}
    - {name: amount_normal, anomaly: {metric: "avg(amount)", window: 30, method: mad, threshold: 3.5}}
    - {name: fewer_bad_emails, change: {metric: violations(email_shape), max_increase: 100}}

Metrics: ``row_count``; any expression ``aggregate:`` accepts (``null_fraction(col)``
among them), computed in the same pass over the data by the aggregate check's own
machinery (:class:`.aggregate.AggregateValue`), over the rows ``where:`` picks;
``violations(rule)``, another rule's count, taken once every rule has run
(``reads_results``).

``change`` compares with the latest earlier run that has the metric: ``max_pct`` bounds
the relative change either way (in percent of the previous value), ``max_increase`` /
``max_decrease`` the absolute change up / down. ``anomaly`` scores the value against the
last ``window`` runs: ``zscore`` (mean and sample standard deviation, threshold 3 by
default) or ``mad`` (median and median absolute deviation, the modified z-score
0.6745·(x − median)/MAD, threshold 3.5; Iglewicz and Hoaglin), failing when
|score| > threshold. With less history than the method needs (one run for change,
``min_runs`` for anomaly), the check passes and says ``history: insufficient``.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, replace
from typing import Any, Callable

import pyarrow as pa

from ..io.history import RUN_LEVEL, Point
from ..spec import RuleSpec
from .aggregate import AggregateValue, metric_text
from .base import CheckBase, CheckOutcome, jsonable, no_mostly, spec_error

Past = Callable[[str, str, int], list[Point]]        # (rule, metric, limit) → newest first

CHANGE_LIMITS = ("max_pct", "max_increase", "max_decrease")
METHODS = {"zscore": 3.0, "mad": 3.5}                 # method → default threshold
DEFAULT_WINDOW = 30
DEFAULT_MIN_RUNS = 5
MAD_SCALE = 0.6745           # MAD of a normal distribution = 0.6745 σ
MEAN_AD_SCALE = 1.253314     # mean absolute deviation of a normal = σ / 1.253314 (when MAD is 0)
_VIOLATIONS = re.compile(r"violations\s*\(\s*(.+?)\s*\)", re.S | re.I)


@dataclass(frozen=True)
class MetricRef:
    """A metric as written in a rule: row_count, violations(rule) or an aggregate."""

    kind: str                 # row_count | violations | aggregate
    text: str                 # the aggregate text, or the rule's name for violations


def parse_metric(text: Any) -> MetricRef | None:
    """`metric:` text → MetricRef (an aggregate's text is checked when bound); None if empty."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    if text.lower() == "row_count":
        return MetricRef("row_count", "count(*)")
    found = _VIOLATIONS.fullmatch(text)
    if found:
        return MetricRef("violations", found.group(1).strip("'\"`"))
    return MetricRef("aggregate", text)


def history_key(ref: MetricRef, where: str | None, canonical: str | None = None) -> tuple[str, str]:
    """Where a history keeps the metric: (rule, metric), rule '' for the run's own."""
    if ref.kind == "violations":
        return ref.text, "violations"
    if ref.kind == "row_count" and where is None:
        return RUN_LEVEL, "row_count"
    return RUN_LEVEL, canonical or metric_text(ref.text, where)


class HistoryCheck(CheckBase):
    """What change and anomaly share: the metric, computed now and read from the past."""

    reads_history = True
    example = ""
    needed = 1                 # past values the comparison needs

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        no_mostly(spec)
        self.options = self._body(spec)
        self.ref = parse_metric(self.options.get("metric"))
        if self.ref is None:
            raise spec_error(spec, f"'{spec.kind}' needs 'metric': row_count, an aggregate such as "
                             f"\"avg(amount)\", or violations(rule); e.g. {self.example}")
        where = spec.options.get("where")
        self.value_of: AggregateValue | None = None
        if self.ref.kind == "violations":
            if where is not None:
                raise spec_error(spec, "'where' does not apply to violations(rule): that count is the "
                                 "other rule's own")
        else:
            # the aggregate check's machinery, on the same rows (where) in the same pass
            self.value_of = AggregateValue(replace(spec, kind="aggregate", body=self.ref.text), schema)
            self.filter = self.value_of.filter
            self.out_columns = list(self.value_of.out_columns)
        canonical = self.value_of.metric_name if self.value_of is not None else None
        self.key = history_key(self.ref, where, canonical)
        self.reads_results = self.ref.kind == "violations"
        self.past: list[Point] | None = None

    def _body(self, spec: RuleSpec) -> dict:
        body = spec.body
        if isinstance(body, str):
            body = {"metric": body}
        if not isinstance(body, dict):
            raise spec_error(spec, f"'{spec.kind}' takes a mapping, e.g. {self.example}; got {body!r:.80}")
        allowed = self.fields()
        unknown = [k for k in body if k not in allowed]
        if unknown:
            raise spec_error(spec, f"unknown {spec.kind} field '{unknown[0]}'; use {', '.join(allowed)}")
        return dict(body)

    def fields(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def metric_name(self) -> str | None:
        """The run-level metric recorded for this check (violations are per rule already)."""
        return self.key[1] if self.key[0] == RUN_LEVEL else None

    @property
    def metric(self) -> str:
        """The metric as shown: row_count, avg(amount), violations(email_shape)."""
        return self.key[1] if self.key[0] == RUN_LEVEL else f"violations({self.key[0]})"

    def limit(self) -> int:
        return 1

    # -- history ----------------------------------------------------------------------
    def load_history(self, past: Past) -> None:
        self.past = past(self.key[0], self.key[1], self.limit())

    # -- map → merge → finish ---------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int):
        return None if self.value_of is None else self.value_of.map(batch, source, first_row)

    def merge(self, partials: list):
        return None if self.value_of is None else self.value_of.merge(partials)

    def finish(self, partial) -> CheckOutcome:
        if self.value_of is None:           # violations(rule): judged in settle()
            return CheckOutcome(passed=True, violations=0, rows=0, value=None,
                                details={"metric": self.metric})
        value, details = self.value_of.value(partial)
        outcome = CheckOutcome(passed=True, violations=0, rows=partial.rows, value=value,
                               details={"metric": self.metric, **details})
        self._judge(outcome)
        return outcome

    def settle(self, outcome: CheckOutcome, violations: dict[str, int]) -> None:
        if self.value_of is None:
            outcome.value = violations[self.ref.text]
            self._judge(outcome)

    def _judge(self, outcome: CheckOutcome) -> None:
        past = self.past or []
        details = outcome.details
        if len(past) < self.needed:
            details.update(history="insufficient", runs=len(past), needed=self.needed)
            outcome.details = jsonable(details)
            return
        value = outcome.value
        if value is None or not math.isfinite(value):
            outcome.passed = False
            details["reason"] = (f"the metric is {value if value is not None else 'NULL'} in this run "
                                 "(no number to compare with past runs)")
        else:
            passed, found = self.compare(float(value), past)
            outcome.passed = outcome.passed and passed
            details.update(found)
        if not outcome.passed:
            details["note"] = "a dataset-level fact: no single row violates it, so no violating rows are listed"
        outcome.details = jsonable(details)

    def compare(self, value: float, past: list[Point]) -> tuple[bool, dict]:
        raise NotImplementedError


class ChangeCheck(HistoryCheck):
    example = "change: {metric: row_count, max_pct: 20}"

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        self.limits = {k: _number(spec, self.options[k], k, minimum=0.0) for k in CHANGE_LIMITS
                       if k in self.options}
        if not self.limits:
            raise spec_error(spec, f"'change' needs a limit: {', '.join(CHANGE_LIMITS)}; e.g. {self.example}")

    def fields(self) -> tuple[str, ...]:
        return ("metric", *CHANGE_LIMITS)

    def describe(self) -> str:
        shown = {"max_pct": "±{} %", "max_increase": "+{} at most", "max_decrease": "-{} at most"}
        return (f"change of {self.metric} vs the previous run: "
                + ", ".join(shown[k].format(_num(v)) for k, v in self.limits.items()))

    def compare(self, value: float, past: list[Point]) -> tuple[bool, dict]:
        prev = past[0]
        delta = value - prev.value
        pct = delta / abs(prev.value) * 100 if prev.value else (0.0 if delta == 0 else math.inf)
        held = {"max_pct": abs(pct) <= self.limits.get("max_pct", math.inf),
                "max_increase": delta <= self.limits.get("max_increase", math.inf),
                "max_decrease": -delta <= self.limits.get("max_decrease", math.inf)}
        broken = [k for k in self.limits if not held[k]]
        found = {"baseline": f"run {prev.run} ({prev.at}): {_num(prev.value)}",
                 "previous": prev.value, "previous_run": prev.run, "previous_at": prev.at,
                 "change": delta, "change_pct": pct, "limits": dict(self.limits)}
        if broken:
            found["exceeded"] = broken
        return not broken, found


class AnomalyCheck(HistoryCheck):
    example = "anomaly: {metric: \"avg(amount)\", window: 30, method: mad, threshold: 3.5}"

    def __init__(self, spec: RuleSpec, schema: pa.Schema):
        super().__init__(spec, schema)
        method = self.options.get("method", "mad")
        if method not in METHODS:
            raise spec_error(spec, f"anomaly 'method' must be one of {', '.join(METHODS)}, got {method!r}")
        self.method = method
        self.window = _count(spec, self.options.get("window", DEFAULT_WINDOW), "window", 2)
        self.needed = _count(spec, self.options.get("min_runs", min(DEFAULT_MIN_RUNS, self.window)),
                             "min_runs", 2)
        if self.needed > self.window:
            raise spec_error(spec, f"min_runs ({self.needed}) is larger than the window ({self.window})")
        threshold = self.options.get("threshold", METHODS[method])
        self.threshold = _number(spec, threshold, "threshold", minimum=0.0)

    def fields(self) -> tuple[str, ...]:
        return ("metric", "method", "window", "threshold", "min_runs")

    def limit(self) -> int:
        return self.window

    def describe(self) -> str:
        return (f"anomaly of {self.metric}: {self.method} over the last {self.window} runs, "
                f"|score| <= {_num(self.threshold)}")

    def compare(self, value: float, past: list[Point]) -> tuple[bool, dict]:
        values = [p.value for p in past]
        if self.method == "zscore":
            center, spread = statistics.fmean(values), statistics.stdev(values)
            score = _ratio(value - center, spread)
            names = ("mean", "stddev")
        else:
            center = statistics.median(values)
            spread = statistics.median(abs(v - center) for v in values)
            if spread > 0:
                score = MAD_SCALE * (value - center) / spread
            else:       # over half the values equal: fall back to the mean absolute deviation
                score = _ratio(value - center, MEAN_AD_SCALE * statistics.fmean(abs(v - center) for v in values))
            names = ("median", "mad")
        passed = abs(score) <= self.threshold
        first, last = past[-1], past[0]
        return passed, {
            "baseline": (f"{len(values)} runs {first.run}..{last.run} ({first.at} .. {last.at}): "
                         f"{names[0]} {_num(center)}, {names[1]} {_num(spread)}"),
            "method": self.method, "runs": len(values), names[0]: center, names[1]: spread,
            "score": score, "threshold": self.threshold, "baseline_runs": [p.run for p in past]}


def _ratio(delta: float, spread: float) -> float:
    """delta / spread; with no spread at all, any difference is infinitely unusual."""
    if spread > 0:
        return delta / spread
    return 0.0 if delta == 0 else math.copysign(math.inf, delta)


def _number(spec: RuleSpec, value: Any, what: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum:
        raise spec_error(spec, f"'{what}' must be a number >= {_num(minimum)}, got {value!r}")
    return float(value)


def _count(spec: RuleSpec, value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise spec_error(spec, f"'{what}' must be a whole number of runs >= {minimum}, got {value!r}")
    return value


def _num(value: float) -> str:
    return f"{value:.6g}"
