"""The engine's periodic chores: settle what dead workers left (their tools, temp folders and
django-tasks rows: engine/workers.py), rescue tasks whose worker died, enforce timeouts, delete old jobs.

They run as one self-re-enqueuing background task (django-tasks has no scheduler), seeded by the
API whenever the chain looks dead, and also by `manage.py engine_maintenance` for cron users.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from engine import runner, services, workers
from engine.models import Chore, Job, Task

logger = logging.getLogger(__name__)

CHORE = "maintenance"
DEFAULT_INTERVAL = 60
DEFAULT_STUCK_AFTER = 300  # seconds without a heartbeat before a processing task counts as lost
DEFAULT_RETENTION = 24 * 3600
WORKER_LOST = (
    "WORKER_LOST",
    "The worker running this task stopped twice; the task was given up. Retry it, or split the input.",
)


def _seconds(name: str, default: int) -> float:
    return float(getattr(settings, name, default))


def recover_stuck_tasks() -> int:
    """Processing tasks with a stale heartbeat go back to the queue once, then fail."""
    cutoff = timezone.now() - timedelta(seconds=_seconds("ENGINE_STUCK_AFTER", DEFAULT_STUCK_AFTER))
    stale = Task.objects.filter(status=Task.Status.PROCESSING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    handled = 0
    for task in stale:
        handled += 1
        if task.recoveries < 1:
            requeued = Task.objects.filter(
                pk=task.pk, status=Task.Status.PROCESSING, recoveries=task.recoveries
            ).update(status=Task.Status.WAITING, recoveries=task.recoveries + 1, percent=0, heartbeat_at=None)
            if requeued:
                logger.warning("Engine task %s lost its worker; queued again.", task.pk)
                with transaction.atomic():
                    runner.schedule([task.pk])
        else:
            logger.error("Engine task %s lost its worker twice; failing it.", task.pk)
            runner.task_fail(
                str(task.pk),
                code=WORKER_LOST[0],
                message=WORKER_LOST[1],
                from_statuses=[Task.Status.PROCESSING],
            )
    return handled


def enforce_timeouts() -> int:
    """Processing tasks past their timeout fail now, even while their tool still runs."""
    now = timezone.now()
    failed = 0
    for task in Task.objects.filter(status=Task.Status.PROCESSING, started_at__isnull=False):
        if task.started_at + timedelta(seconds=runner.task_timeout(task)) < now:
            failed += runner.task_fail(
                str(task.pk),
                code="TIMEOUT",
                message=runner.timed_out_message(task),
                from_statuses=[Task.Status.PROCESSING],
            )
    return failed


def requeue_forgotten_tasks() -> int:
    """Waiting tasks that could run but sat unqueued (a queue lost on restart) get queued again;
    running one twice is harmless, the claim lets only one through. Those whose input failed
    without them noticing fail too, as they would have (INPUT_TASK_FAILED)."""
    cutoff = timezone.now() - timedelta(seconds=_seconds("ENGINE_STUCK_AFTER", DEFAULT_STUCK_AFTER))
    settled = 0
    for task in Task.objects.filter(status=Task.Status.WAITING, created_at__lt=cutoff).exclude(
        operation__in=runner.PASSIVE_OPERATIONS
    ):
        state = runner.inputs_state(task)
        if state == "ready":
            with transaction.atomic():
                runner.schedule([task.pk])
            settled += 1
        elif state == "failed":
            settled += runner.task_fail(
                str(task.pk), code=runner.INPUT_TASK_FAILED[0], message=runner.INPUT_TASK_FAILED[1],
                from_statuses=[Task.Status.WAITING],
            )
    return settled


def delete_expired() -> int:
    """Jobs and standalone tasks (and files) ENGINE_RETENTION after they ended, and uploads
    nobody sent within that time."""
    cutoff = timezone.now() - timedelta(seconds=_seconds("ENGINE_RETENTION", DEFAULT_RETENTION))
    deleted = 0
    for job in Job.objects.filter(
        Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, status=Job.Status.WAITING, created_at__lt=cutoff)
    ):
        services.job_delete(job=job)
        deleted += 1
    for task in Task.objects.filter(job__isnull=True).filter(
        Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, status=Task.Status.WAITING, created_at__lt=cutoff)
    ):
        services.task_delete(task=task)
        deleted += 1
    return deleted


def run_chores() -> dict[str, int]:
    return {
        **workers.recover(),
        "recovered": recover_stuck_tasks(),
        "timed_out": enforce_timeouts(),
        "requeued": requeue_forgotten_tasks(),
        "deleted": delete_expired(),
    }


def interval() -> timedelta:
    return timedelta(seconds=_seconds("ENGINE_MAINTENANCE_INTERVAL", DEFAULT_INTERVAL))


def claim_turn() -> bool:
    """Book the next run; False when another chain already ran this turn (this one then stops)."""
    return Chore.claim_turn(CHORE, interval())


def ensure_scheduled() -> None:
    """Seed the chain when it looks dead (never started, or overdue by a whole interval)."""
    from engine.tasks import maintenance

    now = timezone.now()
    _, created = Chore.objects.get_or_create(name=CHORE, defaults={"next_run_at": now})
    # Booking "due now" first means concurrent requests seed it once, not once each.
    if created or Chore.objects.filter(name=CHORE, next_run_at__lt=now - interval()).update(next_run_at=now):
        transaction.on_commit(maintenance.enqueue)
