"""Background work of the engine (queue "engine"): tasks take ids and are safe to run twice."""

from __future__ import annotations

from django.utils import timezone
from django_tasks import task

from engine import maintenance as chores
from engine import runner, webhooks


@task(queue_name="engine")
def run_task(task_id: str) -> None:
    """Run one engine task (an import, a conversion, an export) in the worker."""
    runner.execute(task_id)


@task(queue_name="engine")
def deliver_webhook(url: str, body: str, webhook_id: str | None = None, attempt: int = 0) -> None:
    """POST one signed webhook; re-enqueues itself with a delay when the receiver is down."""
    webhooks.deliver(url=url, body=body, webhook_id=webhook_id, attempt=attempt)


@task(queue_name="engine")
def maintenance() -> None:
    """The periodic chores; enqueues its own next run (django-tasks has no scheduler)."""
    if not chores.claim_turn():
        return  # another chain ran this turn: let only one live
    try:
        chores.run_chores()
    finally:
        maintenance.using(run_after=timezone.now() + chores.interval()).enqueue()
