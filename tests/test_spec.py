"""Rules files: every mistake is a SpecError that names file:line and the field."""
from __future__ import annotations

import pytest

from batchaot.errors import SpecError
from batchaot.spec import load_rules


def write(tmp_path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def test_list_and_mapping_forms(tmp_path) -> None:
    as_list = load_rules(write(tmp_path, "- {name: a, check: 'x > 0'}\n"))
    as_map = load_rules(write(tmp_path, "rules:\n  - {name: a, check: 'x > 0', severity: warn}\n"))
    assert as_list[0].body == "x > 0" and as_list[0].severity == "error"
    assert as_map[0].severity == "warn" and as_map[0].where.line == 2


@pytest.mark.parametrize("text, expected", [
    ("rules:\n  - {name: a, check: 'x > 0'\n", r"rules.yaml:\d+: malformed YAML"),
    ("rules:\n  - name: a\n    chek: 'x > 0'\n", r"rules.yaml:3: unknown rule field 'chek' \(did you mean 'check'\?\)"),
    ("rules:\n  - name: a\n", r"rules.yaml:2: rule 'a' has no kind"),
    ("rules:\n  - {name: a, check: 'x > 0', unique: [x]}\n", r"has more than one kind"),
    ("rules:\n  - {name: a, check: 'x > 0', severity: fatal}\n", r"rules.yaml:2: rule 'a': severity must be"),
    ("rules:\n  - {name: a, check: 'x > 0', mostly: 1.5}\n", r"mostly must be a number between 0 and 1"),
    ("rules:\n  - {name: a, check: 'x > 0', strict: maybe}\n", r"strict must be true or false"),
    ("rules:\n  - {name: a, check: ''}\n", r"'check' must be a SQL predicate"),
    ("rules:\n  - {name: a, check: 'x > 0'}\n  - {name: a, check: 'x < 9'}\n", r"rules.yaml:3: duplicate rule name 'a' \(first at .*rules.yaml:2\)"),
    ("rules: []\n", r"no rules"),
    ("rules: {a: 1}\n", r"'rules' must be a list"),
    ("rulez:\n  - {name: a, check: 'x > 0'}\n", r"rules.yaml:1: unknown field 'rulez' \(did you mean 'rules'\?\)"),
    ("- 42\n", r"rule #1 must be a mapping"),
])
def test_bad_rules_files(tmp_path, text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_rules(write(tmp_path, text))


def test_missing_file_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_rules(str(tmp_path / "nope.yaml"))


def test_merge_keys_and_aliases_within_bounds_are_fine(tmp_path) -> None:
    rules = load_rules(write(tmp_path, "description: &d {severity: warn, strict: true}\n"
                                       "rules:\n  - {<<: *d, name: a, check: 'x > 0'}\n"
                                       "  - {<<: *d, name: b, check: 'x < 9', severity: error}\n"))
    assert [(r.name, r.severity, r.strict) for r in rules] == [("a", "warn", True), ("b", "error", True)]


@pytest.mark.parametrize("text, expected", [
    ("rules:\n  - {name: a, check: 'x > 0', name: b}\n", r"rules.yaml:2: duplicate key 'name' \(first at line 2\)"),
    ("rules:\n  - {? [a]: 1, name: a, check: 'x'}\n", r"rules.yaml:2: a key must be a plain name"),
    ("rules:\n  - {name: a, check: 'x > 0', where: 'x < 3'}\n", r"rules.yaml:2: rule 'a': a row check cannot take 'where'"),
    ("rules:\n  - {name: a, row_count: {equals: 3}, strict: true}\n", r"'strict' applies to row checks"),
    ("rules:\n  - {name: \"a\\nb\", check: 'x > 0'}\n", r"rules.yaml:2: rule name 'a\\nb' holds a control character"),
    ("rules:\n  - {name: a, check: 'x > 0', description: [1]}\n", r"description must be text, got a list"),
])
def test_refusals_name_file_and_line(tmp_path, text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_rules(write(tmp_path, text))


def test_rule_dicts_have_no_line_and_say_so_plainly() -> None:
    with pytest.raises(SpecError) as info:
        load_rules([{"name": "a", "check": "x > 0", "between": [1, 2]}])
    assert str(info.value).startswith("<rules>: rule 'a': a row check cannot take 'between'")
