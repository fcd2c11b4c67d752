"""Rules files: YAML → validated dataclasses, with file:line in every error.

A rules file is either a list of rules or a mapping with a ``rules:`` list. Each rule is a
mapping with a ``name`` and exactly one kind key (``check`` for a SQL row predicate).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import yaml

from .errors import SpecError

SEVERITIES = ("error", "warn")
ROW_KIND = "check"
DATASET_KINDS = ("unique", "not_null", "aggregate", "row_count", "reference", "freshness", "schema",
                 "change", "anomaly")
HISTORY_KINDS = ("change", "anomaly")         # compare with past runs: need a metrics history
RULE_KINDS = (ROW_KIND, *DATASET_KINDS)
RULE_OPTIONS = ("name", "severity", "strict", "mostly", "description", "where", "between", "equals")
# The options only some kinds take; any other kind refuses them (never silently ignored).
KIND_OPTIONS = {
    "where": DATASET_KINDS,                    # a row filter: a check's condition says it all
    "between": ("aggregate", "row_count"),     # bounds of one computed number
    "equals": ("aggregate", "row_count"),
}

# Limits on what a rules or job file may hold (see "Rules files" in the README).
MAX_FILE_BYTES = 64 << 20        # a rules file: larger is refused before parsing
MAX_ALIAS_VALUES = 100_000       # values YAML aliases (*name, <<: *name) may add by repetition
MAX_NAME_CHARS = 200             # rule and job names
# Top-level keys of a rules file; a job file (jobs/*.yaml) is also a valid rules file.
DOCUMENT_KEYS = ("name", "description", "kind", "source", "rules", "rules_from", "output",
                 "workers", "on_error", "engine", "schema", "now", "history", "memory_budget")


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

    @property
    def needs_history(self) -> bool:
        return self.kind in HISTORY_KINDS


# --- YAML with line numbers -------------------------------------------------------

class _Map(dict):
    """A dict that remembers the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that a rules file may not hold (duplicate or complex keys,
    recursive or exploding aliases, values Python cannot represent); names a line."""


def _refuse(message: str, node: yaml.Node) -> _Refused:
    return _Refused(problem=message, problem_mark=node.start_mark)


_SURROGATE = re.compile("[\ud800-\udfff]")


# libyaml's loader when present (several times faster on large rules files); its nodes
# carry the same line marks.
class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            # e.g. `2024-13-45` read as a timestamp, an integer of 5,000 digits
            raise _refuse(f"cannot read the value {_excerpt(node)}: {exc}", node) from None

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        if isinstance(value, str) and _SURROGATE.search(value):
            raise _refuse("text with a lone surrogate (\\ud800-\\udfff escape): not valid Unicode", node)
        return value


def _excerpt(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        return repr(text)
    return f"at column {node.start_mark.column + 1}"


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    own: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise _refuse("a key must be a plain name, not a list or mapping "
                          "(YAML complex keys `? ...` are not supported)", key_node)
        key = loader.construct_object(key_node, deep=True)
        if key in own:
            raise _refuse(f"duplicate key '{key}' (first at line {own[key]})", key_node)
        own[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _refuse("a key must be a plain name, not a list or mapping", key_node) from None
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


class _Seq(list):
    """A list that remembers the 1-based line of each item."""

    item_lines: list


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _check_aliases(root: yaml.Node) -> None:
    """Refuse recursive aliases and alias bombs: count the values the document would
    have with every alias written out (memoized per node, so it costs one pass)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    shared: yaml.Node | None = None          # the first node reached twice: an anchor
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = ([x for pair in node.value for x in pair] if isinstance(node, yaml.MappingNode)
                else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            continue
        if key in size:
            shared = shared or node
            continue
        on_path.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in on_path:
                raise _refuse("a YAML alias refers to a value that contains it (a recursive "
                              "alias)", kid)
            stack.append((kid, False))
    extra = size[id(root)] - len(size)
    if extra > MAX_ALIAS_VALUES:
        raise _refuse(f"YAML aliases here would repeat values {extra:,} times (limit "
                      f"{MAX_ALIAS_VALUES:,}; an alias bomb?): write the values out",
                      shared or root)


def load_yaml(path: str) -> Any:
    """Parse a YAML file; syntax errors become SpecError with file:line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB: not a rules file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column "
                        f"{column}): save the file as UTF-8") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, file: str = "<rules>") -> Any:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:                       # no alias indicator, no alias
            _check_aliases(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise SpecError(f"{file}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:        # a character YAML does not allow
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise SpecError(f"{file}:{line}: malformed YAML: unacceptable character "
                        f"#x{exc.character if isinstance(exc.character, int) else ord(exc.character):04x}: "
                        "control characters are not allowed") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError(f"{file}:{line}: malformed YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: malformed YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{file}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def at(file: str, obj: Any, key: Any = None) -> str:
    """"file:line" of `obj` (or of its `key`), just "file" when the line is unknown."""
    return str(Where(file, line_of(obj, key)))


def line_of(obj: Any, key: Any = None) -> int:
    if isinstance(obj, _Map):
        return obj.key_lines.get(key, obj.line) if key is not None else obj.line
    return 0


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- rules ------------------------------------------------------------------------

def rules_digest(files: Sequence[str] = (), rules: Sequence[RuleSpec] = ()) -> str:
    """sha256 of what the rules came from: the bytes of the rules/job files in order (what
    `sha256sum` of one rules file prints), else of the parsed rules (in-memory rules)."""
    h = hashlib.sha256()
    if files:
        for path in files:
            with open(path, "rb") as fh:
                h.update(fh.read())
    else:
        h.update(json.dumps([[r.name, r.kind, r.body, r.severity, r.strict, r.mostly, r.options]
                             for r in rules], sort_keys=True, default=str).encode())
    return h.hexdigest()


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
                raise SpecError(f"{at(file, doc, key)}: unknown field '{key}'"
                                f"{suggest(str(key), DOCUMENT_KEYS)}")
        if "rules" not in doc:
            raise SpecError(f"{at(file, doc)}: expected a 'rules:' list")
        doc = doc["rules"]
    if doc is None:
        raise SpecError(f"{file}: no rules: the file is empty; expected a 'rules:' list")
    if not isinstance(doc, list):
        raise SpecError(f"{Where(file, line_of(doc))}: 'rules' must be a list of rule mappings, "
                        f"got {_type_name(doc)}")
    if not doc:
        raise SpecError(f"{file}: no rules")
    lines = getattr(doc, "item_lines", None) or [0] * len(doc)
    rules = [parse_rule(item, i, file, lines[i]) for i, item in enumerate(doc)]
    _check_unique_names(rules)
    return rules


def name_problem(name: Any, what: str = "rule name", path_safe: bool = False) -> str | None:
    """Why `name` cannot name a rule (or, `path_safe`, a job), or None.

    Any printable text is a fine name: unicode, quotes, spaces, slashes in rule names
    (output file names never come from rule names). Control characters and line breaks
    are refused: a name is one line in every listing and log.
    """
    if not isinstance(name, str):
        return f"{what} must be a string, got {_shown(name)}"
    if not name.strip():
        return f"{what} must not be empty"
    for i, c in enumerate(name):
        if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp"):
            return (f"{what} {_shown(name)} holds a control character or line break "
                    f"({c!r} at position {i + 1}); names are one line of printable text")
        if path_safe and c in "/\\":
            return f"{what} {_shown(name)} holds a path separator ({c!r}); it names files"
    if len(name) > MAX_NAME_CHARS:
        return f"{what} is {len(name):,} characters long (limit {MAX_NAME_CHARS})"
    return None


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{_shown(value)} ({type(value).__name__})"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_rule(item: Any, index: int, file: str, line: int = 0) -> RuleSpec:
    if not isinstance(item, dict):
        raise SpecError(f"{Where(file, line)}: rule #{index + 1} must be a mapping like "
                        f'{{name: ..., check: "amount > 0"}}, got {_type_name(item)}')
    here = Where(file, line_of(item) or line)
    for key in item:
        if key not in RULE_KINDS and key not in RULE_OPTIONS:
            raise SpecError(f"{at(file, item, key)}: unknown rule field {_shown(key)}"
                            f"{suggest(str(key), RULE_KINDS + RULE_OPTIONS)}")
    kinds = [k for k in RULE_KINDS if k in item]
    name = item.get("name", f"rule_{index + 1}")
    problem = name_problem(name)
    if problem:
        raise SpecError(f"{at(file, item, 'name')}: {problem}")
    if len(kinds) != 1:
        what = "no" if not kinds else "more than one"
        raise SpecError(f"{here}: rule '{name}' has {what} kind; give exactly one of "
                        + ", ".join(RULE_KINDS))
    kind = kinds[0]
    body = item[kind]
    if kind == ROW_KIND and (not isinstance(body, str) or not body.strip()):
        raise SpecError(f"{at(file, item, kind)}: rule '{name}': 'check' must be a SQL "
                        "predicate string, e.g. \"amount > 0\"")
    nested = _nested_column_list(kind, body)
    if nested:
        raise SpecError(f"{at(file, item, kind)}: rule '{name}': {nested} must list column "
                        "names, not lists or mappings (is a YAML alias *name holding a list "
                        "used inside [...]?)")
    for option, kinds_taking in KIND_OPTIONS.items():
        if option in item and kind not in kinds_taking:
            raise SpecError(f"{at(file, item, option)}: rule '{name}': "
                            + _misplaced(option, kind))
    severity = item.get("severity", "error")
    if severity not in SEVERITIES:
        raise SpecError(f"{at(file, item, 'severity')}: rule '{name}': severity must be "
                        f"'error' or 'warn', got {_shown(severity)}")
    strict = item.get("strict", False)
    if not isinstance(strict, bool):
        raise SpecError(f"{at(file, item, 'strict')}: rule '{name}': strict must be true or false")
    if strict and kind != ROW_KIND:
        raise SpecError(f"{at(file, item, 'strict')}: rule '{name}': 'strict' applies to "
                        f"row checks (NULL counts as a violation), not to a {kind} rule")
    mostly = item.get("mostly")
    if mostly is not None and (isinstance(mostly, bool) or not isinstance(mostly, (int, float))
                               or not 0.0 <= mostly <= 1.0):
        raise SpecError(f"{at(file, item, 'mostly')}: rule '{name}': mostly must be a "
                        f"number between 0 and 1, got {_shown(mostly)}")
    description = item.get("description", "")
    if description is None:
        description = ""
    if isinstance(description, bool) or not isinstance(description, (str, int, float)):
        raise SpecError(f"{at(file, item, 'description')}: rule '{name}': description "
                        f"must be text, got {_type_name(description)}")
    options = {k: item[k] for k in ("where", "between", "equals") if k in item}
    return RuleSpec(name=name, kind=kind, body=body, severity=severity, strict=strict,
                    mostly=None if mostly is None else float(mostly),
                    description=str(description), options=options, where=here)


def _nested_column_list(kind: str, body: Any) -> str | None:
    """The field of a dataset check's body that holds a list inside its column list."""
    fields = {"unique": body} if kind == "unique" else \
        {f"reference {k}": body.get(k) for k in ("columns", "key")} \
        if kind == "reference" and isinstance(body, dict) else {}
    for what, value in fields.items():
        if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
            return f"'{what}'"
    return None


def _misplaced(option: str, kind: str) -> str:
    if kind == ROW_KIND and option == "where":
        return ("a row check cannot take 'where' (it filters the rows of dataset-level "
                "rules); fold the condition into the check: "
                "check: \"(<where>) IS NOT TRUE OR (<check>)\"")
    if kind == ROW_KIND:
        return (f"a row check cannot take '{option}' (bounds apply to the one number an "
                "aggregate or row_count rule computes); each row passes or fails its check")
    return (f"a {kind} rule cannot take '{option}'; '{option}' applies to "
            + " and ".join(KIND_OPTIONS[option]) + " rules")


def _check_unique_names(rules: list[RuleSpec]) -> None:
    seen: dict[str, RuleSpec] = {}
    for rule in rules:
        if rule.name in seen:
            raise SpecError(f"{rule.where}: duplicate rule name '{rule.name}' "
                            f"(first at {seen[rule.name].where})")
        seen[rule.name] = rule
