"""Background work of the app (django-tasks). Tasks take ids and are safe to run twice."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import task

from conversions import retention, services
from conversions.cloudconvert.errors import ApiError
from conversions.models import ConversionJob, OutputFile

logger = logging.getLogger(__name__)

# Stop polling a job nobody uploaded a file to after this long (the API drops it after 24 h).
POLL_GIVE_UP_AFTER = timedelta(hours=24)


def poll_delay(attempt: int) -> float:
    """Exponential backoff from 2 s, capped by CONVERSIONS_POLL_MAX_INTERVAL."""
    return float(min(2 ** (attempt + 1), settings.CONVERSIONS_POLL_MAX_INTERVAL))


@task()
def poll_job(job_id: int, attempt: int) -> str:
    """Finish jobs when webhooks cannot reach us: ask the API, apply, come back later.

    The next poll is queued before this one does its work, so a worker killed in the middle
    of it does not end the chain; a poll that finds the job ended simply stops. A poll due
    before the time the API asked for (Retry-After, kept in job.poll_after) moves itself there."""
    job = ConversionJob.objects.filter(pk=job_id).first()
    if job is None or not job.is_running or not job.remote_job_id:
        return "done"
    now = timezone.now()
    if now - job.created_at > POLL_GIVE_UP_AFTER:
        return "gave up"
    if job.poll_after and job.poll_after > now:
        poll_job.using(run_after=job.poll_after).enqueue(job_id, attempt)
        return "later"
    poll_job.using(run_after=now + timedelta(seconds=poll_delay(attempt))).enqueue(job_id, attempt + 1)
    try:
        job = services.job_refresh(job=job)
    except ApiError as error:
        # Retryable or not (a wrong key an admin will fix), the next poll tries again.
        logger.log(logging.INFO if error.retryable else logging.ERROR, "job %s: poll failed: %r", job.uuid, error)
    return job.status


@task()
def store_outputs(job_id: int) -> int:
    """Copy a finished job's files into our storage, so downloads outlive the API's 24 h URLs."""
    stored = 0
    for output in OutputFile.objects.filter(job_id=job_id, file=""):
        try:
            stored += services.output_store(output=output)
        except ApiError as error:
            logger.warning("file %s: could not be copied yet (%r); the API URL stays in use", output.uuid, error)
    if stored:
        # What is stored is deleted some day: make sure the sweep that does it is running.
        retention.ensure_scheduled()
    return stored


@task()
def notify_owner(job_id: int) -> bool:
    """E-mail the owner that a job ended, if they asked for it (once)."""
    return services.job_notify_owner(job_id=job_id)


@task()
def retention_sweep() -> dict[str, int]:
    """Delete stored files past their retention and trim the logs; enqueues its own next run."""
    if not retention.claim_turn():
        return {}  # another chain swept this turn: let only one live
    try:
        return retention.sweep()
    finally:
        retention_sweep.using(run_after=timezone.now() + retention.interval()).enqueue()
