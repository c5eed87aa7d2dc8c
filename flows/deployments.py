"""The deployments ``phasegate serve`` runs, with their triggers and schedules.

``prefect.yaml`` declares the same three for ``prefect deploy --all`` on a Prefect server
with a process work pool; a test keeps the two in step.
"""

from __future__ import annotations

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.reconcile import reconcile
from integrations.nudge import INBOX_EVENT, OUTBOX_EVENT

RECONCILE_EVERY_S = 300
OUTBOX_RETRY_EVERY_S = 60


def _one_at_a_time() -> ConcurrencyLimitConfig:
    """Runs queue rather than overlap: a run that starts while another drains finds the rest."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def deployments() -> list[RunnerDeployment]:
    return [
        process_inbox.to_deployment(
            name="process-inbox",
            triggers=[DeploymentEventTrigger(name="inbox received", expect={INBOX_EVENT})],
            concurrency_limit=_one_at_a_time(),
            description="Drain the inbox and decide the projects its events concern.",
        ),
        deliver_outbox.to_deployment(
            name="deliver-outbox",
            triggers=[DeploymentEventTrigger(name="outbox pending", expect={OUTBOX_EVENT})],
            interval=OUTBOX_RETRY_EVERY_S,
            concurrency_limit=_one_at_a_time(),
            description="Perform queued side effects (check runs, messages, decision log).",
        ),
        reconcile.to_deployment(
            name="reconcile",
            interval=RECONCILE_EVERY_S,
            concurrency_limit=_one_at_a_time(),
            description="Re-drive failed or lost events and re-evaluate every project.",
        ),
    ]
