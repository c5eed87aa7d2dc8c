"""DSLP issues read from GitHub: sections, template text, boxes, links, the Ask's metric."""

from __future__ import annotations

import pytest

from integrations.github.issues import parse_issue, parse_template, primary_metric
from tests.paths import ROOT

FORM_ANSWER = """### Problem statement

Churn is found too late.

### Metrics

Primary metric: auc >= 0.85

### Constraints

_No response_
"""


def test_issue_form_answers_become_sections_and_template_values_are_known():
    labels, template = parse_template(
        "ask.yml", (ROOT / "examples/github/ISSUE_TEMPLATE/ask.yml").read_text()
    )
    assert labels == ["Ask"]
    assert template["Metrics"] == "Primary metric: <metric> >= <threshold>"
    issue = parse_issue(
        {
            "number": 4,
            "body": FORM_ANSWER,
            "labels": [{"name": "Ask"}],
            "user": {"login": "bob-biz"},
            "html_url": "https://github.com/acme/churn/issues/4",
        },
        {"ask": template},
        "acme/churn",
    )
    assert issue["sections"]["Problem statement"] == "Churn is found too late."
    assert issue["sections"]["Constraints"] == "_No response_"
    assert issue["template"] is template and issue["author"] == "bob-biz"


def test_markdown_template_with_front_matter():
    text = "---\nname: Data\nlabels: Data, dataset\n---\n## Known issues\nList them.\n"
    assert parse_template("data.md", text) == (["Data", "dataset"], {"Known issues": "List them."})


def test_checkboxes_and_links():
    body = "Depends on #12 and https://github.com/acme/churn/issues/15, not #4 itself.\n- [x] privacy\n- [ ] legal"
    issue = parse_issue({"number": 4, "body": body, "labels": []}, {}, "acme/churn")
    assert issue["links"] == [12, 15]
    assert issue["checkboxes"] == [
        {"text": "privacy", "checked": True},
        {"text": "legal", "checked": False},
    ]


def test_only_links_to_the_same_repository_count():
    body = (
        "Data: #3, acme/churn#5 and https://ghe.example.com/acme/Churn/pull/6.\n"
        "Not ours: https://github.com/other/repo/issues/7, other/repo#8, "
        "https://github.com/acme/churn-old/issues/9, a heading link docs.md#10."
    )
    issue = parse_issue({"number": 1, "body": body, "labels": []}, {}, "acme/churn")
    assert issue["links"] == [3, 5, 6]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Primary metric: auc >= 0.85", {"name": "auc", "threshold": 0.85, "direction": "higher"}),
        ("primary metric = `f1` > 0.7", {"name": "f1", "threshold": 0.7, "direction": "higher"}),
        ("Primary metric: rmse ≤ 12.5", {"name": "rmse", "threshold": 12.5, "direction": "lower"}),
        ("Primary metric: <metric> >= <threshold>", None),
        ("We care about AUC", None),
    ],
)
def test_primary_metric_line(line, expected):
    assert primary_metric(line) == expected
