"""report.html: one self-contained page about a run, from its summary.json and its
violation parts (io/violations.py), rendered with Jinja2 (autoescape on).

Everything on the page that came from data, rules or file names goes through the
template's escaping: a failing value ``<script>`` shows as text. The page fetches
nothing (inline CSS, SVG and script; a Content-Security-Policy forbids any other
source), so it opens from disk and from a CI artifact store alike.

A failing rule shows a sample of its violating rows: the first SAMPLE_ROWS found in the
parts (in part order, then by source and row), with the values of the rule's columns;
dataset checks also show what their details list (the most frequent duplicate or
missing keys).
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
from typing import Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DataError, HistoryError
from ..io import violations
from ..io.history import History
from ..io.sinks import REPORT, SUMMARY, atomic
from .ci import status

SAMPLE_ROWS = 20
SOURCES_SHOWN = 20
CELL_CHARS = 200           # a longer value is cut in the page (the parts have all of it)
TRAIL_RUNS = 30            # runs in a rule's sparkline (a run recorded with --history)
SPARK_W, SPARK_H = 90, 18  # its size in pixels
STATUSES = ("fail", "warn", "pass", "not run")

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("batchaot.report", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_ENV.filters["basename"] = lambda path: os.path.basename(path) or path


def build(folder: str) -> str:
    """(Re)build `folder`/report.html from the summary.json and violation parts there."""
    summary = read_summary(folder)
    path = os.path.join(folder, REPORT)
    write(path, summary, folder)
    return path


def read_summary(folder: str) -> dict:
    path = os.path.join(folder, SUMMARY)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise DataError(f"{path}: no summary.json: is {folder} the output folder of a run "
                        "(validate --output, submit)?") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the summary: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: not a batchaot summary")
    return doc


def write_staged(staging: str, summary: dict) -> tuple[str, ...]:
    """The report of a run into its staging folder (sinks.OutputRun), beside the parts it
    samples; the entries it adds for the commit to put in place."""
    write(os.path.join(staging, REPORT), summary, staging)
    return (REPORT,)


def write(path: str, summary: dict, parts_folder: str) -> None:
    """Render the page for `summary` with samples from the parts in `parts_folder`."""
    text = render(summary, samples(parts_folder, summary.get("rules", [])))
    with atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def render(summary: dict, sample_rows: dict[str, dict]) -> str:
    trails = _trails(summary)
    rules = [_rule_view(r, sample_rows.get(r.get("name")), trails.get(r.get("name")))
             for r in summary.get("rules", [])]
    counts = {s: sum(1 for r in rules if r["status"] == s) for s in STATUSES}
    sources = summary.get("sources") or []
    return _ENV.get_template("report.html.j2").render(
        run=_run_view(summary), rules=rules, counts=counts, chart=_chart(rules),
        sources=sources[:SOURCES_SHOWN], more_sources=max(0, len(sources) - SOURCES_SHOWN),
        errors=summary.get("errors") or [])


# --- views ------------------------------------------------------------------------------

def _run_view(s: dict) -> dict:
    failed = bool(s.get("failed"))
    verdict = ("run failed" if failed else "passed" if s.get("ok") else "failed")
    return {"title": s.get("job") or "validation", "verdict": verdict, "ok": bool(s.get("ok")),
            "failed_error": s.get("error") if failed else None,
            "exit_code": s.get("exit_code", 2 if failed else 0 if s.get("ok") else 1),
            "rows": s.get("rows"), "elapsed_s": s.get("elapsed_s"), "version": s.get("version"),
            "rules_hash": s.get("rules_hash"), "now": s.get("now"), "started_at": s.get("started_at"),
            "mode": s.get("mode"), "engine": s.get("engine"), "stopped": s.get("stopped")}


def _rule_view(r: dict, sample: dict | None, trail: list[float | None] | None = None) -> dict:
    details = r.get("details") or {}
    keys = details.get("sample") if isinstance(details.get("sample"), list) else []
    return {**r, "status": status(r), "share": _share(r), "value_text": _value(r),
            "top_keys": [{"key": ", ".join(f"{k}={_cell(v)}" for k, v in (k.get("key") or {}).items()),
                      "count": k.get("count")} for k in keys if isinstance(k, dict)],
            "details_text": _details(details), "sample": sample, "spark": _spark(trail)}


def _trails(summary: dict) -> dict[str, list[float | None]]:
    """Each rule's violations over the recent runs of its history (summary "history":
    {path, run}); none when the run was not recorded or the file is gone or unreadable."""
    ref = summary.get("history")
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str) or not isinstance(ref.get("run"), int):
        return {}
    if not os.path.isfile(ref["path"]):
        return {}
    try:
        with History(ref["path"], create=False) as store:
            return store.trail(ref["run"], "violations", TRAIL_RUNS)
    except HistoryError:
        return {}


def _spark(values: list[float | None] | None) -> dict | None:
    """An SVG polyline of a rule's violations per run (oldest left; a gap where a run has
    none), scaled from 0 to the largest; None below two values."""
    if not values or sum(v is not None for v in values) < 2:
        return None
    top = max(v for v in values if v is not None) or 1.0
    step = SPARK_W / max(1, len(values) - 1)
    segments: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            segments.append([])
        else:
            segments[-1].append(f"{i * step:.1f},{SPARK_H - 1 - (SPARK_H - 2) * v / top:.1f}")
    shown = ", ".join("–" if v is None else f"{v:,.0f}" for v in values)
    return {"lines": [" ".join(s) for s in segments if s], "title": f"violations in the last {len(values)} runs: {shown}",
            "w": SPARK_W, "h": SPARK_H}


def _share(r: dict) -> str:
    rows, fraction = r.get("rows") or 0, r.get("failing_fraction") or 0.0
    return f"{fraction:.3%}" if rows else "–"


def _value(r: dict) -> str:
    if r.get("kind") == "check" or r.get("value") is None:
        return ""
    v = r["value"]
    if r.get("kind") == "freshness" and (r.get("details") or {}).get("age"):
        return f"{r['details']['age']} old"
    if r.get("kind") == "schema":
        return f"{v} problem{'s' * (v != 1)}"
    return f"{v:,.6g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def _details(details: dict) -> list[tuple[str, str]]:
    return [(k, _cell(v)) for k, v in details.items() if k != "sample"]


def _chart(rules: list[dict]) -> list[dict]:
    """Bars of violations per rule, widths in % of the largest count (a zero gets none)."""
    top = max([r.get("violations") or 0 for r in rules] + [1])
    return [{"name": r["name"], "status": r["status"], "violations": r.get("violations") or 0,
             "width": round(100.0 * (r.get("violations") or 0) / top, 2)} for r in rules]


def _cell(value: Any) -> str:
    """A value as the page shows it (NULL for None; long text cut)."""
    if value is None:
        return "NULL"
    if isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        text = value.isoformat()
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="backslashreplace")
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    elif isinstance(value, decimal.Decimal):
        text = str(value)
    else:
        text = str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + f"… ({len(text):,} characters)"


# --- samples from the parts ------------------------------------------------------------

def samples(folder: str, rules: list[dict]) -> dict[str, dict]:
    """Per failing rule with violating rows: {"columns": [...], "rows": [[...], ...], "more": n}:
    its first SAMPLE_ROWS rows in the parts, read row group by row group (only the groups
    that hold them), whatever the columns' types."""
    wanted = {r["name"]: r for r in rules if r.get("violations") and status(r) in ("fail", "warn")}
    paths = violations.parts(folder) if wanted else []
    found: dict[str, list[tuple]] = {name: [] for name in wanted}
    for path in paths:
        if all(len(v) >= SAMPLE_ROWS for v in found.values()):
            break
        try:
            _sample_part(path, wanted, found)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: cannot read the violation part: {exc}") from None
    out = {}
    for name, rows in found.items():
        rows.sort(key=lambda t: (t[0], t[1]))
        columns = _shown_columns(wanted[name], None)
        out[name] = {"columns": [violations.SOURCE, violations.ROW, *columns],
                     "rows": [[src, str(row), *cells] for src, row, cells in rows],
                     "more": max(0, int(wanted[name]["violations"]) - len(rows))}
    return out


def _shown_columns(rule: dict, names: list[str] | None) -> list[str]:
    columns = list(dict.fromkeys(violations.out_name(c) for c in rule.get("columns") or []))
    return columns if names is None else [c for c in columns if c in names]


def _sample_part(path: str, wanted: dict[str, dict], found: dict[str, list[tuple]]) -> None:
    part = pq.ParquetFile(path)
    names = part.schema_arrow.names
    for group in range(part.num_row_groups):
        need = {n: SAMPLE_ROWS - len(rows) for n, rows in found.items() if len(rows) < SAMPLE_ROWS}
        if not need:
            return
        rule = part.read_row_group(group, columns=[violations.RULE]).column(0)
        hits = {}
        for name, k in need.items():
            mask = pc.fill_null(pc.equal(rule, pa.scalar(name, rule.type)), False)
            at = np.flatnonzero(mask.to_numpy(zero_copy_only=False))[:k]
            if len(at):
                hits[name] = at
        if not hits:
            continue
        cols = list(dict.fromkeys(c for n in hits for c in _shown_columns(wanted[n], names)))
        table = part.read_row_group(group, columns=[violations.SOURCE, violations.ROW, *cols])
        for name, at in hits.items():
            shown = _shown_columns(wanted[name], names)
            for i in at:
                found[name].append((table.column(violations.SOURCE)[i].as_py() or "",
                                    table.column(violations.ROW)[i].as_py() or 0,
                                    [_value_at(table.column(c), int(i)) for c in shown]))


def _value_at(column: pa.ChunkedArray, i: int) -> str:
    """The page's text of one value of any Arrow type (timestamps as Arrow prints them:
    pyarrow gives a nanosecond one as a pandas Timestamp, or raises without pandas)."""
    scalar = column[i]
    if pa.types.is_timestamp(column.type):      # Arrow's text: every unit, no pandas Timestamp
        return _cell(pc.cast(column.slice(i, 1), pa.string())[0].as_py())
    try:
        return _cell(scalar.as_py())
    except (ValueError, OverflowError, pa.ArrowException):
        try:
            return _cell(pc.cast(column.slice(i, 1), pa.string())[0].as_py())
        except pa.ArrowException:
            return _cell(str(getattr(scalar, "value", "?")))
