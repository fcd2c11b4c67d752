"""Rules files: YAML → validated dataclasses, with file:line in every error.

A rules file is either a list of rules or a mapping with a ``rules:`` list. Each rule is a
mapping with a ``name`` and exactly one kind key (``check`` for a SQL row predicate).
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from .errors import SpecError

SEVERITIES = ("error", "warn")
ROW_KIND = "check"
DATASET_KINDS = ("unique", "not_null", "aggregate", "row_count", "reference")
RULE_KINDS = (ROW_KIND, *DATASET_KINDS)
RULE_OPTIONS = ("name", "severity", "strict", "mostly", "description", "where", "between", "equals")
# Top-level keys of a rules file; a job file (jobs/*.yaml) is also a valid rules file.
DOCUMENT_KEYS = ("name", "description", "kind", "source", "rules", "rules_from", "output",
                 "workers", "on_error", "engine", "schema")


@dataclass(frozen=True)
class Where:
    """Where a piece of a spec came from, for error messages."""

    file: str = "<rules>"
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class RuleSpec:
    name: str
    kind: str                      # one of RULE_KINDS
    body: Any                      # the SQL text for `check`, the kind's value otherwise
    severity: str = "error"
    strict: bool = False
    mostly: float | None = None
    description: str = ""
    options: dict = field(default_factory=dict, compare=False, hash=False)
    where: Where = field(default=Where(), compare=False)

    @property
    def is_row_rule(self) -> bool:
        return self.kind == ROW_KIND


# --- YAML with line numbers -------------------------------------------------------

class _Map(dict):
    """A dict that remembers the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict


# libyaml's loader when present (several times faster on large rules files); its nodes
# carry the same line marks.
class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def load_yaml(path: str) -> Any:
    """Parse a YAML file; syntax errors become SpecError with file:line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, file: str = "<rules>") -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError(f"{file}:{line}: malformed YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: malformed YAML: {exc}") from None


def line_of(obj: Any, key: Any = None) -> int:
    if isinstance(obj, _Map):
        return obj.key_lines.get(key, obj.line) if key is not None else obj.line
    return 0


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- rules ------------------------------------------------------------------------

def load_rules(source: str | os.PathLike | list | dict) -> list[RuleSpec]:
    """Rules from a YAML path, a parsed document, or a list of rule dicts."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return rules_from_document(load_yaml(path), path)
    return rules_from_document(source, "<rules>")


def rules_from_document(doc: Any, file: str) -> list[RuleSpec]:
    if isinstance(doc, dict):
        for key in doc:
            if key not in DOCUMENT_KEYS:
                raise SpecError(f"{file}:{line_of(doc, key)}: unknown field '{key}'"
                                f"{suggest(str(key), DOCUMENT_KEYS)}")
        if "rules" not in doc:
            raise SpecError(f"{file}:{line_of(doc)}: expected a 'rules:' list")
        doc = doc["rules"]
    if not isinstance(doc, list):
        raise SpecError(f"{file}:{line_of(doc)}: 'rules' must be a list of rule mappings")
    if not doc:
        raise SpecError(f"{file}: no rules")
    rules = [parse_rule(item, i, file) for i, item in enumerate(doc)]
    _check_unique_names(rules)
    return rules


def parse_rule(item: Any, index: int, file: str) -> RuleSpec:
    if not isinstance(item, dict):
        raise SpecError(f"{file}: rule #{index + 1} must be a mapping like "
                        "{name: ..., check: \"amount > 0\"}, got {type(item).__name__}")
    at = Where(file, line_of(item))
    for key in item:
        if key not in RULE_KINDS and key not in RULE_OPTIONS:
            raise SpecError(f"{file}:{line_of(item, key)}: unknown rule field '{key}'"
                            f"{suggest(str(key), RULE_KINDS + RULE_OPTIONS)}")
    kinds = [k for k in RULE_KINDS if k in item]
    name = item.get("name", f"rule_{index + 1}")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{file}:{line_of(item, 'name')}: rule name must be a non-empty string")
    if len(kinds) != 1:
        what = "no" if not kinds else "more than one"
        raise SpecError(f"{at}: rule '{name}' has {what} kind; give exactly one of "
                        + ", ".join(RULE_KINDS))
    kind = kinds[0]
    body = item[kind]
    if kind == ROW_KIND and (not isinstance(body, str) or not body.strip()):
        raise SpecError(f"{file}:{line_of(item, kind)}: rule '{name}': 'check' must be a SQL "
                        "predicate string, e.g. \"amount > 0\"")
    severity = item.get("severity", "error")
    if severity not in SEVERITIES:
        raise SpecError(f"{file}:{line_of(item, 'severity')}: rule '{name}': severity must be "
                        f"'error' or 'warn', got {severity!r}")
    strict = item.get("strict", False)
    if not isinstance(strict, bool):
        raise SpecError(f"{file}:{line_of(item, 'strict')}: rule '{name}': strict must be true or false")
    mostly = item.get("mostly")
    if mostly is not None and (isinstance(mostly, bool) or not isinstance(mostly, (int, float))
                               or not 0.0 <= mostly <= 1.0):
        raise SpecError(f"{file}:{line_of(item, 'mostly')}: rule '{name}': mostly must be a "
                        f"number between 0 and 1, got {mostly!r}")
    options = {k: item[k] for k in ("where", "between", "equals") if k in item}
    return RuleSpec(name=name, kind=kind, body=body, severity=severity, strict=strict,
                    mostly=None if mostly is None else float(mostly),
                    description=str(item.get("description", "")), options=options, where=at)


def _check_unique_names(rules: list[RuleSpec]) -> None:
    seen: dict[str, RuleSpec] = {}
    for rule in rules:
        if rule.name in seen:
            raise SpecError(f"{rule.where}: duplicate rule name '{rule.name}' "
                            f"(first at {seen[rule.name].where})")
        seen[rule.name] = rule
