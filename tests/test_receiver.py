"""The receiver over real HTTP: verification first, the inbox before the answer, no 500s."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from gates.store import Store
from integrations.receiver import create_app
from phasegate.settings import Settings
from tests import signing
from tests.fake_slack import fake_slack
from tests.servers import client, serving, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "github-webhooks"
ALL_FIXTURES = sorted(FIXTURES.glob("*/*.json"))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []

    def __call__(self, inbox_id: int, source: str, kind: str) -> None:
        self.calls.append((inbox_id, source, kind))


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'receiver.db'}")
    store.migrate()
    return store


def settings(**overrides) -> Settings:
    values = {
        "github_webhook_secret": signing.GITHUB_SECRET,
        "slack_signing_secret": signing.SLACK_SECRET,
        "mlflow_webhook_secret": signing.MLFLOW_SECRET,
        "alerts_token": signing.ALERTS_TOKEN,
        "max_body_bytes": 2 * 1024 * 1024,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def receiver(store):
    notify = Recorder()
    with serving(create_app(settings(), store, notify)) as base, client(base) as http:
        yield http, store, notify


def test_every_published_github_payload_is_accepted_once(receiver):
    http, store, notify = receiver
    assert len(ALL_FIXTURES) >= 50
    for path in ALL_FIXTURES:
        body = path.read_bytes()
        headers = signing.github(
            body, path.parent.name, delivery=f"d-{path.parent.name}-{path.stem}"
        )
        first = http.post("/webhooks/github", content=body, headers=headers)
        assert first.status_code == 202, (path, first.text)
        again = http.post("/webhooks/github", content=body, headers=headers)
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    rows = store.inbox_events(limit=1000)
    assert len(rows) == len(ALL_FIXTURES) == len(notify.calls)
    assert {r.kind for r in rows} >= {"pull_request.opened", "issues.edited", "ping", "push"}


def test_same_delivery_five_times_is_one_event(receiver):
    http, store, notify = receiver
    body = (FIXTURES / "pull_request" / "synchronize.payload.json").read_bytes()
    headers = signing.github(body, "pull_request", delivery="same-delivery")
    codes = [
        http.post("/webhooks/github", content=body, headers=headers).status_code for _ in range(5)
    ]
    assert codes == [202, 200, 200, 200, 200]
    assert len(store.inbox_events()) == 1 and len(notify.calls) == 1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("X-Hub-Signature-256"), "github signature missing or invalid"),
        (
            lambda h: h.update({"X-Hub-Signature-256": "sha256=" + "0" * 64}),
            "github signature missing or invalid",
        ),
        (
            lambda h: h.update({"X-Hub-Signature-256": "garbage"}),
            "github signature missing or invalid",
        ),
    ],
)
def test_forged_or_unsigned_github_is_refused_and_not_stored(receiver, mutate, reason):
    http, store, notify = receiver
    body = (
        (FIXTURES / "ping" / "payload.json").read_bytes()
        if (FIXTURES / "ping" / "payload.json").exists()
        else b"{}"
    )
    headers = signing.github(body, "ping")
    mutate(headers)
    answer = http.post("/webhooks/github", content=body, headers=headers)
    assert (answer.status_code, answer.json()) == (401, {"error": reason})
    assert store.inbox_events() == [] and notify.calls == []


def test_body_signed_with_another_secret_is_refused(receiver):
    http, store, _ = receiver
    body = b'{"zen": "hi"}'
    answer = http.post(
        "/webhooks/github", content=body, headers=signing.github(body, "ping", secret="wrong")
    )
    assert answer.status_code == 401 and store.inbox_events() == []


def test_malformed_json_is_a_400_with_a_reason(receiver):
    http, store, _ = receiver
    body = b'{"action": "opened",'
    answer = http.post("/webhooks/github", content=body, headers=signing.github(body, "issues"))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("malformed JSON")
    assert store.inbox_events() == []


def _signed(path: str, body: bytes) -> dict[str, str]:
    if path == "/webhooks/github":
        return signing.github(body, "issues")
    if path == "/webhooks/alerts":
        return signing.alerts()
    return signing.slack(body)


SLACK_CLICK = {"type": "block_actions", "trigger_id": "t1", "actions": [{"action_ts": "1.1"}]}


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/webhooks/github",
            b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "malformed JSON: nested deeper than 100 levels",
        ),
        (
            "/webhooks/github",
            b'{"a": ' + b"[" * 150 + b"]" * 150 + b"}",
            "malformed JSON: nested deeper than 100 levels",
        ),
        ("/webhooks/github", b'{"action": "edited", "n": NaN}', "NaN is not a JSON value"),
        ("/webhooks/github", b'{"n": -Infinity}', "-Infinity is not a JSON value"),
        (
            "/webhooks/github",
            b'{"action": "edited", "title": "\\ud800"}',
            "malformed JSON: \\ud800 is not valid Unicode text",
        ),
        (
            "/webhooks/alerts",
            json.dumps({**signing.alertmanager(), "alerts": 5}).encode(),
            "malformed monitoring payload: 'alerts' must be a list of alerts, found 5",
        ),
        (
            "/webhooks/alerts",
            json.dumps({**signing.alertmanager(), "alerts": None}).encode(),
            "malformed monitoring payload: 'alerts' must be a list of alerts, found null",
        ),
        (
            "/slack/interactions",
            signing.slack_body({**SLACK_CLICK, "actions": {"x": 1}}),
            "malformed slack payload: 'actions' must be a list",
        ),
        (
            "/slack/interactions",
            urlencode({"payload": '{"type": "block_actions", "n": NaN}'}).encode(),
            "malformed JSON: Out of range float values are not JSON compliant",
        ),
        (
            "/slack/interactions",
            urlencode({"payload": '{"type": "block_actions", "text": "\\ud800"}'}).encode(),
            "\\ud800 is not valid Unicode text",
        ),
    ],
    ids=[
        "too-deep-for-the-parser",
        "too-deep-to-store",
        "nan",
        "infinity",
        "lone-surrogate",
        "alerts-not-a-list",
        "alerts-null",
        "slack-actions-not-a-list",
        "slack-nan",
        "slack-lone-surrogate",
    ],
)
def test_signed_but_unreadable_payload_is_a_400_with_the_reason(
    receiver, caplog, path, body, reason
):
    """A 503 would tell the sender to retry a body that can never be stored: Alertmanager
    would repeat it forever. A 400 says what is wrong with it, and nothing is kept."""
    http, store, notify = receiver
    with caplog.at_level(logging.WARNING):
        answer = http.post(path, content=body, headers=_signed(path, body))
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]
    assert store.inbox_events() == [] and notify.calls == []
    assert "could not store" not in caplog.text and "rejected a" in caplog.text


def test_missing_delivery_header_is_a_400(receiver):
    http, _store, _ = receiver
    body = b"{}"
    headers = signing.github(body, "ping")
    del headers["X-GitHub-Delivery"]
    answer = http.post("/webhooks/github", content=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (400, "missing header x-github-delivery")


def test_oversized_body_is_refused_unread(receiver):
    http, store, _ = receiver
    body = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    answer = http.post("/webhooks/github", content=body, headers=signing.github(body, "push"))
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    assert store.inbox_events() == []


def test_unconfigured_source_answers_503_and_says_what_to_set(store, caplog):
    app = create_app(settings(mlflow_webhook_secret=None), store)
    body = json.dumps({"entity": "model_version", "action": "created", "data": {}}).encode()
    with serving(app) as base, client(base) as http, caplog.at_level(logging.WARNING):
        answer = http.post("/webhooks/mlflow", content=body, headers=signing.mlflow(body))
    assert answer.status_code == 503
    assert "PHASEGATE_MLFLOW_WEBHOOK_SECRET" in answer.json()["error"]
    assert "PHASEGATE_MLFLOW_WEBHOOK_SECRET is not set" in caplog.text
    assert store.inbox_events() == []


def test_mlflow_signature_and_replay_window(receiver):
    http, store, _ = receiver
    body = json.dumps(
        {
            "entity": "model_version",
            "action": "created",
            "timestamp": "2026-11-20T10:00:00+00:00",
            "data": {"name": "churn-classifier", "version": "4", "run_id": None},
        }
    ).encode()
    ok = http.post("/webhooks/mlflow", content=body, headers=signing.mlflow(body, delivery="m-1"))
    assert ok.status_code == 202
    stale = http.post(
        "/webhooks/mlflow", content=body, headers=signing.mlflow(body, stamp=int(time.time()) - 600)
    )
    forged = signing.mlflow(body)
    forged["X-MLflow-Signature"] = "v1,AAAA"
    assert stale.status_code == 401
    assert http.post("/webhooks/mlflow", content=body, headers=forged).status_code == 401
    [row] = store.inbox_events()
    assert (row.source, row.delivery_id, row.kind) == ("mlflow", "m-1", "model_version.created")


def test_alerts_need_the_bearer_token_and_repeats_dedupe(receiver):
    http, store, _ = receiver
    body = json.dumps(signing.alertmanager()).encode()
    assert (
        http.post("/webhooks/alerts", content=body, headers=signing.alerts("nope")).status_code
        == 401
    )
    assert (
        http.post(
            "/webhooks/alerts", content=body, headers={"Content-Type": "application/json"}
        ).status_code
        == 401
    )
    assert http.post("/webhooks/alerts", content=body, headers=signing.alerts()).status_code == 202
    assert http.post("/webhooks/alerts", content=body, headers=signing.alerts()).status_code == 200
    resolved = json.dumps(signing.alertmanager(status="resolved")).encode()
    assert (
        http.post("/webhooks/alerts", content=resolved, headers=signing.alerts()).status_code == 202
    )
    assert [r.kind for r in store.inbox_events()] == ["alert.firing", "alert.resolved"]


def test_slack_answers_fast_and_refuses_stale_or_forged(receiver):
    http, store, _ = receiver
    body = signing.slack_body(
        {
            "type": "block_actions",
            "trigger_id": "t1",
            "actions": [
                {
                    "action_id": "approve",
                    "action_ts": "1700000000.1",
                    "value": '{"project": "churn-model"}',
                }
            ],
        }
    )
    started = time.monotonic()
    ok = http.post("/slack/interactions", content=body, headers=signing.slack(body))
    assert ok.status_code == 200 and ok.content == b""
    assert time.monotonic() - started < 3
    stale = http.post(
        "/slack/interactions",
        content=body,
        headers=signing.slack(body, stamp=int(time.time()) - 301),
    )
    assert stale.status_code == 401
    forged = signing.slack(body, secret="other")
    assert http.post("/slack/interactions", content=body, headers=forged).status_code == 401
    junk = b"payload=%7Bnot-json"
    assert (
        http.post("/slack/interactions", content=junk, headers=signing.slack(junk)).status_code
        == 400
    )
    [row] = store.inbox_events()
    assert (row.kind, row.delivery_id) == ("slack.block_actions", "slack-1700000000.1-t1")


@contextmanager
def write_lock(database: Path, seconds: float) -> Iterator[None]:
    """Another process's write transaction on the SQLite file, held for ``seconds`` (what a
    long flow-run write, or a backup, does to the receiver)."""
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, lambda: (holder.execute("ROLLBACK"), holder.close()))
    release.start()
    try:
        yield
    finally:
        release.join()


def _click(response_url: str = "https://hooks.slack.com/actions/T0/1/x") -> bytes:
    return signing.slack_body(
        {
            "type": "block_actions",
            "trigger_id": "t9",
            "response_url": response_url,
            "actions": [{"action_id": "approve", "action_ts": "1700000009.1", "value": "{}"}],
        }
    )


def test_slack_is_answered_in_time_while_another_writer_holds_the_database(store, tmp_path):
    notify = Recorder()
    body = _click()
    with serving(create_app(settings(), store, notify)) as base, client(base) as http:
        with write_lock(tmp_path / "receiver.db", seconds=6):
            started = time.monotonic()
            answer = http.post("/slack/interactions", content=body, headers=signing.slack(body))
            answered_s = time.monotonic() - started
            assert store.inbox_events() == []  # answered, not stored yet: the lock is held
        [row] = wait_for(store.inbox_events, timeout=10)  # then stored: nothing lost
        wait_for(lambda: notify.calls)
    print(f"Slack answered in {answered_s:.2f} s with the database locked for 6 s")
    assert answer.status_code == 200 and answered_s < 3
    assert (row.kind, row.delivery_id) == ("slack.block_actions", "slack-1700000009.1-t9")
    assert notify.calls == [(row.id, "slack", "slack.block_actions")]


def test_a_click_answered_but_never_stored_tells_the_person_to_click_again(tmp_path, caplog):
    broken = Store(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # the late write will fail
    with fake_slack() as (slack, api):
        hooks = api.removesuffix("api/")
        body = _click(response_url=f"{hooks}actions/T0/1/hook")
        app = create_app(settings(slack_response_url_base=hooks), broken)
        with serving(app) as base, client(base) as http, caplog.at_level(logging.INFO):
            with write_lock(tmp_path / "never-migrated.db", seconds=3.5):
                started = time.monotonic()
                answer = http.post("/slack/interactions", content=body, headers=signing.slack(body))
                answered_s = time.monotonic() - started
            [told] = wait_for(lambda: slack.of("response_url"), timeout=15)
    assert answer.status_code == 200 and answered_s < 3
    assert told["hook"] == "T0/1/hook"
    assert (told["response_type"], told["replace_original"]) == ("ephemeral", False)
    assert "could not record your click" in told["text"] and "click again" in told["text"]
    assert "was answered but could not be stored: it is lost" in caplog.text


def test_secrets_never_reach_the_log(receiver, caplog):
    http, _, _ = receiver
    with caplog.at_level(logging.DEBUG):
        body = b'{"zen": "x"}'
        http.post(
            "/webhooks/github", content=body, headers=signing.github(body, "ping", secret="wrong")
        )
        http.post("/webhooks/alerts", content=b"{}", headers=signing.alerts("nope"))
        http.post("/webhooks/github", content=body, headers=signing.github(body, "ping"))
    for secret in (signing.GITHUB_SECRET, signing.ALERTS_TOKEN, "nope"):
        assert secret not in caplog.text
    assert "rejected a github request" in caplog.text


def test_healthz_reports_pending_events(receiver):
    http, _, _ = receiver
    body = b'{"zen": "x"}'
    http.post("/webhooks/github", content=body, headers=signing.github(body, "ping"))
    assert http.get("/healthz").json() == {"status": "ok", "inbox": {"pending": 1}}


def test_deliveries_that_pile_up_are_all_stored_and_one_the_database_refuses_fails_alone(
    store, tmp_path
):
    """While another writer holds the database, deliveries queue and are then written together;
    the one the database refuses (here a trigger) must not take the others down with it."""
    database = tmp_path / "receiver.db"
    with sqlite3.connect(database) as admin:
        admin.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON inbox_events WHEN NEW.delivery_id = 'poison'"
            " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
    deliveries = [f"d-{n}" for n in range(12)] + ["poison"]
    body = b'{"zen": "x"}'
    answers: dict[str, int] = {}

    def send(http, delivery: str) -> None:
        headers = signing.github(body, "ping", delivery=delivery)
        answers[delivery] = http.post("/webhooks/github", content=body, headers=headers).status_code

    with serving(create_app(settings(), store)) as base, write_lock(database, 1.0):
        senders = [threading.Thread(target=send, args=(client(base), d)) for d in deliveries]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()

    assert answers == {d: 503 if d == "poison" else 202 for d in deliveries}
    assert sorted(row.delivery_id for row in store.inbox_events()) == sorted(deliveries[:-1])


def test_store_failure_is_a_503_not_a_500(tmp_path):
    broken = Store(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables
    body = b'{"zen": "x"}'
    with serving(create_app(settings(), broken)) as base, client(base) as http:
        answer = http.post("/webhooks/github", content=body, headers=signing.github(body, "ping"))
    assert answer.status_code == 503 and "retry" in answer.json()["error"]
