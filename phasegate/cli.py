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
from gates.lifecycle import advance
from gates.loader import DOCUMENT_KINDS, LoadResult, load_policies
from gates.policy import PolicySet, Scenario
from gates.policytest import run_tests
from gates.progress import last_sent_back
from gates.render import to_markdown, to_text
from gates.result import GateResult
from gates.scenario import ScenarioError, decide, gate_for, load_scenario
from gates.store import Store
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
    result, moved = _decide(policies, scenario, gate, when, store)
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
) -> tuple[GateResult, str]:
    """Decide a scenario; with a store, as the store knows the project, and record it."""
    sent_back = None
    if store is not None:
        scenario = _with_store(store, policies, scenario, gate, now)
        sent_back = last_sent_back(store.transitions(scenario.evidence.project.key))
    try:
        result = decide(policies, scenario, gate_id=gate, now=now, sent_back=sent_back)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if store is None:
        return result, ""
    phase = scenario.evidence.project.phase or policies.lifecycle.initial_phase
    move = record(store, policies, result, phase, move=advance(policies.lifecycle, phase, result))
    if move is None:
        return result, f"recorded; {result.project} stays in {phase}"
    return result, f"{result.project}: {move.from_phase} → {move.to_phase} ({move.reason})"


def _with_store(
    store: Store, policies: PolicySet, scenario: Scenario, gate: str | None, now: datetime | None
) -> Scenario:
    """The scenario as the store knows the project: its real phase, approvals and waivers."""
    key = scenario.evidence.project.key
    if key not in policies.projects:
        raise _fail(
            f"unknown project '{key}' (projects in the policies: {', '.join(sorted(policies.projects))})"
        )
    row = store.ensure_project(key, policies.lifecycle.initial_phase, now or datetime.now(UTC))
    evidence = scenario.evidence.model_copy(
        update={"project": scenario.evidence.project.model_copy(update={"phase": row.phase})}
    )
    try:
        gate_id = gate_for(policies, evidence, gate or scenario.gate).id
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    return scenario.model_copy(
        update={
            "evidence": evidence,
            "approvals": [*store.approvals(key, gate_id), *scenario.approvals],
            "waivers": [*store.waivers(key, gate_id), *scenario.waivers],
        }
    )


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
    """Projects, their phase, and the last decision of each gate."""
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
                        "summary": e.result.get("summary", ""),
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
            typer.echo(f"  {gate:<28} {last['status']:<18} {last['at'][:16]}Z")


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
            result, moved = _decide(policies, scenario, transition.gate, None, store)
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
