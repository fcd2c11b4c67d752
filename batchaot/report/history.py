"""`batchaot history JOB_OR_DB`: recent runs and metric trends from a metrics history
(io/history.py), as plain data the command line renders (and `--json` prints)."""
from __future__ import annotations

import math
import os
import re

from ..checks.history import history_key, parse_metric
from ..compiler.aggregate import parse_aggregate
from ..errors import SpecError
from ..io.history import RUN_LEVEL, History
from ..job import load_job

BARS = "▁▂▃▄▅▆▇█"
_WHERE = re.compile(r"\s+where\s+", re.I)


def target(path: str, job: str | None) -> tuple[str, str | None]:
    """(history file, job name) from a job file (its `history:` and name) or a database path."""
    if path.endswith((".yaml", ".yml")) and os.path.isfile(path):
        spec = load_job(path)
        if spec.history is None:
            raise SpecError(f"{path}: the job has no 'history:' file; give the database path instead")
        return spec.history, job or spec.name
    return path, job


def metric_key(text: str) -> tuple[str, str]:
    """--metric text → (rule, metric) as the history stores it: row_count, duration_s,
    violations(rule), or an aggregate (`avg(amount)`, `count(*) where status = 'lost'`)."""
    text = text.strip()
    if text in ("duration", "duration_s"):
        return RUN_LEVEL, "duration_s"
    what, *where = _WHERE.split(text, maxsplit=1)
    ref = parse_metric(what)
    if ref is None:
        raise SpecError("--metric needs a metric: row_count, violations(rule), duration_s or an "
                        "aggregate such as avg(amount)")
    canonical = None
    if ref.kind == "aggregate":
        canonical = str(parse_aggregate("--metric", ref.text))
        if where:
            canonical += f" where {' '.join(where[0].split())}"
    return history_key(ref, where[0] if where else None, canonical)


def shown_metric(rule: str, metric: str) -> str:
    return metric if rule == RUN_LEVEL else f"{metric}({rule})"


def view(path: str, job: str | None, metrics: list[str], last: int) -> dict:
    """The latest `last` runs, and the trend of each metric (default: the row count, the
    duration and the violations of every rule that had some) over them."""
    with History(path, create=False) as store:
        runs = store.runs(job, last)
        keys = [metric_key(m) for m in metrics] or \
            [(RUN_LEVEL, "row_count"), (RUN_LEVEL, "duration_s")] + \
            [(rule, "violations") for rule in store.rules(job, last)]
        trends = {shown_metric(*k): store.trend(*k, job=job, limit=last) for k in keys}
    if not metrics:          # by default, only the rules that had violations
        trends = {k: v for k, v in trends.items() if not k.startswith("violations(") or any(p["value"] for p in v)}
    return {"path": path, "job": job, "runs": runs, "trends": trends}


def sparkline(values: list[float | None]) -> str:
    """One block character per value, scaled from the lowest to the highest (a gap for a
    missing value; a flat series sits mid-height)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif hi == lo:
            out.append(BARS[3])
        else:
            out.append(BARS[round((v - lo) / (hi - lo) * (len(BARS) - 1))])
    return "".join(out)
