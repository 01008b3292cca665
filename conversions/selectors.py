"""Reads shared by several views: what a user may see, and what the API can convert."""

import logging
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from conversions.cloudconvert.client import Client, api_config
from conversions.catalogue import Catalogue
from conversions.cloudconvert.errors import ApiError
from conversions.models import ConversionJob, DailyJobCount, Membership, OutputFile, Preset, Team

logger = logging.getLogger(__name__)

FORMATS_CACHE_SECONDS = 600
FAILURE_CACHE_SECONDS = 30
# How long the API keeps a job's files (CloudConvert: 24 h), and so the original a retry needs.
API_FILE_RETENTION = timedelta(hours=24)


def _page_client() -> Client:
    """For reads that a page waits on: one quick retry at most, so an unreachable API costs a
    user seconds, not the worker's full backoff."""
    return Client(api_config(), max_retries=1, timeout=10)


def teams_of(user: AbstractBaseUser) -> QuerySet[Team]:
    return Team.objects.filter(members=user)


def teams_shared_to_by(user: AbstractBaseUser) -> QuerySet[Team]:
    """The teams the user may share their jobs with: all of theirs but those they only view."""
    return Team.objects.filter(memberships__user=user, memberships__role__in=Membership.SHARERS)


def teams_for_sharing(job: ConversionJob) -> QuerySet[Team]:
    """The teams the owner may share a job with (teams_shared_to_by), and the one it is shared
    with now (kept even after the owner left it, so saving the page does not quietly unshare)."""
    sharers = Membership.objects.filter(user=job.user_id, role__in=Membership.SHARERS).values("team_id")
    return Team.objects.filter(Q(pk__in=sharers) | Q(pk=job.team_id))


def jobs_visible_to(user: AbstractBaseUser) -> QuerySet[ConversionJob]:
    """The one rule of who sees a job (and so its files): its owner, and the members of the team
    it is shared with. Only the owner acts on it (jobs_owned_by)."""
    return ConversionJob.objects.filter(Q(user=user) | Q(team__in=teams_of(user)))


def jobs_owned_by(user: AbstractBaseUser) -> QuerySet[ConversionJob]:
    return ConversionJob.objects.filter(user=user)


def jobs_shared_with(user: AbstractBaseUser) -> QuerySet[ConversionJob]:
    """Other people's jobs shared with one of the user's teams."""
    return ConversionJob.objects.filter(team__in=teams_of(user)).exclude(user=user)


def jobs_matching(
    user: AbstractBaseUser, *, shared: bool = False, query: str = "", status: str = "", output_format: str = ""
) -> QuerySet[ConversionJob]:
    """The dashboard's list: the user's own jobs (or, with shared, those their teams share),
    searched by file name, filtered by status and format."""
    # Only what a row shows: the raw payload (every task, every URL) is for the job page.
    files = OutputFile.objects.only("uuid", "job_id", "filename", "thumbnail")
    row = (
        "uuid", "status", "input_filename", "source_url", "output_format", "percent", "error_message",
        "created_at", "updated_at",
    )
    if shared:
        jobs = jobs_shared_with(user).select_related("user", "team").only(*row, "user__username", "team__name")
    else:
        jobs = jobs_owned_by(user).only(*row, "team")
    jobs = jobs.prefetch_related(Prefetch("files", queryset=files))
    if query:
        jobs = jobs.filter(input_filename__icontains=query)
    if status:
        jobs = jobs.filter(status=status)
    if output_format:
        jobs = jobs.filter(output_format=output_format)
    return jobs


def jobs_started_today(user: AbstractBaseUser) -> int:
    """What counts against the daily quota (see services._quota_take)."""
    counter = DailyJobCount.objects.filter(user=user, day=timezone.localdate()).first()
    return counter.started if counter else 0


def presets_of(user: AbstractBaseUser) -> QuerySet[Preset]:
    return Preset.objects.filter(user=user)


def preset_for_user(*, user: AbstractBaseUser, uuid: object) -> Preset:
    """The user's preset, or 404 (also for a value that is no UUID at all, as in ?preset=...)."""
    try:
        preset = presets_of(user).filter(uuid=uuid).first()
    except ValidationError:
        preset = None
    if preset is None:
        raise Http404("No such preset.")
    return preset


def account_credits() -> int | None:
    """The API account's remaining credits, where the API reports them (CloudConvert does)."""
    key = f"conversions:credits:{api_config().api_url}"
    credits = cache.get(key, "unknown")
    if credits == "unknown":
        try:
            credits = _page_client().me().get("credits")
        except ApiError as error:
            logger.info("could not read the account's credits: %r", error)
            credits = None
        cache.set(key, credits, 60 if credits is not None else FAILURE_CACHE_SECONDS)
    return credits if isinstance(credits, int) else None


def job_for_user(*, user: AbstractBaseUser, uuid: object) -> ConversionJob:
    """The job, or 404 for anyone who may not see it (no hint that it exists)."""
    job = jobs_visible_to(user).prefetch_related("files").filter(uuid=uuid).first()
    if job is None:
        raise Http404("No such conversion.")
    return job


def job_owned_by(*, user: AbstractBaseUser, uuid: object) -> ConversionJob:
    """The job, for acting on it: 404 for anyone but its owner (team members only look)."""
    job = jobs_owned_by(user).prefetch_related("files").filter(uuid=uuid).first()
    if job is None:
        raise Http404("No such conversion.")
    return job


def job_can_retry(job: ConversionJob) -> bool:
    """Whether Retry can work: a failed job whose file the API can still give back (a URL to
    import again, or an original that reached the API less than a day ago and is being exported
    for it). A job that failed before any file arrived has nothing to convert again."""
    if job.status != ConversionJob.Status.ERROR:
        return False
    if job.source_url:
        return True
    if job.finished_at is None or timezone.now() - job.finished_at > API_FILE_RETENTION:
        return False
    imported = any(
        t.get("operation", "").startswith("import/") and t.get("status") == "finished" for t in job.tasks
    )
    original = next((t for t in job.tasks if t.get("name") == ConversionJob.ORIGINAL_EXPORT), None)
    return imported and original is not None and original.get("status") != "error"


def job_tasks_shown(job: ConversionJob) -> list[dict]:
    """The job's tasks as its page lists them: not the export of the original, which ccweb adds
    for itself (a retry imports from it) and the user never asked for."""
    return [task for task in job.task_rows if task.get("name") != ConversionJob.ORIGINAL_EXPORT]


def file_for_user(*, user: AbstractBaseUser, uuid: object) -> OutputFile:
    output = OutputFile.objects.select_related("job").filter(uuid=uuid, job__in=jobs_visible_to(user)).first()
    if output is None:
        raise Http404("No such file.")
    return output


def conversion_catalogue() -> Catalogue:
    """What the API converts, with declared options, cached for a few minutes.

    An empty catalogue means the API could not say; the page explains that to the user."""
    key = f"conversions:catalogue:{api_config().api_url}"
    items = cache.get(key)
    if items is None:
        try:
            items = _page_client().list_formats(include_options=True)
        except ApiError as error:
            logger.warning("could not list formats: %r", error)
            # Remembered briefly, so pages do not each wait on an API that is down.
            cache.set(key, [], FAILURE_CACHE_SECONDS)
            return Catalogue()
        cache.set(key, items, FORMATS_CACHE_SECONDS)
    return Catalogue(items)
