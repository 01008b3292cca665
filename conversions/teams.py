"""Teams run by their users: roles, invitations by e-mail, and what owners and admins may do.

Reads first (each object through one helper that answers 404 to anyone who may not see it), then
writes. Roles: owners and admins invite, change roles and remove people (only owners touch owners
or make them); members also share their own jobs with the team; viewers only look and download.
Everyone may leave, except the last owner, who hands over first."""

import hashlib
import logging
import secrets
import smtplib
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone

from conversions import activity, services
from conversions.accounts import verified_emails
from conversions.models import ConversionJob, Membership, OutputFile, Team, TeamInvitation

logger = logging.getLogger(__name__)

Role = Membership.Role
# The invitation a browser opened last, for the sign-up that may follow (accounts.signup_allowed).
INVITATION_SESSION_KEY = "ccweb_invitation"


class TeamError(Exception):
    """Something the user must be told, as a sentence saying what to do."""


# --- Reads --------------------------------------------------------------------------------------


def memberships_of(user: AbstractBaseUser) -> QuerySet[Membership]:
    """The user's teams as their memberships (role included), with how many people each has."""
    return (
        Membership.objects.filter(user=user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("team__name", "team_id")
    )


def membership_for_user(*, user: AbstractBaseUser, uuid: object) -> Membership:
    """The user's own membership in the team `uuid`: 404 for anyone not in it."""
    membership = Membership.objects.select_related("team").filter(user=user, team__uuid=uuid).first()
    if membership is None:
        raise Http404("No such team.")
    return membership


def membership_managing(*, user: AbstractBaseUser, uuid: object) -> Membership:
    """The user's membership in the team `uuid` when they manage it (owner, admin); 404 otherwise,
    as for a team they are not in: a member learns nothing from trying an admin's address."""
    membership = membership_for_user(user=user, uuid=uuid)
    if not membership.manages:
        raise Http404("No such team.")
    return membership


def membership_owning(*, user: AbstractBaseUser, uuid: object) -> Membership:
    """The user's membership in the team `uuid` when they own it; 404 otherwise."""
    membership = membership_for_user(user=user, uuid=uuid)
    if membership.role != Role.OWNER:
        raise Http404("No such team.")
    return membership


def member_of_team(*, team: Team, uuid: object) -> Membership:
    """Someone's membership in `team` (which the caller already may see), or 404."""
    membership = Membership.objects.select_related("user").filter(team=team, uuid=uuid).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


def members_of(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def invitations_pending(team: Team) -> QuerySet[TeamInvitation]:
    return TeamInvitation.objects.filter(team=team, status=TeamInvitation.Status.PENDING, expires_at__gt=timezone.now())


def invitation_of_team(*, team: Team, uuid: object) -> TeamInvitation:
    invitation = invitations_pending(team).filter(uuid=uuid).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def _token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_by_token(token: str) -> TeamInvitation:
    """The pending invitation the link's token opens: 404 for one unknown, expired, answered or
    revoked, all alike."""
    invitation = (
        TeamInvitation.objects.select_related("team", "invited_by")
        .filter(token_sha256=_token_sha256(token), status=TeamInvitation.Status.PENDING, expires_at__gt=timezone.now())
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


def invitation_remember(request: HttpRequest, token: str) -> None:
    request.session[INVITATION_SESSION_KEY] = token


def invitation_remembered(request: HttpRequest) -> TeamInvitation | None:
    """The invitation this browser opened last, while it is still valid."""
    token = request.session.get(INVITATION_SESSION_KEY)
    if not token:
        return None
    try:
        return invitation_by_token(token)
    except Http404:
        return None


def invitation_is_for(invitation: TeamInvitation, user: AbstractBaseUser) -> bool:
    """Whether the invitation was sent to one of the user's verified addresses."""
    return invitation.email in verified_emails(user)


def team_jobs(
    team: Team,
    *,
    query: str = "",
    member: AbstractBaseUser | None = None,
    output_format: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[ConversionJob]:
    """The jobs shared with the team, newest first: searched by file name, filtered by who shared
    them, their format and the day they started (inclusive)."""
    files = OutputFile.objects.only("uuid", "job_id", "filename", "size")
    jobs = (
        ConversionJob.objects.filter(team=team)
        .select_related("user")
        .only(
            "uuid",
            "status",
            "percent",
            "input_filename",
            "source_url",
            "output_format",
            "created_at",
            "team_id",
            "user__username",
        )
        .prefetch_related(Prefetch("files", queryset=files))
    )
    if query:
        jobs = jobs.filter(input_filename__icontains=query)
    if member is not None:
        jobs = jobs.filter(user=member)
    if output_format:
        jobs = jobs.filter(output_format=output_format)
    zone = timezone.get_current_timezone()
    if since:
        jobs = jobs.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=zone))
    if until:
        jobs = jobs.filter(created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone))
    return jobs


def team_formats(team: Team) -> list[str]:
    """The formats of the team's shared jobs, for the team page's filter."""
    formats = ConversionJob.objects.filter(team=team).order_by("output_format").values_list("output_format", flat=True)
    return list(formats.distinct())


def team_job_managed(
    *, user: AbstractBaseUser, team_uuid: object, job_uuid: object
) -> tuple[Membership, ConversionJob]:
    """A job shared with a team the user manages, for deleting it: 404 for anyone else."""
    membership = membership_managing(user=user, uuid=team_uuid)
    job = ConversionJob.objects.filter(team=membership.team, uuid=job_uuid).select_related("user").first()
    if job is None:
        raise Http404("No such conversion.")
    return membership, job


# --- Writes -------------------------------------------------------------------------------------


def team_create(*, user: AbstractBaseUser, name: str) -> Team:
    """A new team, its maker its owner."""
    with transaction.atomic():
        team = Team.objects.create(name=name.strip())
        Membership.objects.create(team=team, user=user, role=Role.OWNER)
        activity.record(actor=user, verb=activity.TEAM_CREATED, target=team)
    return team


def _may_act_on(by: Membership, role: str) -> bool:
    """Owners act on anyone; admins on admins, members and viewers."""
    return by.role == Role.OWNER or (by.role == Role.ADMIN and role != Role.OWNER)


def _owners_locked(team: Team) -> list[int]:
    """The team's owners' membership ids, locked until the transaction ends: two owners leaving at
    once cannot both see the other still there."""
    return list(Membership.objects.select_for_update().filter(team=team, role=Role.OWNER).values_list("pk", flat=True))


def invitation_send(*, by: Membership, email: str, role: str) -> TeamInvitation:
    """Invite an address to the team with a role, by e-mail: a link valid TEAM_INVITATION_DAYS days.
    Inviting an address again replaces its pending invitation (a new link; the old one stops
    working)."""
    email = email.strip().lower()
    if not by.manages:
        raise TeamError("Only the team's owners and admins invite people.")
    if not _may_act_on(by, role):
        raise TeamError("Only the team's owners can invite someone as an owner.")
    team = by.team
    if (
        Membership.objects.filter(team=team, user__email__iexact=email).exists()
        or Membership.objects.filter(
            team=team, user__emailaddress__email__iexact=email, user__emailaddress__verified=True
        ).exists()
    ):
        raise TeamError(f"{email} is already in {team.name}.")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        TeamInvitation.objects.filter(team=team, email=email, status=TeamInvitation.Status.PENDING).update(
            status=TeamInvitation.Status.REVOKED, answered_at=now
        )
        invitation = TeamInvitation.objects.create(
            team=team,
            email=email,
            role=role,
            token_sha256=_token_sha256(token),
            invited_by=by.user,
            expires_at=now + timedelta(days=settings.TEAM_INVITATION_DAYS),
        )
        activity.record(actor=by.user, verb=activity.MEMBER_INVITED, target=invitation, detail={"role": role})
        link = settings.PUBLIC_URL + reverse("conversions:invitation", args=[token])
        inviter = by.user.get_username()
        role = invitation.get_role_display().lower()
        body = (
            f"{inviter} invites you to join the team {team.name} on ccweb as {role}.\n\n"
            f"Open this link to accept or decline: {link}\n\n"
            f"It works until {timezone.localtime(invitation.expires_at):%Y-%m-%d %H:%M %Z}. Without an account "
            f"yet, you make one there with this address.\n"
        )
        try:
            send_mail(f"{inviter} invites you to {team.name} on ccweb", body, None, [email])
        except (OSError, smtplib.SMTPException) as error:
            # Nothing is kept: an invitation nobody received would only block the next one.
            logger.warning("invitation to %s for team %s could not be sent: %r", email, team.uuid, error)
            raise TeamError("The invitation could not be e-mailed. Try again in a few minutes.") from error
    return invitation


def invitation_revoke(*, by: Membership, invitation: TeamInvitation) -> None:
    if not _may_act_on(by, invitation.role):
        raise TeamError("Only the team's owners can withdraw an invitation to become an owner.")
    TeamInvitation.objects.filter(pk=invitation.pk, status=TeamInvitation.Status.PENDING).update(
        status=TeamInvitation.Status.REVOKED, answered_at=timezone.now(), answered_by=by.user
    )


def invitation_accept(*, invitation: TeamInvitation, user: AbstractBaseUser) -> Membership:
    """The invited person joins the team with the role they were invited to (someone already in it
    keeps their role)."""
    if not invitation_is_for(invitation, user):
        raise TeamError(
            "This invitation was sent to an address your account has not verified. "
            "Log in with the account of that address, or add and verify it under your e-mail addresses."
        )
    with transaction.atomic():
        answered = TeamInvitation.objects.filter(pk=invitation.pk, status=TeamInvitation.Status.PENDING).update(
            status=TeamInvitation.Status.ACCEPTED, answered_at=timezone.now(), answered_by=user
        )
        if not answered:
            raise TeamError("This invitation was answered or withdrawn meanwhile.")
        membership, joined = Membership.objects.get_or_create(
            team=invitation.team, user=user, defaults={"role": invitation.role}
        )
        if joined:
            activity.record(actor=user, verb=activity.MEMBER_JOINED, target=membership)
    return membership


def invitation_decline(*, invitation: TeamInvitation, user: AbstractBaseUser | None) -> None:
    """Anyone holding the link may decline (the invited person need not make an account for it)."""
    declined = TeamInvitation.objects.filter(pk=invitation.pk, status=TeamInvitation.Status.PENDING).update(
        status=TeamInvitation.Status.DECLINED,
        answered_at=timezone.now(),
        answered_by=user if user is not None and user.is_authenticated else None,
    )
    if declined:
        activity.record(actor=user, actor_label="invitation link", verb=activity.MEMBER_DECLINED, target=invitation)


def membership_change_role(*, by: Membership, membership: Membership, role: str) -> Membership:
    if membership.team_id != by.team_id or not by.manages:
        raise TeamError("Only the team's owners and admins change roles.")
    if not _may_act_on(by, membership.role) or not _may_act_on(by, role):
        raise TeamError("Only the team's owners can make someone an owner, or change an owner's role.")
    with transaction.atomic():
        owners = _owners_locked(by.team)
        if membership.role == Role.OWNER and role != Role.OWNER and owners == [membership.pk]:
            raise TeamError("A team needs an owner: make someone else owner first.")
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        activity.record(
            actor=by.user, verb=activity.ROLE_CHANGED, target=membership, detail={"from": before, "to": role}
        )
    return membership


def membership_remove(*, by: Membership, membership: Membership) -> None:
    """Take someone out of the team; what they shared with it stays shared."""
    if membership.team_id != by.team_id or not by.manages or not _may_act_on(by, membership.role):
        raise TeamError("Only the team's owners can remove an owner.")
    _leave(membership, by=by.user, verb=activity.MEMBER_REMOVED)


def team_leave(*, membership: Membership) -> None:
    _leave(membership, by=membership.user, verb=activity.MEMBER_LEFT)


def _leave(membership: Membership, *, by: AbstractBaseUser, verb: str) -> None:
    with transaction.atomic():
        owners = _owners_locked(membership.team)
        if owners == [membership.pk]:
            raise TeamError("A team needs an owner: make someone else owner before leaving.")
        Membership.objects.filter(pk=membership.pk).delete()
        activity.record(actor=by, verb=verb, target=membership)


def team_delete(*, by: Membership) -> None:
    """The owner deletes the team: the jobs shared with it become private to their owners again."""
    if by.role != Role.OWNER:
        raise TeamError("Only the team's owners can delete it.")
    with transaction.atomic():
        # Its log's lines stay, without the team: for the people they concern, and staff.
        activity.record(actor=by.user, verb=activity.TEAM_DELETED, target=by.team)
        by.team.delete()


def team_job_delete(*, by: Membership, job: ConversionJob) -> None:
    """An owner or admin deletes a job shared with the team, here and at the API."""
    if not by.manages or job.team_id != by.team_id:
        raise TeamError("Only the team's owners and admins delete what is shared with it.")
    services.job_delete(job=job, by=by.user)
