"""Retention: how long ccweb keeps the converted files it stored, and the sweep that deletes them.

A job's stored files (our copies and thumbnails) go CONVERSIONS_RETENTION_DAYS after the job ended,
or after the days the team it is shared with set for itself (Team.retention_days); 0 keeps them.
The job itself stays, with its history, saying when its files went. Pages announce the date
(retention_notices) and warn CONVERSIONS_RETENTION_WARNING_DAYS ahead.

The sweep also trims the webhook log and the activity log. It runs as one self-re-enqueuing
background task (conversions.tasks.retention_sweep; django-tasks has no scheduler), seeded when
outputs are stored or a team changes its retention; one row (engine's Chore, a generic "next due
at") lets a single chain live however many seed it.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from conversions import activity
from conversions.models import ActivityEvent, ConversionJob, OutputFile, Team, WebhookDelivery
from engine.models import Chore

logger = logging.getLogger(__name__)

CHORE = "conversions.retention"
# Longest a team may keep files, so a typo cannot overflow a date (100 years).
MAX_DAYS = 36500


class RetentionError(Exception):
    """Something the user must be told, as a sentence saying what to do."""


@dataclass(frozen=True)
class Notice:
    """What a page says of a job's stored files: when they go (or went), and whether that is soon."""

    deleted_on: datetime
    done: bool
    soon: bool
    days: int
    team: str


def days_for(team_days: int | None) -> int:
    """The retention of a job shared with a team of `team_days` (None: not shared, or the team
    follows the site's default)."""
    return settings.CONVERSIONS_RETENTION_DAYS if team_days is None else team_days


def _notice(
    *, finished_at: datetime | None, team_days: int | None, team_name: str, expired_at: datetime | None,
    now: datetime,
) -> Notice | None:
    days = days_for(team_days)
    team = team_name if team_days is not None else ""
    if expired_at is not None:
        return Notice(deleted_on=expired_at, done=True, soon=False, days=days, team=team)
    if finished_at is None or not days:
        return None
    deleted_on = finished_at + timedelta(days=days)
    warning = timedelta(days=settings.CONVERSIONS_RETENTION_WARNING_DAYS)
    # Past its date, the sweep (within the hour) has not come yet: still "deleted on", and soon.
    return Notice(deleted_on=deleted_on, done=False, soon=deleted_on - now <= warning, days=days, team=team)


def retention_notices(job_ids: list[int]) -> dict[int, Notice]:
    """The notice of each finished job among `job_ids` whose files are (or were) under retention,
    in one query however many jobs a page shows."""
    if not job_ids:
        return {}
    # When the sweep emptied the job, as its log says (a subquery: a job's log may hold thousands of downloads).
    expired = ActivityEvent.objects.filter(job=OuterRef("pk"), verb=activity.EXPIRED).order_by("-created_at")
    rows = (
        ConversionJob.objects.filter(pk__in=job_ids, status=ConversionJob.Status.FINISHED)
        .annotate(expired_at=Subquery(expired.values("created_at")[:1]))
        .values_list("pk", "finished_at", "team__retention_days", "team__name", "expired_at")
    )
    now = timezone.now()
    notices = {}
    for pk, finished_at, team_days, team_name, expired_at in rows:
        notice = _notice(
            finished_at=finished_at, team_days=team_days, team_name=team_name or "", expired_at=expired_at, now=now
        )
        if notice is not None:
            notices[pk] = notice
    return notices


def team_retention_set(*, team: Team, days: int | None, by: AbstractBaseUser) -> Team:
    """The team's owners and admins choose how long its shared files are kept (None: the site's
    default). Files already past the new date go at the next sweep, which is made to come soon."""
    if days is not None and not 0 <= days <= MAX_DAYS:
        raise RetentionError(f"Choose a number of days from 0 to {MAX_DAYS}, or leave it empty for the default.")
    if team.retention_days == days:
        return team
    with transaction.atomic():
        before = team.retention_days
        team.retention_days = days
        team.save(update_fields=["retention_days"])
        activity.record(
            actor=by, verb=activity.RETENTION_CHANGED, target=team, detail={"from": before, "to": days}
        )
        ensure_scheduled(soon=True)
    return team


# --- The sweep ---------------------------------------------------------------------------------


def _due(now: datetime) -> QuerySet[ConversionJob]:
    """Finished jobs past their retention that still have something stored (or an API link)."""
    default = settings.CONVERSIONS_RETENTION_DAYS
    past: list[Q] = []
    for days in set(Team.objects.exclude(retention_days=None).values_list("retention_days", flat=True)):
        if days:
            past.append(Q(team__retention_days=days, finished_at__lt=now - timedelta(days=days)))
    if default:
        follows_default = Q(team__isnull=True) | Q(team__retention_days__isnull=True)
        past.append(follows_default & Q(finished_at__lt=now - timedelta(days=default)))
    if not past:
        return ConversionJob.objects.none()
    kept = OutputFile.objects.filter(job=OuterRef("pk")).exclude(file="", thumbnail="", remote_url="")
    due = Q()
    for condition in past:
        due |= condition
    return ConversionJob.objects.filter(due, Exists(kept), status=ConversionJob.Status.FINISHED).select_related("team")


def _expire(job: ConversionJob, now: datetime) -> int:
    """Delete one job's stored files; its rows stay, emptied, and its log says when. Storage first:
    if it fails, nothing here changed and the next sweep tries again."""
    outputs = list(job.files.all())
    for output in outputs:
        for stored in (output.file, output.thumbnail):
            if stored:
                stored.delete(save=False)
    with transaction.atomic():
        OutputFile.objects.filter(job=job).update(file="", thumbnail="", remote_url="")
        # A dashboard row is re-rendered when its job changes: its downloads are gone.
        ConversionJob.objects.filter(pk=job.pk).update(updated_at=now)
        activity.record(
            actor=None,
            verb=activity.EXPIRED,
            target=job,
            detail={"files": len(outputs), "days": days_for(job.team.retention_days if job.team else None)},
        )
    return len(outputs)


def expire_outputs(now: datetime | None = None) -> int:
    """Delete the stored files of every job past its retention; how many jobs were emptied."""
    now = now or timezone.now()
    expired = 0
    for job in _due(now).iterator(chunk_size=200):
        try:
            _expire(job, now)
            expired += 1
        except OSError as error:
            # Storage trouble (a disk, S3): the job keeps its files until the next sweep.
            logger.warning("job %s: its stored files could not be deleted yet: %r", job.uuid, error)
    return expired


def prune_logs(now: datetime | None = None) -> dict[str, int]:
    """The webhook log drops rejected deliveries and the bodies of accepted ones after
    CONVERSIONS_WEBHOOK_LOG_DAYS (the hash stays: it still recognises a duplicate); the activity
    log drops lines older than CONVERSIONS_ACTIVITY_LOG_DAYS (0: never)."""
    now = now or timezone.now()
    webhook_cutoff = now - timedelta(days=settings.CONVERSIONS_WEBHOOK_LOG_DAYS)
    old = WebhookDelivery.objects.filter(received_at__lt=webhook_cutoff)
    rejected, _ = old.exclude(rejected_because="").delete()
    emptied = old.filter(rejected_because="", body__isnull=False).update(body=None)
    pruned = 0
    if settings.CONVERSIONS_ACTIVITY_LOG_DAYS:
        cutoff = now - timedelta(days=settings.CONVERSIONS_ACTIVITY_LOG_DAYS)
        pruned, _ = ActivityEvent.objects.filter(created_at__lt=cutoff).delete()
    return {"rejected_deliveries_deleted": rejected, "delivery_bodies_dropped": emptied, "activity_pruned": pruned}


def sweep() -> dict[str, int]:
    now = timezone.now()
    return {"jobs_expired": expire_outputs(now), **prune_logs(now)}


# --- The chain of sweeps -----------------------------------------------------------------------


def interval() -> timedelta:
    return timedelta(seconds=settings.CONVERSIONS_RETENTION_INTERVAL)


def claim_turn() -> bool:
    """Book the next sweep; False when another chain already swept this turn (this one stops)."""
    return Chore.claim_turn(CHORE, interval())


def ensure_scheduled(*, soon: bool = False) -> None:
    """Seed the chain when it looks dead (never started, or overdue by a whole interval); with
    `soon`, also bring a live chain's next sweep forward to now (a team just shortened its
    retention)."""
    from conversions.tasks import retention_sweep

    now = timezone.now()
    _, created = Chore.objects.get_or_create(name=CHORE, defaults={"next_run_at": now})
    # Booking "due now" first means concurrent callers seed it once, not once each.
    stale = Q(next_run_at__lt=now - interval())
    if soon:
        stale |= Q(next_run_at__gt=now)
    if created or Chore.objects.filter(stale, name=CHORE).update(next_run_at=now):
        transaction.on_commit(retention_sweep.enqueue)
