"""Policy loading: the shipped set is valid; every kind of mistake is reported precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.active import ActivePolicies, NoValidPolicies
from gates.loader import load_policies


def errors_of(directory: Path) -> list[str]:
    result = load_policies(directory)
    assert result.policies is None, "a broken directory must not yield a policy set"
    return [str(e).replace(str(directory) + "/", "") for e in result.errors]


def edit(directory: Path, name: str, old: str, new: str) -> None:
    path = directory / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_shipped_policies_are_valid(default_policies):
    assert set(default_policies.gates) == {
        "problem-framed",
        "data-assumptions-checked",
        "experiment-succeeded",
        "model-packaged",
        "monitoring-attached",
    }
    assert [p.id for p in default_policies.lifecycle.phases][:2] == ["framing", "data"]
    assert "churn-model" in default_policies.projects


def test_small_set_is_valid(small_dir):
    result = load_policies(small_dir)
    assert result.errors == []
    assert result.policies.projects["demo"].people == {"lead": ["ann"], "owner": ["ben"]}


# Each case: file, text to replace, replacement, the exact error line expected.
MISTAKES = [
    pytest.param(
        "gate.yaml",
        "    count: 1",
        "    count: two",
        "gate.yaml:13:12: approvals.0.count: Input should be a valid integer, unable to parse string as an integer (got 'two')",
        id="wrong-type",
    ),
    pytest.param(
        "gate.yaml",
        "    count: 1",
        "    count: 1\n    allow_autor: true",
        "gate.yaml:14:5: unknown key 'allow_autor' (did you mean 'allow_author'?)",
        id="unknown-key",
    ),
    pytest.param(
        "gate.yaml",
        "id: framed\n",
        "id: framed\nmode: enforced\n",
        "gate.yaml:3:7: mode: Input should be 'enforce', 'warn' or 'shadow' (got 'enforced')",
        id="bad-enum",
    ),
    pytest.param(
        "project.yaml",
        "key: demo\n",
        "",
        "project.yaml:1:1: missing required key 'key'",
        id="missing-key",
    ),
    pytest.param(
        "gate.yaml",
        "kind: Gate",
        "kind: Gatee",
        "gate.yaml:1:7: unknown kind 'Gatee' (did you mean 'Gate'?): expected one of Lifecycle, Gate, Roles, People, Project, PolicyTest",
        id="unknown-document-kind",
    ),
    pytest.param(
        "gate.yaml",
        "kind: issue_sections",
        "kind: issue_section",
        "gate.yaml:5:11: unknown check kind 'issue_section' (did you mean 'issue_sections'?)",
        id="unknown-check-kind",
    ),
    pytest.param(
        "gate.yaml",
        "      sections: [Problem]",
        "      sectons: [Problem]",
        "gate.yaml:8:7: unknown key 'sectons' (did you mean 'sections'?)",
        id="bad-check-parameter",
    ),
    pytest.param(
        "gate.yaml",
        "  - roles: [lead]\n    count",
        "  - roles: [leed]\n    count",
        "gate.yaml:12:13: unknown role 'leed' (did you mean 'lead'?)",
        id="unknown-role",
    ),
    pytest.param(
        "lifecycle.yaml",
        "    to: data",
        "    to: dta",
        "lifecycle.yaml:7:9: unknown phase 'dta' (did you mean 'data'?)",
        id="unknown-phase",
    ),
    pytest.param(
        "lifecycle.yaml",
        "    gate: framed",
        "    gate: framd",
        "lifecycle.yaml:8:11: unknown gate 'framd' (did you mean 'framed'?)",
        id="unknown-gate",
    ),
    pytest.param(
        "project.yaml",
        "  owner: [ben]",
        "  owner: [ben, bert]",
        "project.yaml:5:16: unknown person 'bert'",
        id="unknown-person",
    ),
    pytest.param(
        "gate.yaml",
        "  - id: metric",
        "  - id: ask",
        "gate.yaml:9:9: duplicate check id 'ask' (first defined at gate.yaml:4)",
        id="duplicate-id",
    ),
    pytest.param(
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: ask.primary_metric !=",
        "gate.yaml:10:32: CEL: Syntax error: mismatched input '<EOF>' expecting",
        id="cel-syntax",
    ),
    pytest.param(
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: 'asks.primary_metric != null'",
        "gate.yaml:10:16: CEL: undeclared reference to 'asks.primary_metric'",
        id="cel-undeclared",
    ),
    pytest.param(
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: ask.primary_metric != null\n    kind: file_exists",
        "gate.yaml:9:5: check 'metric' needs exactly one of kind, expr, all, any, not (found: kind, expr)",
        id="two-bodies",
    ),
    pytest.param(
        "gate.yaml",
        "    checks: [ask]",
        "    checks: [asks]",
        "gate.yaml:16:14: unknown check 'asks' (did you mean 'ask'?)",
        id="waiver-unknown-check",
    ),
    pytest.param(
        "gate.yaml",
        "    checks: [ask]",
        "    checks: [ask]\n    max_duration: 2 weeks",
        "gate.yaml:17:19: waivers.0.max_duration: invalid duration '2 weeks'",
        id="bad-duration",
    ),
    pytest.param(
        "people.yaml",
        "  - id: ben",
        "  - id: ann",
        "people.yaml:10:9: duplicate person 'ann' (first defined at people.yaml:8)",
        id="duplicate-person",
    ),
    pytest.param(
        "gate.yaml",
        "      label: Ask",
        "      label: [Ask",
        "gate.yaml:8:15: YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        "gate.yaml",
        "      label: Ask",
        "      label: A\x00sk",
        "gate.yaml:7:15: YAML syntax error: control character U+0000 is not allowed in YAML",
        id="nul-byte",
    ),
    pytest.param(
        "gate.yaml",
        "      label: Ask",
        "      label: \x1b[1mAsk",
        "gate.yaml:7:14: YAML syntax error: control character U+001B is not allowed in YAML",
        id="esc-byte",
    ),
    pytest.param(
        "gate.yaml",
        "  - roles: [lead]\n    count: 1",
        "  - <<: {roles: [leed]}\n    count: 1",
        "gate.yaml:12:18: unknown role 'leed' (did you mean 'lead'?)",
        id="merge-key-with-siblings",
    ),
    pytest.param(
        "gate.yaml",
        "  - roles: [lead]\n    count: 1",
        "  - <<: {roles: [lead], count: x}",
        "gate.yaml:12:32: approvals.0.count: Input should be a valid integer",
        id="merge-key-alone",
    ),
    pytest.param(
        "lifecycle.yaml",
        "    gate: framed\n",
        "    gate: framed\n  - from: framing\n    to: framing\n    gate: framed\n",
        "lifecycle.yaml:9:11: duplicate transition from phase 'framing' (first defined at lifecycle.yaml:6)",
        id="two-transitions-from-one-phase",
    ),
    pytest.param(
        "lifecycle.yaml",
        "    gate: framed\n",
        "    gate: framed\nregressions:\n"
        "  - {id: drift, when: 'true', from: [data], to: framing}\n"
        "  - {id: drift, when: 'false', from: [data], to: framing}\n",
        "lifecycle.yaml:11:10: duplicate regression id 'drift' (first defined at lifecycle.yaml:10)",
        id="duplicate-regression-id",
    ),
    pytest.param(
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: 1 + 1",
        "gate.yaml:10:11: CEL: `expr` must be true or false, but this gives int",
        id="cel-not-boolean",
    ),
    pytest.param(
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: ask.primary_metric != null\n    if: \"'always'\"",
        "gate.yaml:11:9: CEL: `if` must be true or false, but this gives string",
        id="cel-if-not-boolean",
    ),
    pytest.param(
        "lifecycle.yaml",
        "    gate: framed\n",
        "    gate: framed\nregressions:\n  - {id: drift, when: 'event.kind', from: [data], to: framing}\n"
        "  - {id: size, when: 'size(event.labels)', from: [data], to: framing}\n",
        "lifecycle.yaml:11:22: CEL: `when` must be true or false, but this gives int",
        id="cel-when-not-boolean",
    ),
    pytest.param(
        "gate.yaml",
        "      label: Ask",
        "      label: !upper Ask",
        "gate.yaml:7:14: tags such as !upper are not supported: write the plain value",
        id="yaml-tag",
    ),
    pytest.param(
        "gate.yaml",
        "    checks: [ask]\n",
        "    checks: [ask]\n---\n# notes\n|\n  not a policy\n",
        "gate.yaml:19:1: a policy document must be a mapping with a 'kind'",
        id="block-scalar-document",
    ),
    pytest.param(
        "gate.yaml",
        "      label: Ask",
        "      label: Ask\n      label: Data",
        "gate.yaml:8:7: YAML syntax error: while constructing a mapping found duplicate key",
        id="yaml-duplicate-key",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), MISTAKES)
def test_mistake_is_reported_at_its_node(small_dir, name, old, new, expected):
    edit(small_dir, name, old, new)
    errors = errors_of(small_dir)
    assert any(e.startswith(expected) for e in errors), "\n".join(errors)


def test_all_mistakes_are_reported_at_once(small_dir):
    edit(small_dir, "gate.yaml", "roles: [lead]", "roles: [leed]")
    edit(small_dir, "lifecycle.yaml", "    to: data", "    to: dta")
    edit(small_dir, "project.yaml", "  owner: [ben]", "  owner: [bert]")
    edit(small_dir, "people.yaml", "  - id: ben", "  - id: ann")
    errors = errors_of(small_dir)
    assert [e.split(":")[0] for e in errors] == [
        "gate.yaml",
        "lifecycle.yaml",
        "people.yaml",
        "project.yaml",
    ], errors


def test_cel_error_in_block_scalar_points_into_the_block(small_dir):
    edit(
        small_dir,
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: >-\n      ask.primary_metric != null\n      && mlflow.run ==",
    )
    errors = errors_of(small_dir)
    # The folded block is one line to CEL; the error is on the block's second line, at its end.
    assert any(e.startswith("gate.yaml:12:23: CEL: Syntax error") for e in errors), errors


def test_cel_error_in_literal_block_keeps_lines(small_dir):
    edit(
        small_dir,
        "gate.yaml",
        "    expr: ask.primary_metric != null",
        "    expr: |\n      ask.primary_metric != null\n      && bogus.x",
    )
    errors = errors_of(small_dir)
    assert any(
        e.startswith("gate.yaml:12:15: CEL: undeclared reference to 'bogus") for e in errors
    ), errors


def test_no_lifecycle_is_an_error(small_dir):
    (small_dir / "lifecycle.yaml").unlink()
    errors = errors_of(small_dir)
    assert "<policies>:1:1: no document of kind Lifecycle" in errors


def test_a_broken_file_notes_that_references_may_cascade(small_dir):
    (small_dir / "gate.yaml").write_text("kind: Gate\nid: [\n")
    errors = errors_of(small_dir)
    assert errors[0].startswith("gate.yaml:3:1: YAML syntax error")
    assert (
        "unknown gate 'framed' (it may be defined in a document that failed to load)" in errors[1]
    )


def test_binary_file_is_reported_not_raised(small_dir):
    (small_dir / "junk.yaml").write_bytes(b"\xff\xfe\x00garbage")
    errors = errors_of(small_dir)
    assert any(e.startswith("junk.yaml:1:1: cannot read file") for e in errors)


def test_last_valid_policy_set_stays_in_force(small_dir, tmp_path):
    active = ActivePolicies(small_dir, cache=tmp_path / "cache" / "policies.json")
    assert active.reload() == []
    good = active.current.policy_hash
    edit(small_dir, "gate.yaml", "    count: 1", "    count: two")
    errors = active.reload()
    assert errors and active.current.policy_hash == good
    # A restarted engine that finds the files broken enforces the cached set.
    restarted = ActivePolicies(small_dir, cache=tmp_path / "cache" / "policies.json")
    assert restarted.reload() == errors
    assert restarted.current.policy_hash == good
    assert restarted.current.gates["framed"].approvals[0].roles == ["lead"]
    # Fixing the file brings the new set into force.
    edit(small_dir, "gate.yaml", "    count: two", "    count: 2")
    assert restarted.reload() == []
    assert restarted.current.gates["framed"].approvals[0].count == 2


def test_never_valid_means_nothing_in_force(small_dir):
    edit(small_dir, "gate.yaml", "    count: 1", "    count: two")
    active = ActivePolicies(small_dir)
    assert active.reload()
    with pytest.raises(NoValidPolicies, match="count"):
        _ = active.current


def test_policy_hash_changes_with_content(small_dir):
    first = load_policies(small_dir).policies.policy_hash
    edit(small_dir, "gate.yaml", "    count: 1", "    count: 1  # one is enough")
    assert load_policies(small_dir).policies.policy_hash != first


def test_a_document_with_a_type_error_still_gets_its_other_checks(small_dir):
    edit(small_dir, "gate.yaml", "    count: 1", "    count: two")
    edit(small_dir, "gate.yaml", "kind: issue_sections", "kind: issue_section")
    errors = errors_of(small_dir)
    assert [e.split(": ", 1)[0] for e in errors] == ["gate.yaml:5:11", "gate.yaml:13:12"], errors
    assert not any("lifecycle.yaml" in e for e in errors)  # the gate's id is still known


def test_a_merge_key_supplies_values(small_dir):
    edit(
        small_dir,
        "gate.yaml",
        "  - roles: [lead]\n    count: 1",
        "  - <<: {roles: [lead]}\n    count: 1",
    )
    result = load_policies(small_dir)
    assert result.errors == []
    assert result.policies.gates["framed"].approvals[0].roles == ["lead"]


def test_an_alias_bomb_is_refused_quickly(small_dir):
    # Six levels of nine aliases each: 531,441 nodes once expanded, from a 10-line file.
    lines = ["kind: Roles", "roles:", "  - id: extra", "lol0: &a0 [lol]"]
    lines += [f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    (small_dir / "bomb.yaml").write_text("\n".join(lines) + "\n")
    errors = errors_of(small_dir)
    assert errors == ["bomb.yaml:4:12: too many nodes after expanding aliases (limit 100000)"]


def test_a_control_character_keeps_the_last_valid_set_in_force(small_dir):
    active = ActivePolicies(small_dir)
    assert active.reload() == []
    good = active.current.policy_hash
    edit(small_dir, "people.yaml", "  - id: ben", "  - id: b\x00en")
    errors = active.reload()
    shown = [str(e).replace(str(small_dir) + "/", "") for e in errors]
    assert (
        "people.yaml:10:10: YAML syntax error: control character U+0000 is not allowed in YAML: "
        'remove it, or write it as the escape "\\x00" inside a double-quoted string'
    ) in shown
    assert active.current.policy_hash == good
