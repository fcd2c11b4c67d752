"""CI formats of a run's summary: JUnit XML (`--junit FILE`) and GitHub Actions
annotations (`--format github`). Both read the summary dict (Result.to_dict(), or a
summary.json), so they say exactly what the summary says.

JUnit: one ``<testcase>`` per rule. A failing rule of severity ``error`` carries a
``<failure>`` (message: the count and share of rows; text: the rule, its description
and what was measured); a failing ``warn`` rule passes with the warning in
``<system-out>`` (JUnit has no warnings, and the run's exit code ignores them too); a
rule that did not run (the run stopped first) is ``<skipped>``; a file that could not
be read is one ``<error>`` testcase.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Iterable

from ..io.sinks import atomic


def status(rule: dict) -> str:
    """pass, fail (severity error), warn (a failing warn rule) or not run."""
    if rule.get("passed") is None:
        return "not run"
    if rule["passed"]:
        return "pass"
    return "fail" if rule["severity"] == "error" else "warn"


def headline(rule: dict) -> str:
    """One line: what failed and how much, e.g. `356 violations (0.178% of 200,000 rows)`."""
    if rule.get("passed") is None:
        return f"not run: {rule.get('reason', 'the run stopped before this rule')}"
    parts = []
    if rule["violations"] or rule["kind"] in ("check", "unique", "not_null", "reference"):
        share = f" ({rule['failing_fraction']:.3%} of {rule['rows']:,} rows)" if rule["rows"] else ""
        parts.append(f"{rule['violations']:,} violations{share}")
    note = (rule.get("details") or {}).get("note")
    if rule["kind"] == "schema" and note:
        return note
    details = rule.get("details") or {}
    if rule["kind"] == "freshness" and details.get("age"):
        parts.append(f"newest value {details['age']} old (max_age {details.get('max_age')})")
    elif rule.get("value") is not None and rule["kind"] not in ("check", "schema", "freshness"):
        parts.append(f"measured {_shown(rule['value'])}")
    if note:
        parts.append(note)
    return "; ".join(parts) or "failed"


def _shown(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def _body(rule: dict) -> str:
    lines = [f"rule: {rule['name']} ({rule['kind']}, severity {rule['severity']})", f"check: {rule['check']}"]
    if rule.get("description"):
        lines.append(f"description: {rule['description']}")
    if rule.get("where"):
        lines.append(f"defined at: {rule['where']}")
    lines.append(headline(rule))
    return "\n".join(lines)


def junit(summary: dict, suite: str | None = None) -> str:
    """The summary as a JUnit XML document (testsuites > testsuite > testcase)."""
    rules = summary.get("rules", [])
    errors = summary.get("errors") or []
    if summary.get("failed"):            # the run itself failed: one error, no rules
        errors = [summary.get("error", "the run failed")]
    name = suite or summary.get("job") or "batchaot"
    counts = {s: sum(1 for r in rules if status(r) == s) for s in ("fail", "not run")}
    attrs = {"name": name, "tests": str(len(rules) + len(errors)), "failures": str(counts["fail"]),
             "errors": str(len(errors)), "skipped": str(counts["not run"]),
             "time": f"{summary.get('elapsed_s') or 0:.3f}"}
    root = ET.Element("testsuites", attrs)
    suite_el = ET.SubElement(root, "testsuite", {**attrs, **({"timestamp": summary["started_at"]}
                                                               if summary.get("started_at") else {})})
    props = ET.SubElement(suite_el, "properties")
    for key in ("rows", "now", "version", "rules_hash", "exit_code"):
        if summary.get(key) is not None:
            ET.SubElement(props, "property", {"name": key, "value": str(summary[key])})
    for rule in rules:
        case = ET.SubElement(suite_el, "testcase", {"classname": f"{name}.{rule['kind']}", "name": _xml_text(rule["name"]),
                                                    "time": "0"})
        state = status(rule)
        if state == "fail":
            ET.SubElement(case, "failure", {"message": _xml_text(headline(rule)), "type": rule["kind"]}).text = _xml_text(_body(rule))
        elif state == "warn":
            ET.SubElement(case, "system-out").text = _xml_text("warning: " + _body(rule))
        elif state == "not run":
            ET.SubElement(case, "skipped", {"message": _xml_text(headline(rule))})
    for i, message in enumerate(errors):
        case = ET.SubElement(suite_el, "testcase", {"classname": f"{name}.input", "name": f"input #{i + 1}",
                                                    "time": "0"})
        ET.SubElement(case, "error", {"message": _xml_text(message), "type": "input"}).text = _xml_text(message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str, summary: dict) -> None:
    with atomic(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(junit(summary))


# characters XML 1.0 cannot hold at all (ElementTree would write them as they are)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(summary: dict) -> Iterable[str]:
    """GitHub Actions workflow commands: an ::error per failing error rule, a ::warning per
    failing warn rule (pointing at the rule's line in its rules file when known), a ::error
    per unreadable input, and a ::notice with the verdict."""
    for rule in summary.get("rules", []):
        state = status(rule)
        if state not in ("fail", "warn"):
            continue
        level = "error" if state == "fail" else "warning"
        props = {"title": f"batchaot: rule {rule['name']} failed"}
        file, _, line = (rule.get("where") or "").rpartition(":")
        if file and line.isdigit() and not file.startswith("<"):
            props.update(file=file, line=line)
        shown = ",".join(f"{k}={_escape_property(v)}" for k, v in props.items())
        yield f"::{level} {shown}::{_escape_data(headline(rule) + ' — ' + str(rule['check']))}"
    for message in summary.get("errors") or []:
        yield f"::error title=batchaot%3A input not checked::{_escape_data(str(message))}"
    failed = sum(1 for r in summary.get("rules", []) if status(r) == "fail")
    verdict = "all error rules passed" if summary.get("ok") else f"validation failed ({failed} error rule(s))"
    rows = summary.get("rows", 0)
    yield f"::notice title=batchaot::{_escape_data(f'{rows:,} rows, {verdict}')}"
