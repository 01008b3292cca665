"""Share links: a public address for one converted file or all of a job's files, for people
without an account. Unguessable (256 random bits), optionally expiring, password-protected or
limited to a number of downloads, revocable; downloads are counted.

A link that is unknown, revoked, expired or used up answers 404 like any address that never
existed: its holder learns nothing. The job's owner makes and revokes links; the owners and admins
of the team a job is shared with see and revoke them too (they may delete the job itself)."""

import logging
import secrets
from datetime import datetime
from tempfile import SpooledTemporaryFile
from typing import IO

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from conversions import activity
from conversions.cloudconvert.client import get_client
from conversions.cloudconvert.errors import ApiError
from conversions.models import ConversionJob, Membership, OutputFile, ShareLink
from conversions.zips import SPOOL_MAX_MEMORY, zip_filename, zip_of_outputs

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
# Wrong passwords tried on one link before it refuses more for a while (Django's hashers are slow
# by design; this bounds what a guesser gets through even so).
PASSWORD_ATTEMPTS = 10
PASSWORD_LOCKOUT_SECONDS = 15 * 60
UNLOCKED_SESSION_KEY = "ccweb_share_links_unlocked"


class ShareLinkError(Exception):
    """Something the user must be told, as a sentence saying what to do."""


# --- Reads --------------------------------------------------------------------------------------


def _usable(now: datetime) -> Q:
    return (
        Q(revoked_at__isnull=True)
        & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        & (Q(max_downloads__isnull=True) | Q(download_count__lt=F("max_downloads")))
    )


def links_of_job(job: ConversionJob) -> QuerySet[ShareLink]:
    """Every link of the job, used up or not, newest first, for the job page."""
    return ShareLink.objects.filter(job=job).select_related("output")


def may_manage_links(user: AbstractBaseUser, job: ConversionJob) -> bool:
    """The job's owner, and the owners and admins of the team it is shared with."""
    if job.user_id == user.pk:
        return True
    return (
        job.team_id is not None
        and Membership.objects.filter(team_id=job.team_id, user=user, role__in=Membership.MANAGERS).exists()
    )


def share_link_managed(*, user: AbstractBaseUser, uuid: object) -> ShareLink:
    """A link the user may revoke, or 404 (also for a link of a job they merely see)."""
    managed_teams = Membership.objects.filter(user=user, role__in=Membership.MANAGERS).values("team_id")
    link = (
        ShareLink.objects.select_related("job")
        .filter(Q(job__user=user) | Q(job__team__in=managed_teams), uuid=uuid)
        .first()
    )
    if link is None:
        raise Http404("No such link.")
    return link


def share_link_public(token: str) -> ShareLink:
    """The link a token opens while it may still be used; 404 otherwise, whatever the reason."""
    link = ShareLink.objects.select_related("job", "output").filter(_usable(timezone.now()), token=token).first()
    if link is None:
        raise Http404("No such link.")
    return link


def share_link_outputs(link: ShareLink) -> list[OutputFile]:
    return [link.output] if link.output_id else list(link.job.files.all())


def share_link_name(link: ShareLink, outputs: list[OutputFile]) -> str:
    """What the holder downloads: the file, or a zip of the job's files when there are several."""
    return outputs[0].filename if len(outputs) == 1 else zip_filename(link.job)


def share_link_size(outputs: list[OutputFile]) -> int | None:
    """Bytes of the file(s); None when the API did not say for one of them."""
    sizes = [output.size for output in outputs]
    return None if any(size is None for size in sizes) else sum(sizes)


def share_link_is_unlocked(request: HttpRequest, link: ShareLink) -> bool:
    return not link.password or str(link.uuid) in request.session.get(UNLOCKED_SESSION_KEY, [])


# --- Writes -------------------------------------------------------------------------------------


def share_link_create(
    *,
    job: ConversionJob,
    user: AbstractBaseUser,
    output: OutputFile | None = None,
    expires_at: datetime | None = None,
    password: str = "",
    max_downloads: int | None = None,
) -> ShareLink:
    """A new link to one of the job's files (or, without output, all of them)."""
    if job.status != ConversionJob.Status.FINISHED or not job.files.exists():
        raise ShareLinkError("Share links can be made once the conversion has finished with files.")
    if output is not None and output.job_id != job.pk:
        raise ShareLinkError("That file is not one of this conversion's files.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ShareLinkError("The end of the link's validity must be in the future.")
    link = ShareLink.objects.create(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        job=job,
        output=output,
        created_by=user,
        expires_at=expires_at,
        password=make_password(password) if password else "",
        max_downloads=max_downloads,
    )
    activity.record(actor=user, verb=activity.LINK_CREATED, target=link)
    return link


def share_link_revoke(*, link: ShareLink, by: AbstractBaseUser) -> None:
    if ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        activity.record(actor=by, verb=activity.LINK_REVOKED, target=link)


def share_link_unlock(request: HttpRequest, *, link: ShareLink, password: str) -> None:
    """Open a password-protected link for this browser's session, or say why not."""
    attempts_key = f"conversions:share-link-attempts:{link.pk}"
    if cache.get(attempts_key, 0) >= PASSWORD_ATTEMPTS:
        raise ShareLinkError("Too many wrong passwords were tried on this link. Try again in 15 minutes.")
    if not check_password(password, link.password):
        cache.add(attempts_key, 0, PASSWORD_LOCKOUT_SECONDS)
        cache.incr(attempts_key)
        raise ShareLinkError("That password is not the link's password. Check it and try again.")
    unlocked = request.session.get(UNLOCKED_SESSION_KEY, [])
    request.session[UNLOCKED_SESSION_KEY] = [*unlocked, str(link.uuid)]


def _open_output(output: OutputFile) -> IO[bytes]:
    """ccweb's stored copy; a file not copied yet comes from the API through ccweb, so the holder
    never sees the API's own address."""
    if output.file:
        return output.file.open("rb")
    if not output.remote_url:
        raise ShareLinkError("This file is no longer available. Ask the person who shared it for a new link.")
    copy = SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
    get_client().download(output.remote_url, copy)
    copy.seek(0)
    return copy


def share_link_download(*, link: ShareLink) -> tuple[IO[bytes], str]:
    """The content to stream and its file name, counting one download. The count is taken in one
    conditional UPDATE, so parallel downloads cannot go past the link's limit; a link used up,
    revoked or expired meanwhile is a 404."""
    outputs = share_link_outputs(link)
    try:
        content = _open_output(outputs[0]) if len(outputs) == 1 else zip_of_outputs(outputs)
    except ApiError as error:
        logger.warning("share link %s: the files could not be fetched: %r", link.uuid, error)
        raise ShareLinkError("The files could not be fetched right now. Try again in a minute.") from error
    now = timezone.now()
    taken = ShareLink.objects.filter(_usable(now), pk=link.pk).update(
        download_count=F("download_count") + 1, last_downloaded_at=now
    )
    if not taken:
        content.close()
        raise Http404("No such link.")
    activity.record(actor=None, actor_label="share link", verb=activity.LINK_DOWNLOADED, target=link)
    return content, share_link_name(link, outputs)
