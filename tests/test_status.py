"""The status page the receiver serves (where a check run's "Details" leads), over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.decisions import record
from gates.result import CheckResult, GateResult, Rejection
from gates.scenario import decide, load_scenario
from gates.store import Store
from integrations.receiver import create_app
from phasegate.settings import Settings
from tests.paths import EXAMPLES
from tests.servers import client, serving


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'status.db'}")
    store.migrate()
    return store


def test_the_page_explains_a_blocked_check_with_its_hint(tmp_path, default_policies):
    store = _store(tmp_path)
    result = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.blocked.json"))
    store.ensure_project("churn-model", "model-development", datetime.now(UTC))
    record(store, default_policies, result, "model-development", move=None)
    with serving(create_app(Settings(), store)) as base, client(base) as http:
        overview = http.get("/status")
        page = http.get("/status/churn-model")
        missing = http.get("/status/no-such-project")
    assert overview.status_code == 200 and overview.headers["content-type"].startswith("text/html")
    assert '<a href="/status/churn-model#model-packaged">model-packaged</a>' in overview.text
    assert "<td>the project</td>" in overview.text
    assert "model-development" in overview.text and "blocked" in overview.text
    assert page.status_code == 200
    assert '<section id="model-packaged" class="gate blocked">' in page.text
    row = next(line for line in page.text.splitlines() if "Primary metric meets the Ask" in line)
    assert '<tr class="failed">' in row
    assert "auc ≥ 0.85 and ≥ champion v3 (0.89)" in row  # expected
    assert "auc = 0.84 (champion v3: 0.89)" in row  # found
    card = next(line for line in page.text.splitlines() if "Model card is written" in line)
    assert "docs/model_card.md:15" in card  # where
    assert "Fill in every section of docs/model_card.md." in card  # how to fix
    assert "still needed" in page.text  # the approvals still missing
    assert missing.status_code == 404 and "no project 'no-such-project'" in missing.text


def test_a_pull_requests_page_shows_its_own_result_not_the_projects(tmp_path, default_policies):
    """A PR's check links to the PR's page: the project's own evaluation (or another PR's)
    of the same gate, recorded later, must not be what that link shows."""
    store = _store(tmp_path)
    store.ensure_project("churn-model", "model-development", datetime.now(UTC))
    blocked = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.blocked.json"))
    passed = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.passed.json"))
    for result, pull in ((blocked, 7), (passed, None)):  # the project's, after PR #7's
        store.record_evaluation(
            project="churn-model",
            gate="model-packaged",
            status=result.status,
            mode=result.mode,
            policy_hash=default_policies.policy_hash,
            evidence_digest=result.evidence_digest,
            gate_digest=result.gate_digest,
            result=result.model_dump(mode="json"),
            at=datetime.now(UTC),
            pull_request=pull,
        )
    with serving(create_app(Settings(), store)) as base, client(base) as http:
        pr_page = http.get("/status/churn-model", params={"pr": 7}).text
        project_page = http.get("/status/churn-model").text
        overview = http.get("/status").text
        other = http.get("/status/churn-model", params={"pr": 8}).text
    assert "<h1>churn-model · PR #7</h1>" in pr_page
    assert 'class="gate blocked"' in pr_page and 'class="gate passed"' not in pr_page
    assert 'class="gate passed"' in project_page and 'class="gate blocked"' not in project_page
    assert '<a href="/status/churn-model?pr=7">PR #7</a>' in project_page
    assert '<a href="/status/churn-model?pr=7#model-packaged">' in overview
    assert "<td>PR #7</td>" in overview and "<td>the project</td>" in overview
    assert "No gate has been evaluated on PR #8 yet." in other


def test_hostile_text_from_policies_and_evidence_is_escaped(tmp_path):
    store = _store(tmp_path)
    now = datetime.now(UTC)
    store.ensure_project("churn-model", "model-development", now)
    hostile = GateResult(
        project="churn-model",
        gate="model-packaged",
        title="<script>alert('title')</script>",
        mode="enforce",
        status="blocked",
        checks=[
            CheckResult(
                id="card",
                title="<img src=x onerror=alert(1)>",
                outcome="failed",
                expected="a & b",
                found="</td><script>alert('found')</script>",
                hint='"><script>alert("hint")</script>',
                source="javascript:alert(document.cookie)",
            )
        ],
        rejections=[Rejection(person="bob", reason="<b>no</b>", at=now)],
        evidence_digest="e" * 64,
        gate_digest="g" * 64,
        evaluated_at=now,
    )
    store.record_evaluation(
        project="churn-model",
        gate="model-packaged",
        status="blocked",
        mode="enforce",
        policy_hash="p",
        evidence_digest=hostile.evidence_digest,
        gate_digest=hostile.gate_digest,
        result=hostile.model_dump(mode="json"),
        at=now,
    )
    with serving(create_app(Settings(), store)) as base, client(base) as http:
        page = http.get("/status/churn-model").text
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert 'href="javascript:' not in page  # evidence links only to web addresses
    assert "&lt;/td&gt;&lt;script&gt;alert('found')&lt;/script&gt;" in page  # shown, not linked
    assert "&lt;script&gt;alert('title')&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "a &amp; b" in page and "rejected by bob: &lt;b&gt;no&lt;/b&gt;" in page
