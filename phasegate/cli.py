"""The ``phasegate`` command: check policies and decisions locally, inspect the store.

Exit codes are part of the interface, so scripts and CI can act on a decision:
0 passed (or a gate that does not block), 1 blocked, 2 bad input (policies, files,
arguments), 3 awaiting approval, 4 could not decide (a check errored).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Union

import typer
from pydantic import Field, TypeAdapter

from flows.decisions import record
from gates.duration import format_duration, parse_duration
from gates.evaluate import evaluate
from gates.evidence import gate_digest
from gates.lifecycle import advance
from gates.loader import DOCUMENT_KINDS, LoadResult, load_policies
from gates.policy import PolicySet, Scenario
from gates.policytest import run_tests
from gates.progress import last_sent_back
from gates.records import Waiver
from gates.render import to_markdown, to_text
from gates.result import GateResult
from gates.scenario import ScenarioError, decide, gate_for, load_scenario
from gates.store import Store
from gates.waivers import refusal
from phasegate.settings import Settings

app = typer.Typer(
    help="phasegate: phase gates for machine-learning projects.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
github_app = typer.Typer(help="GitHub set-up.", no_args_is_help=True)
db_app = typer.Typer(help="The phasegate database.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(github_app, name="github")
app.add_typer(db_app, name="db")
mlflow_app = typer.Typer(help="The MLflow model registry.", no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow")

EXIT = {"passed": 0, "blocked": 1, "awaiting_approval": 3, "error": 4}
BAD_INPUT = 2

PoliciesOption = Annotated[
    Path | None,
    typer.Option(
        "--policies", "-p", help="Policy directory [default: $PHASEGATE_POLICIES or ./policies]"
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(BAD_INPUT)


def _loaded(directory: Path | None) -> tuple[Path, LoadResult]:
    directory = directory or Settings().policies
    result = load_policies(directory)
    for error in result.errors:
        typer.echo(str(error))
    return directory, result


def _policies(directory: Path | None) -> PolicySet:
    path, result = _loaded(directory)
    if result.policies is None:
        raise _fail(
            f"{len(result.errors)} problem(s) in the policies at {path}; nothing was decided"
        )
    return result.policies


def _store() -> Store:
    store = Store(Settings().database_url)
    store.migrate()
    return store


@app.command()
def validate(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory")] = None,
) -> None:
    """Validate a policy directory: exit 0, or list every problem as path:line:col: message."""
    path, result = _loaded(directory)
    if result.policies is None:
        typer.echo(f"{len(result.errors)} problem(s) in {path}", err=True)
        raise typer.Exit(1)
    p = result.policies
    typer.echo(
        f"{path}: OK — {len(p.lifecycle.phases)} phases, {len(p.gates)} gates, "
        f"{len(p.projects)} project(s), {len(p.people)} people, {len(result.tests)} test file(s); "
        f"policy hash {p.policy_hash[:12]}"
    )


def _render(result: GateResult, output: str) -> str:
    if output == "json":
        return result.model_dump_json(indent=2)
    return to_markdown(result) if output == "markdown" else to_text(result)


@app.command()
def check(
    project: Annotated[str, typer.Argument(help="Project key, as in the policies")],
    evidence: Annotated[
        Path, typer.Option("--evidence", "-e", help="Evidence or scenario file (JSON/YAML)")
    ],
    gate: Annotated[
        str | None, typer.Option("--gate", "-g", help="Gate [default: the project's next]")
    ] = None,
    policies_dir: PoliciesOption = None,
    output: Annotated[
        Literal["text", "markdown", "json"], typer.Option("--format", "-f", help="Output format")
    ] = "text",
    now: Annotated[
        datetime | None, typer.Option(help="Evaluate as of this time (ISO 8601)")
    ] = None,
    record: Annotated[
        bool,
        typer.Option("--record", help="Record the decision in the store (and advance the project)"),
    ] = False,
) -> None:
    """Would PROJECT pass its next gate on this evidence, and if not, why?"""
    policies = _policies(policies_dir)
    when = (now.replace(tzinfo=now.tzinfo or UTC)) if now else None
    try:
        scenario = load_scenario(evidence)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if scenario.evidence.project.key != project:
        raise _fail(
            f"{evidence} is evidence about '{scenario.evidence.project.key}', not '{project}'"
        )
    store = _store() if record else None
    result, moved = _decide(policies, scenario, gate, when, store, f"scenario {evidence}")
    typer.echo(_render(result, output))
    if store is not None:
        typer.echo(moved, err=True)
    raise typer.Exit(EXIT[result.status] if result.blocking else 0)


def _decide(
    policies: PolicySet,
    scenario: Scenario,
    gate: str | None,
    now: datetime | None,
    store: Store | None,
    source: str,
) -> tuple[GateResult, str]:
    """Decide a scenario; with a store, record it there (see :func:`_record`)."""
    if store is not None:
        return _record(store, policies, scenario, gate, now, source)
    try:
        return decide(policies, scenario, gate_id=gate, now=now), ""
    except ScenarioError as exc:
        raise _fail(str(exc)) from None


def _unknown_project(policies: PolicySet, key: str) -> typer.Exit:
    known = ", ".join(sorted(policies.projects)) or "none"
    return _fail(f"unknown project '{key}' (projects in the policies: {known})")


def _record(
    store: Store,
    policies: PolicySet,
    scenario: Scenario,
    gate_id: str | None,
    now: datetime | None,
    source: str,
) -> tuple[GateResult, str]:
    """Decide as the store knows the project, and record the decision.

    The scenario's approvals and waivers are stored first (audited, each once however often
    the scenario is recorded) and the gate is evaluated on what the store then holds, so a
    recorded decision is explained by the store alone. Nothing is stored when one of them
    could not be: an unknown person, a waiver the policies do not allow.
    """
    key = scenario.evidence.project.key
    if key not in policies.projects:
        raise _unknown_project(policies, key)
    known = store.project(key)  # registered only once the scenario is found recordable
    phase = known.phase if known is not None else policies.lifecycle.initial_phase
    evidence = scenario.evidence.model_copy(
        update={"project": scenario.evidence.project.model_copy(update={"phase": phase})}
    )
    try:
        gate = gate_for(policies, evidence, gate_id or scenario.gate)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    problems = [
        f"approval by unknown person '{a.person}'"
        for a in scenario.approvals
        if policies.person(a.person) is None
    ] + [
        f"waiver of '{w.check}' by {w.person}: {why}"
        for w in scenario.waivers
        if (why := refusal(gate, key, w, policies))
    ]
    if problems:
        raise _fail("; ".join(problems) + "; nothing was recorded")
    store.ensure_project(key, phase, now or datetime.now(UTC))
    digest = gate_digest(evidence, gate.reads)
    for approval in scenario.approvals:
        store.add_approval(
            project=key,
            gate=gate.id,
            person=_person_id(policies, approval.person),
            decision=approval.decision,
            digest=approval.digest or digest,  # as in any scenario: given on its evidence
            reason=approval.reason,
            source=source,
            at=approval.at,
        )
    for waiver in scenario.waivers:
        store.add_waiver(
            project=key,
            gate=gate.id,
            check_id=waiver.check,
            person=_person_id(policies, waiver.person),
            reason=waiver.reason,
            at=waiver.at,
            expires_at=waiver.expires_at,
        )
    when = now or scenario.now or datetime.now(UTC)
    approvals, waivers = store.approvals(key, gate.id), store.waivers(key, gate.id)
    sent_back = last_sent_back(store.transitions(key))  # a regression voids older approvals
    result = evaluate(gate, evidence, approvals, waivers, when, policies, sent_back=sent_back)
    move = record(store, policies, result, phase, move=advance(policies.lifecycle, phase, result))
    if move is None:
        return result, f"recorded; {result.project} stays in {phase}"
    return result, f"{result.project}: {move.from_phase} → {move.to_phase} ({move.reason})"


def _person_id(policies: PolicySet, identity: str) -> str:
    person = policies.person(identity)
    assert person is not None  # checked before anything is stored
    return person.id


@app.command()
def waive(
    project: Annotated[str, typer.Argument(help="Project key, as in the policies")],
    gate: Annotated[str, typer.Option("--gate", "-g", help="The gate whose check is waived")],
    check_id: Annotated[str, typer.Option("--check", "-c", help="Id of the check (or group)")],
    by: Annotated[
        str, typer.Option("--by", help="Who waives it: person id, GitHub login, Slack id or email")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown with every decision")],
    duration: Annotated[
        str, typer.Option("--for", help="How long, e.g. 7d or 48h (at most the rule allows)")
    ],
    policies_dir: PoliciesOption = None,
) -> None:
    """Let a failing check pass for a while, as the gate's waiver rules allow, with a reason.

    Refused (exit 2, nothing stored) unless the person holds, in the project, a role a waiver
    rule of the gate gives for the check, the reason says something and the duration is within
    the rule's max_duration. A granted waiver is stored, written to the audit log, and the
    project is queued for re-evaluation.
    """
    policies = _policies(policies_dir)
    if project not in policies.projects:
        raise _unknown_project(policies, project)
    if gate not in policies.gates:
        raise _fail(f"unknown gate '{gate}' (known: {', '.join(sorted(policies.gates))})")
    try:
        lasts = parse_duration(duration)
    except ValueError as exc:
        raise _fail(f"--for: {exc}") from None
    now = datetime.now(UTC)
    waiver = Waiver(
        check=check_id, person=by, reason=reason.strip(), at=now, expires_at=now + lasts
    )
    why = refusal(policies.gates[gate], project, waiver, policies)
    if why is not None:
        raise _fail(f"waiver by {by} refused: {why}; nothing was stored")
    person = _person_id(policies, by)
    store = _store()
    store.ensure_project(project, policies.lifecycle.initial_phase, now)
    row, _ = store.add_waiver(
        project=project,
        gate=gate,
        check_id=check_id,
        person=person,
        reason=waiver.reason,
        at=now,
        expires_at=waiver.expires_at,
    )
    event, _ = store.add_inbox_event(
        source="phasegate",
        delivery_id=f"waiver:{row.id}",
        kind="waiver.granted",
        payload={"subject": {"project": project}, "gate": gate, "check": check_id},
        received_at=now,
    )
    typer.echo(
        f"waiver #{row.id}: {person} waives {gate} / {check_id} for {project} until "
        f"{waiver.expires_at:%Y-%m-%d %H:%M}Z ({format_duration(lasts)}): {waiver.reason}"
    )
    typer.echo(
        f"written to the audit log; {project} is queued for re-evaluation (inbox event "
        f"#{event.id}): the running engine applies the waiver on its next pass, at the latest "
        "at the next reconcile"
    )


@app.command("waivers")
def list_waivers(
    project: Annotated[str | None, typer.Argument(help="Only this project's waivers")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    policies_dir: PoliciesOption = None,
) -> None:
    """The waivers in force now: what is waived, by whom, why and until when, and any the
    policies in force would no longer honour (a role taken away, a rule changed)."""
    _, loaded = _loaded(policies_dir)
    now = datetime.now(UTC)
    listed = []
    for row in _store().waivers_in_force(now, project):
        waiver = Waiver(
            check=row.check_id,
            person=row.person,
            reason=row.reason,
            at=row.at,
            expires_at=row.expires_at,
        )
        problem = None
        if loaded.policies is not None:
            gate = loaded.policies.gates.get(row.gate)
            problem = (
                refusal(gate, row.project, waiver, loaded.policies)
                if gate
                else f"gate {row.gate} no longer exists"
            )
        listed.append(
            {
                "id": row.id,
                "project": row.project,
                "gate": row.gate,
                **waiver.model_dump(mode="json"),
                "not_honoured": problem,
            }
        )
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        typer.echo("no waivers in force" + (f" for {project}" if project else ""))
    for entry in listed:
        until = datetime.fromisoformat(entry["expires_at"])
        days = (until - now).days
        left = f"{days}d left" if days else "less than a day left"
        typer.echo(
            f"#{entry['id']} {entry['project']} · {entry['gate']} · {entry['check']}: waived by "
            f"{entry['person']} until {until:%Y-%m-%d %H:%M}Z ({left})"
        )
        typer.echo(f"    reason: {entry['reason']}")
        if entry["not_honoured"]:
            typer.echo(f"    not honoured by the policies in force: {entry['not_honoured']}")


@app.command("test")
def test_policies(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show passing cases too")
    ] = False,
) -> None:
    """Run the policy tests (kind: PolicyTest) found in the policy directory."""
    path, loaded = _loaded(directory)
    if loaded.policies is None:
        raise _fail(f"{len(loaded.errors)} problem(s) in the policies at {path}")
    results = run_tests(loaded.policies, loaded.tests)
    for case in results:
        if verbose or not case.ok:
            typer.echo(f"{'PASS' if case.ok else 'FAIL'} {case.file} [{case.gate}] {case.name}")
        for problem in case.problems:
            typer.echo(f"     {problem}")
    failed = sum(not c.ok for c in results)
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


@app.command()
def schema(
    monitoring_config: Annotated[
        bool,
        typer.Option(
            "--monitoring-config", help="The schema of a project's monitoring config instead"
        ),
    ] = False,
) -> None:
    """Print the JSON Schema of policy documents (for editor autocompletion)."""
    if monitoring_config:
        from gates.monitoring import json_schema

        typer.echo(json.dumps(json_schema(), indent=2))
        return
    typer.echo(json.dumps(policy_schema(), indent=2))


def policy_schema() -> dict:
    documents = Annotated[Union[tuple(DOCUMENT_KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "phasegate policy document",
        **TypeAdapter(documents).json_schema(),
    }


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    policies_dir: PoliciesOption = None,
) -> None:
    """Projects, their phase, and the last decision of each gate (and the pull request it
    was made on, for a gate that checks PRs)."""
    _, loaded = _loaded(policies_dir)
    store = _store()
    rows = {row.key: row for row in store.projects()}
    keys = sorted(set(rows) | set(loaded.policies.projects if loaded.policies else {}))
    report = []
    for key in keys:
        row = rows.get(key)
        gates = store.last_evaluations(key) if row else {}
        moves = store.transitions(key) if row else []
        report.append(
            {
                "project": key,
                "phase": row.phase if row else None,
                "last_move": {
                    "kind": moves[-1].kind,
                    "from": moves[-1].from_phase,
                    "to": moves[-1].to_phase,
                    "at": moves[-1].at.isoformat(),
                    "reason": moves[-1].reason,
                }
                if moves
                else None,
                "gates": {
                    g: {
                        "status": e.status,
                        "at": e.at.isoformat(),
                        "pull_request": e.pull_request,
                        "summary": e.result.get("summary", ""),
                        "rejections": [
                            {"person": r["person"], "reason": r["reason"]}
                            for r in e.result.get("rejections", [])
                        ],
                    }
                    for g, e in sorted(gates.items())
                },
            }
        )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    if not report:
        typer.echo("no projects yet: add one under policies/ (kind: Project)")
    for entry in report:
        phase = entry["phase"] or "not started (no decision recorded yet)"
        typer.echo(f"{entry['project']}: {phase}")
        if (move := entry["last_move"]) and move["kind"] == "regress":
            typer.echo(f"  sent back {move['at'][:16]}Z: {move['reason']}")
        for gate, last in entry["gates"].items():
            on = f"  on PR #{last['pull_request']}" if last["pull_request"] is not None else ""
            typer.echo(f"  {gate:<28} {last['status']:<18} {last['at'][:16]}Z{on}")
            for rejection in last["rejections"]:
                typer.echo(f"    rejected by {rejection['person']}: {rejection['reason']}")


@app.command()
def demo(
    examples: Annotated[Path, typer.Option(help="Scenario files to play")] = Path(
        "examples/churn-model"
    ),
    policies_dir: PoliciesOption = None,
) -> None:
    """Walk the example project through the lifecycle, gate by gate, on a fresh SQLite store.

    Each gate's blocked, awaiting and passed scenarios are decided and recorded in turn,
    so the project advances only when a gate really passes.
    """
    policies = _policies(policies_dir)
    database = Path(".phasegate") / "demo.db"
    database.parent.mkdir(exist_ok=True)
    database.unlink(missing_ok=True)
    store = Store(f"sqlite:///{database}")
    store.migrate()
    for transition in policies.lifecycle.transitions:
        for stage in ("blocked", "awaiting", "passed"):
            path = examples / f"{transition.gate}.{stage}.json"
            if not path.exists():
                continue
            try:
                scenario = load_scenario(path)
            except ScenarioError as exc:
                raise _fail(str(exc)) from None
            result, moved = _decide(
                policies, scenario, transition.gate, None, store, f"scenario {path}"
            )
            typer.echo(f"{path}\n  {result.gate}: {result.summary}")
            for check in result.failing():
                typer.echo(f"    ✗ {check.id}: {check.found}")
                if check.hint:
                    typer.echo(f"      fix: {check.hint}")
            typer.echo(f"  → {moved}\n")
    row = store.project(scenario.evidence.project.key)
    typer.echo(f"{row.key} is now in phase '{row.phase}'; store: {database}")
    typer.echo(f"next: phasegate check {row.key} --evidence {examples}/model-packaged.blocked.json")
    typer.echo(store.verify_audit().message)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Receiver address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Receiver port")] = 8787,
    prefect_port: Annotated[
        int, typer.Option(help="Port of the local Prefect server, if started")
    ] = 4200,
) -> None:
    """Run the receiver and the flows (and a local Prefect server unless PREFECT_API_URL is set)."""
    from gates.active import NoValidPolicies
    from phasegate.serve import ServeError, serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(Settings(), host, port, prefect_port)
    except (NoValidPolicies, ServeError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def receive(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8787,
    workers: Annotated[int, typer.Option(help="Receiver processes")] = 1,
) -> None:
    """Run only the webhook receiver (flows run elsewhere, on Prefect workers)."""
    import uvicorn

    uvicorn.run(
        "integrations.receiver:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command()
def events(
    status: Annotated[
        Literal["pending", "processing", "done", "failed", "ignored"] | None,
        typer.Option(help="Only events with this status"),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only events from this sender")] = None,
    limit: Annotated[int, typer.Option(help="The latest this many, oldest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """What arrived and what became of it: the first place to look when a webhook did nothing."""
    store = _store()
    rows = store.inbox_events(status=status, source=source, limit=limit, newest=True)
    listed = [
        {
            "id": r.id,
            "received_at": r.received_at.isoformat(),
            "source": r.source,
            "kind": r.kind,
            "delivery_id": r.delivery_id,
            "status": r.status,
            "attempts": r.attempts,
            "reason": r.error,
        }
        for r in rows
    ]
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(store.inbox_counts().items())) or "empty"
    typer.echo(f"inbox: {counts}")
    for e in listed:
        line = f"#{e['id']:<5} {e['received_at'][:19]}Z  {e['source']:<10} {e['kind']:<32} {e['status']}"
        typer.echo(line + (f" — {e['reason']}" if e["reason"] else ""))


@app.command()
def outbox(
    status: Annotated[
        Literal["pending", "processing", "done", "failed"] | None,
        typer.Option(help="Only side effects with this status"),
    ] = None,
    limit: Annotated[int, typer.Option(help="The latest this many, oldest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Side effects (check runs, Slack messages, labels) and what became of them: where a
    message that never arrived says why (`--status failed`)."""
    rows = _store().outbox_rows(status, limit, newest=True)
    listed = [
        {
            "id": r.id,
            "created_at": r.created_at.isoformat(),
            "kind": r.kind,
            "key": r.idempotency_key,
            "status": r.status,
            "attempts": r.attempts,
            "error": r.last_error,
        }
        for r in rows
    ]
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        typer.echo(f"no {status or ''} side effects".replace("  ", " "))
    for e in listed:
        line = (
            f"#{e['id']:<5} {e['created_at'][:19]}Z  {e['kind']:<16} {e['status']:<8} "
            f"{e['attempts']} attempt(s)  {e['key']}"
        )
        typer.echo(line + (f"\n       error: {e['error']}" if e["error"] else ""))


@mlflow_app.command("connect")
def mlflow_connect(
    url: Annotated[
        str,
        typer.Option(
            help="The receiver's base URL as MLflow reaches it, e.g. https://phasegate.example"
        ),
    ],
    test: Annotated[
        bool, typer.Option(help="Then have MLflow deliver a test event to the receiver")
    ] = False,
) -> None:
    """Register (or update) the webhook that sends registry events to phasegate.

    Uses MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD) and signs
    with PHASEGATE_MLFLOW_WEBHOOK_SECRET, the secret the receiver verifies. Needs MLflow >= 3.3;
    without webhooks the scheduled reconcile still picks up new versions and aliases.
    """
    from integrations.mlflow.client import MlflowClient, MlflowConfigError, MlflowError
    from integrations.mlflow.webhooks import connect

    secret = Settings().mlflow_webhook_secret
    if secret is None:
        raise _fail(
            "set PHASEGATE_MLFLOW_WEBHOOK_SECRET: MLflow signs with it, the receiver checks it"
        )
    try:
        client = MlflowClient.from_environment()
        done = connect(client, url, secret.get_secret_value())
        typer.echo(f"{done.action} webhook {done.webhook['webhook_id']} on {client.base}:")
        typer.echo(
            f"  {done.webhook['url']} ← "
            + ", ".join(f"{e['entity']}.{e['action']}".lower() for e in done.webhook["events"])
        )
        if test:
            result = client.test_webhook(done.webhook["webhook_id"])
            answer = f"{result.get('response_status')} {result.get('response_body', '')}".strip()
            if not result.get("success"):
                raise _fail(
                    f"MLflow could not deliver to {done.webhook['url']}: {result.get('error_message') or answer}"
                )
            typer.echo(f"test delivery answered {answer}")
    except (MlflowConfigError, MlflowError) as exc:
        raise _fail(str(exc)) from None


@github_app.command("templates")
def github_templates(
    repo: Annotated[str, typer.Option(help="owner/name of the team's repository")],
    branch: Annotated[str | None, typer.Option(help="Branch to commit to [default branch]")] = None,
) -> None:
    """Install the DSLP issue templates and labels the gates understand into a repository."""
    from flows.runtime import github_access
    from integrations.actions import Permanent, RetryLater
    from integrations.github.templates import install

    access = github_access(Settings())
    if access is None:
        raise _fail("no GitHub credentials: set PHASEGATE_GITHUB_TOKEN or a GitHub App")
    try:
        for line in install(access, repo, branch):
            typer.echo(line)
    except (Permanent, RetryLater) as exc:
        raise _fail(str(exc)) from None


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain: exit 1 and name the first altered row if broken."""
    report = _store().verify_audit()
    typer.echo(report.message)
    if not report.ok:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (done automatically by every command that needs the store)."""
    _store()
    typer.echo("database is at the newest schema")


if __name__ == "__main__":
    app()
