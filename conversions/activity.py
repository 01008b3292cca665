"""The activity log: who shared, downloaded or deleted what, who joined or left a team, what staff
did in the admin. One writer, `record`, called by the services that do these things; readers for
the team page (owners and admins), a user's own jobs, and the admin (staff, everything).

An event names its target as it was then (a deleted job keeps its line) and, where it can, links
the job, its owner and the team, so each reader finds it with one indexed query."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet

from conversions.models import (
    ActivityEvent,
    ConversionJob,
    Membership,
    OutputFile,
    ShareLink,
    Team,
    TeamInvitation,
)

Verb = ActivityEvent.Verb

SHARED = Verb.SHARED
UNSHARED = Verb.UNSHARED
DOWNLOADED = Verb.DOWNLOADED
DELETED = Verb.DELETED
MEMBER_INVITED = Verb.MEMBER_INVITED
MEMBER_JOINED = Verb.MEMBER_JOINED
MEMBER_DECLINED = Verb.MEMBER_DECLINED
MEMBER_LEFT = Verb.MEMBER_LEFT
MEMBER_REMOVED = Verb.MEMBER_REMOVED
ROLE_CHANGED = Verb.ROLE_CHANGED
TEAM_CREATED = Verb.TEAM_CREATED
TEAM_DELETED = Verb.TEAM_DELETED
LINK_CREATED = Verb.LINK_CREATED
LINK_REVOKED = Verb.LINK_REVOKED
LINK_DOWNLOADED = Verb.LINK_DOWNLOADED
RETENTION_CHANGED = Verb.RETENTION_CHANGED
EXPIRED = Verb.EXPIRED
ADMIN_ACTION = Verb.ADMIN_ACTION

# Who did it, when nobody signed in did and the caller names no one else (the retention sweep).
SYSTEM = "system"


def _job_of(target: object) -> ConversionJob | None:
    if isinstance(target, ConversionJob):
        return target
    if isinstance(target, (OutputFile, ShareLink)):
        return target.job
    return None


def _team_of(target: object, job: ConversionJob | None) -> Team | int | None:
    if isinstance(target, Team):
        return target
    if isinstance(target, (Membership, TeamInvitation)):
        return target.team_id
    if job is not None:
        return job.team_id
    return None


def _label_of(target: object) -> str:
    if isinstance(target, ConversionJob):
        return target.input_filename or f"job {target.uuid}"
    if isinstance(target, OutputFile):
        return target.filename
    if isinstance(target, ShareLink):
        return target.output.filename if target.output_id else f"all files of {target.job.input_filename or 'a job'}"
    if isinstance(target, Membership):
        return str(target.user)
    if isinstance(target, TeamInvitation):
        return target.email
    return str(target)


def record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    verb: str,
    target: Model | str,
    team: Team | int | None = None,
    detail: dict[str, Any] | None = None,
    actor_label: str = "",
) -> ActivityEvent:
    """Log that `actor` did `verb` to `target` (a job, file, share link, membership, invitation,
    team, or a plain description). The team defaults to the target's: the job's team when the job
    is shared, the membership's or invitation's team. `actor` None or anonymous is the system or a
    share-link holder; `actor_label` then says which. Call it inside the transaction of the change
    it records, so the two are kept or lost together. `team` is a Team or its id."""
    signed_in = actor is not None and actor.is_authenticated
    job = _job_of(target)
    team_ref = team if team is not None else _team_of(target, job)
    event = ActivityEvent(
        actor=actor if signed_in else None,
        actor_label=(actor.get_username() if signed_in else actor_label or SYSTEM)[:150],
        verb=Verb(verb),
        owner_id=job.user_id if job is not None else None,
        # A job deleted by this very event has no row to point to any more; its label stays.
        job=job if job is not None and job.pk is not None else None,
        target_type=target._meta.model_name if isinstance(target, Model) else "",
        target_label=_label_of(target)[:255],
        detail=detail or {},
    )
    if isinstance(team_ref, Team):
        event.team = team_ref
    else:
        event.team_id = team_ref
    event.save()
    return event


def team_activity(team: Team) -> QuerySet[ActivityEvent]:
    """The team's log, newest first: for its owners and admins."""
    return ActivityEvent.objects.filter(team=team).select_related("team")


def own_activity(user: AbstractBaseUser) -> QuerySet[ActivityEvent]:
    """What happened to the user's jobs and what the user did, newest first."""
    return ActivityEvent.objects.filter(Q(owner=user) | Q(actor=user)).select_related("team")

