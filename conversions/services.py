"""Writes: starting a conversion, applying what the API says about it, storing its outputs.

Views, the webhook, the poller and admin actions all go through these functions, so a job
payload is applied the same way whichever way it arrived."""

import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from tempfile import TemporaryFile

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.files.base import ContentFile, File
from django.core.mail import send_mail
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, models, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django_tasks.base import Task

from conversions import activity, selectors, task_rows
from conversions.catalogue import input_format_of
from conversions.cloudconvert.client import Client, api_config, get_client
from conversions.cloudconvert.errors import ApiError, InvalidData, NotFound, Unauthenticated
from conversions.models import (
    ConversionJob,
    DailyJobCount,
    OutputFile,
    Preset,
    QuotaOverride,
    Team,
    WebhookDelivery,
)
from conversions.payloads import MalformedPayload, job_payload_clean
from conversions.thumbnails import thumbnail_png
from engine import wakeup

logger = logging.getLogger(__name__)

Status = ConversionJob.Status
ORIGINAL_EXPORT = ConversionJob.ORIGINAL_EXPORT
POLL_AFTER_CAP = timedelta(hours=24)
# A page watching a running job asks the API itself when nobody asked for a while: the API only
# calls back when a job ends, and the poller's backoff (or a worker busy converting) would leave
# a 25 s conversion showing "Waiting" until it is over. The interval grows with the job's age,
# from the minimum to the maximum (a job waiting hours for its file): one question per job and
# interval, however many pages watch it.
LIVE_REFRESH_MIN = timedelta(seconds=3)
LIVE_REFRESH_MAX = timedelta(seconds=30)
LIVE_REFRESH_AGE_RATIO = 20
# A page waits on these calls: a short timeout and no retry (the poller keeps retrying anyway).
LIVE_REFRESH_TIMEOUT = 5
# The codes an upload URL sends the browser back with (engine: ?upload_error=CODE).
UPLOAD_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


class ConversionError(Exception):
    """Something the user must be told, as a sentence saying what to do."""


def api_error_sentence(error: ApiError) -> str:
    """What a user should read when the API refuses or cannot be reached."""
    if isinstance(error, Unauthenticated):
        return "ccweb could not sign in to the conversion service. Please tell an administrator."
    if isinstance(error, InvalidData):
        # "tasks.convert.pixel_density" → "pixel_density": the user set options, not tasks.
        fields = "; ".join(f"{k.rsplit('.', 1)[-1]}: {' '.join(v)}" for k, v in error.errors.items())
        return f"The conversion service refused these settings ({fields or error.message}). Change them and try again."
    if error.retryable:
        return "The conversion service is busy or cannot be reached right now. Please try again in a minute."
    return "The conversion service could not start this conversion. Please try again."


def webhook_url() -> str:
    return settings.PUBLIC_URL + reverse("conversions:webhook")


class QuotaExceeded(ConversionError):
    pass


class OptionsRefused(ConversionError):
    """The API refused the settings when asked to create the job: nothing was started.
    `errors` maps option names to what the API said of each."""

    def __init__(self, message: str, *, errors: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.errors = errors


def daily_quotas_of(user_ids: Iterable[int]) -> dict[int, int]:
    """How many conversions each user may start per day (0: no limit), in one query: their own
    override if staff set one, else the most generous override of their teams (any role), else
    CONVERSIONS_DAILY_JOB_QUOTA."""
    user_ids = list(user_ids)
    own: dict[int, int] = {}
    teams: dict[int, list[int]] = {}
    overrides = QuotaOverride.objects.filter(Q(user__in=user_ids) | Q(team__memberships__user__in=user_ids))
    for user_id, member_id, limit in overrides.values_list("user_id", "team__memberships__user", "daily_jobs"):
        if user_id is not None:
            own[user_id] = limit
        elif member_id in user_ids:
            teams.setdefault(member_id, []).append(limit)
    quotas = {}
    for user_id in user_ids:
        if user_id in own:
            quotas[user_id] = own[user_id]
        elif user_id in teams:
            quotas[user_id] = 0 if 0 in teams[user_id] else max(teams[user_id])
        else:
            quotas[user_id] = settings.CONVERSIONS_DAILY_JOB_QUOTA
    return quotas


def daily_quota_of(user: AbstractBaseUser) -> int:
    """The user's daily quota (daily_quotas_of); 0: no limit."""
    return daily_quotas_of([user.pk])[user.pk]


def _quota_take(*, user: AbstractBaseUser, day: date) -> None:
    """Count one more job started today, refusing beyond the user's daily quota
    (daily_quota_of). Call inside a transaction: the user's counter row stays locked until it
    commits, so parallel starts wait for each other instead of all reading the same count
    (SQLite's IMMEDIATE transactions serialise them just the same)."""
    counter, _ = DailyJobCount.objects.select_for_update().get_or_create(user=user, day=day)
    quota = daily_quota_of(user)
    if quota and counter.started >= quota:
        raise QuotaExceeded(
            f"You have reached today's limit of {quota} conversions. You can convert more files tomorrow."
        )
    counter.started += 1
    counter.save(update_fields=["started"])


def _quota_give_back(*, user: AbstractBaseUser, day: date) -> None:
    """A job the API refused to create was never started: it does not count."""
    DailyJobCount.objects.filter(user=user, day=day, started__gt=0).update(started=F("started") - 1)


def _job_tasks(job: ConversionJob, *, redirect_after_upload: bool) -> dict:
    if job.source_url:
        source: dict = {"operation": "import/url", "url": job.source_url}
        if job.input_filename:
            source["filename"] = job.input_filename
    else:
        source = {"operation": "import/upload"}
        if redirect_after_upload:
            source["redirect"] = settings.PUBLIC_URL + job.get_absolute_url()
        if api_config().is_engine:
            # The engine's upload URL itself refuses bigger files (CloudConvert has no such option).
            source["max_file_size"] = settings.CONVERSIONS_MAX_UPLOAD_SIZE
    convert = {"operation": "convert", "input": "import", "output_format": job.output_format, **job.options}
    if input_format := input_format_of(job.input_filename):
        # Known up front, the API checks the conversion and its options when the job is created.
        convert["input_format"] = input_format
    return {
        "import": source,
        "convert": convert,
        "export": {"operation": "export/url", "input": "convert"},
        # The original stays reachable for a retry as long as the API keeps files (24 h).
        ORIGINAL_EXPORT: {"operation": "export/url", "input": "import"},
    }


def job_start(
    *,
    user: AbstractBaseUser,
    output_format: str,
    options: dict,
    input_filename: str = "",
    source_url: str = "",
    notify_by_email: bool = False,
    team: Team | None = None,
    redirect_after_upload: bool = True,
) -> ConversionJob:
    """Create the job at the API: an upload waiting for the browser (or an import from a URL),
    a convert and an export. With redirect_after_upload, a browser's plain form post comes
    back to the job page.

    The quota is taken with the job's row, and both are committed before the API is asked: a
    lock held over an HTTP call would make every other start of the user (on SQLite, every
    write) wait for it."""
    today = timezone.localdate()
    with transaction.atomic():
        _quota_take(user=user, day=today)
        job = ConversionJob.objects.create(
            user=user,
            output_format=output_format,
            options=options,
            input_filename=input_filename,
            source_url=source_url,
            notify_by_email=notify_by_email,
            team=team,
        )
    job.tag = str(job.uuid)
    tasks = _job_tasks(job, redirect_after_upload=redirect_after_upload)
    try:
        payload = get_client().create_job(tasks=tasks, tag=job.tag, webhook_url=webhook_url())
    except InvalidData as error:
        # Settings the user can correct on the form: no failed job is left behind for them.
        logger.info("job %s: the API refused its settings: %r", job.uuid, error)
        _quota_give_back(user=user, day=today)
        job.delete()
        # "tasks.convert.quality" → "quality": the user set options, not tasks.
        errors = {name.rsplit(".", 1)[-1]: messages for name, messages in error.errors.items()}
        raise OptionsRefused(api_error_sentence(error), errors=errors) from error
    except ApiError as error:
        logger.warning("job %s: the API refused to create it: %r", job.uuid, error)
        _quota_give_back(user=user, day=today)
        job.status = Status.ERROR
        job.error_message = api_error_sentence(error)
        job.error_code = error.code or type(error).__name__
        job.finished_at = timezone.now()
        job.save()
        raise ConversionError(job.error_message) from error
    job.remote_job_id = payload["id"]
    job.payload = payload
    job.save()
    from conversions.tasks import poll_job

    transaction.on_commit(lambda: poll_job.using(run_after=timezone.now() + timedelta(seconds=2)).enqueue(job.id, 0))
    return job


def job_retry(*, job: ConversionJob) -> ConversionJob:
    """Convert the same file again, the same way, as a new job."""
    if job.is_running:
        raise ConversionError("This conversion is still running.")
    source_url = job.source_url or _original_url(job)
    return job_start(
        user=job.user,
        output_format=job.output_format,
        options=job.options,
        input_filename=job.input_filename,
        source_url=source_url,
        notify_by_email=job.notify_by_email,
        # Still shared with the team, unless the owner has left it (or only views it) since.
        team=selectors.teams_shared_to_by(job.user).filter(pk=job.team_id).first(),
    )


def job_share(*, job: ConversionJob, team: Team | None, by: AbstractBaseUser) -> ConversionJob:
    """Let one of the owner's teams see the job and its files, or (None) nobody but the owner.
    The team it is shared with now may stay, even if the owner has left it. Both teams' logs
    tell: the one it leaves and the one it joins."""
    if team is not None and not selectors.teams_for_sharing(job).filter(pk=team.pk).exists():
        raise ConversionError("You can only share with a team you belong to.")
    before = job.team_id
    if before == (team.pk if team else None):
        return job
    with transaction.atomic():
        if before is not None:
            activity.record(actor=by, verb=activity.UNSHARED, target=job, team=before)
        job.team = team
        job.save(update_fields=["team", "updated_at"])
        if team is not None:
            activity.record(actor=by, verb=activity.SHARED, target=job, team=team)
    return job


def _original_url(job: ConversionJob) -> str:
    """Where the API still offers the job's input: its export-original task, asked afresh (the
    job may have failed before that export ended)."""
    try:
        payload = get_client().show_job(job.remote_job_id)
    except NotFound:
        payload = {}
    for task in payload.get("tasks") or []:
        if task.get("name") != ORIGINAL_EXPORT:
            continue
        files = (task.get("result") or {}).get("files") or []
        if task.get("status") == "finished" and files and files[0].get("url"):
            return str(files[0]["url"])
        if task.get("status") in ("waiting", "processing"):
            raise ConversionError("The original file is still being prepared for a retry. Try again in a moment.")
    raise ConversionError("The original file is no longer available. Please upload it again.")


def job_cancel(*, job: ConversionJob) -> ConversionJob:
    """Cancel every task still waiting or running at the API, then record the outcome."""
    if not job.is_running:
        return job
    client = get_client()
    for task in job.tasks:
        if task.get("status") in ("waiting", "processing"):
            try:
                client.cancel_task(task["id"])
            except (InvalidData, NotFound):
                pass  # it ended meanwhile; the refresh below tells how
    return job_refresh(job=job)


def job_delete(*, job: ConversionJob, by: AbstractBaseUser, detail: dict | None = None) -> None:
    """Delete the job here and at the API (its files there too); the owner's and the team's logs
    keep a line of it, saying who (`detail`: how, e.g. from the admin)."""
    if job.remote_job_id:
        try:
            get_client().delete_job(job.remote_job_id)
        except NotFound:
            pass
    for output in job.files.all():
        for stored in (output.file, output.thumbnail):
            if stored:
                stored.delete(save=False)
    with transaction.atomic():
        job.delete()
        activity.record(actor=by, verb=activity.DELETED, target=job, detail=detail)


_STATUSES = frozenset(Status.values)


def _status_of(payload: dict) -> str:
    status = payload.get("status")
    if status in _STATUSES:
        return status
    return Status.WAITING


def _failure_sentence(tasks: list[dict]) -> tuple[str, str]:
    """The root cause of a failed job, in words: the first failed task that is not a mere
    consequence of another (INPUT_TASK_FAILED)."""
    failed = [t for t in tasks if t.get("status") == "error"]
    root = next((t for t in failed if t.get("code") != "INPUT_TASK_FAILED"), failed[0] if failed else None)
    if root is None:
        return "The conversion failed. Please try again.", ""
    code = root.get("code") or ""
    if code == "CANCELLED":
        return "The conversion was cancelled.", code
    message = (root.get("message") or "").strip()
    if not message:
        message = "The conversion failed."
    if not message.endswith((".", "!", "?")):
        message += "."
    return f"{message} Check the file and the options, then try again.", code


def job_apply_payload(*, payload: dict) -> ConversionJob | None:
    """Bring our record in line with a job object from the API (webhook or poll).

    Idempotent; unknown jobs are ignored; a status never moves backwards. A payload of the wrong
    shape raises MalformedPayload before anything is written. Returns the job as it now is."""
    applied = _job_apply_clean(job_payload_clean(payload))
    return ConversionJob.objects.get(pk=applied) if applied is not None else None


def _job_apply_clean(payload: dict, *, update: tuple[str, dict] | None = None) -> int | None:
    """job_apply_payload for a payload already checked by job_payload_clean: the id of the job it
    concerns (moved on or not), None for an unknown job.

    Deciding and writing are one statement (_job_update). Only when nothing moved is the job looked
    up, to tell an unknown job from a stale delivery. In the caller's transaction when there is one
    (no savepoint of its own: a failure here fails the caller's, as it must). `update`: the
    statement of _job_update(payload), built before the caller's transaction began."""
    update, params = update or _job_update(payload)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(update, params)
        moved = cursor.fetchone()
        if moved is None:
            cursor.execute(*_job_lookup(payload))
            known = cursor.fetchone()
            return known[0] if known else None
        job_id, notify_by_email = moved
        _job_ended(job_id, payload, notify_by_email=notify_by_email)
    return job_id


def _job_update(payload: dict, *, only_if: str = "") -> tuple[str, dict]:
    """The UPDATE bringing the job of `payload` in line with it, and its parameters (by name).

    It updates the job only while its status may still move to the payload's (not ended, not
    further on) and returns the job's id and notify_by_email when it did. A concurrent delivery for
    the same job waits for the row and sees the status this one wrote, so two deliveries never
    both end a job and a late one never undoes a later state. The job's stored payload (up to
    megabytes of JSON) is replaced, never read. `only_if`: one more SQL condition."""
    changes, movable = _job_changes(payload)
    sql = _job_update_sql(connection.vendor, tuple(changes), tuple(movable), only_if)
    return sql, {**changes, "input_filename": _input_filename(list(payload.get("tasks") or [])), "job_ref": payload["id"]}


@functools.lru_cache(maxsize=64)
def _job_update_sql(vendor: str, changed: tuple[str, ...], movable: tuple[str, ...], only_if: str) -> str:
    """_job_update's statement for the fields `changed` and a job in one of the statuses
    `movable`, written once for each: the webhook runs one of a few, thousands of times."""
    column = _job_columns()
    assignments = [f"{column[name]} = %({name})s" for name in changed]
    # The file's name is the first one the API tells: kept once known.
    filename = column["input_filename"]
    assignments.append(f"{filename} = CASE WHEN {filename} = '' THEN %(input_filename)s ELSE {filename} END")
    return (
        f"UPDATE {column['table']} SET {', '.join(assignments)} WHERE {column['id']} = ({_job_lookup_sql(vendor)}) "
        f"AND {column['status']} IN ({', '.join(_status_literal(status) for status in movable)})"
        f"{f' AND {only_if}' if only_if else ''} RETURNING {column['id']}, {column['notify_by_email']}"
    )


def _status_literal(status: str) -> str:
    """A status written into SQL: ours, so a plain word (checked all the same)."""
    if not re.fullmatch(r"[a-z_]+", status):
        raise ValueError(f"not a status: {status!r}")
    return f"'{status}'"


def _job_changes(payload: dict) -> tuple[dict[str, object], list[str]]:
    """What applying `payload` writes into its job (by field, ready for this database; the error
    only for a failed job, the end only for an ended one), and the statuses the job may be in for
    that: not ended, not further on than the payload's."""
    new_status = _status_of(payload)
    tasks = list(payload.get("tasks") or [])
    now = timezone.now()
    changes: dict[str, object] = {
        "payload": payload, "status": new_status, "percent": _percent(tasks, new_status), "updated_at": now,
    }
    if new_status == Status.ERROR:
        changes["error_message"], changes["error_code"] = _failure_sentence(tasks)
    if new_status in ConversionJob.TERMINAL:
        changes["finished_at"] = now
    database = connections[DEFAULT_DB_ALIAS]  # `connection` looks it up again at each use
    return (
        {name: ConversionJob._meta.get_field(name).get_db_prep_save(value, database) for name, value in changes.items()},
        _MOVABLE_TO[new_status],
    )


# For each status, those a job may move to it from: not ended, not further on.
_MOVABLE_TO = {
    new: [
        status for status, rank in ConversionJob.STATUS_RANK.items()
        if status not in ConversionJob.TERMINAL and rank <= ConversionJob.STATUS_RANK[new]
    ]
    for new in ConversionJob.STATUS_RANK
}


def _job_lookup(payload: dict) -> tuple[str, dict]:
    """The SELECT of the id of the job of `payload`, and its parameter (job_ref)."""
    return _job_lookup_sql(connection.vendor), {"job_ref": payload["id"]}


@functools.cache
def _job_lookup_sql(vendor: str) -> str:
    column = _job_columns()
    return f"SELECT {column['id']} FROM {column['table']} WHERE {column['remote_job_id']} = %(job_ref)s LIMIT 1"


def _job_columns() -> dict[str, str]:
    """ConversionJob's table and the columns the webhook writes, quoted for this database."""
    return _quoted(ConversionJob, "id", "payload", "status", "percent", "updated_at", "error_message", "error_code",
                   "finished_at", "input_filename", "remote_job_id", "notify_by_email")


def _quoted(model: type[models.Model], *fields: str) -> dict[str, str]:
    """`model`'s table (under "table") and the columns of `fields`, quoted for this database: for
    the statements the webhook writes itself."""
    return _quoted_for(connection.vendor, model, fields)


@functools.cache
def _quoted_for(vendor: str, model: type[models.Model], fields: tuple[str, ...]) -> dict[str, str]:
    quote = connection.ops.quote_name
    return {"table": quote(model._meta.db_table), **{name: quote(model._meta.get_field(name).column) for name in fields}}


def _job_ended(job_id: int, payload: dict, *, notify_by_email: bool) -> None:
    """What follows the job's last update, queued in its transaction: the e-mail when the owner
    asked for one; for a finished job, its files' rows and the task copying them."""
    new_status = _status_of(payload)
    if new_status in ConversionJob.TERMINAL and notify_by_email:
        from conversions.tasks import notify_owner

        _enqueue_with_commit(notify_owner, job_id)
    if new_status == Status.FINISHED and _record_outputs(job_id, list(payload.get("tasks") or [])):
        from conversions.tasks import store_outputs

        _enqueue_with_commit(store_outputs, job_id)


def _enqueue_with_commit(task: Task, *args: object) -> None:
    """Queue `task` so that it exists exactly when the caller's transaction commits. The database
    task backend queues in that transaction, by one INSERT of the row enqueue() would write
    (conversions/task_rows.py): one commit for the update and its task; the workers are woken once
    it commits (engine/wakeup.py). Any other backend queues after the commit."""
    if task_rows.uses_rows(task):
        with connection.cursor() as cursor:
            cursor.execute(*task_rows.insert(task, *args))
        wakeup.ring_when_committed(task)
    else:
        transaction.on_commit(lambda: task.enqueue(*args))


def _percent(tasks: list[dict], status: str) -> int:
    if status == Status.FINISHED:
        return 100
    work = [t for t in tasks if not t.get("operation", "").startswith(("import/", "export/"))]
    if not work:
        return 0
    done = 0
    for task in work:
        if task.get("status") == "finished":
            done += 100
        elif task.get("status") == "processing":
            # Whatever the API says, a task is between 0 and 100 % done.
            done += min(100, max(0, int(task.get("percent") or 0)))
    return min(99, done // len(work))


def _input_filename(tasks: list[dict]) -> str:
    for task in tasks:
        if task.get("operation", "").startswith("import/") and task.get("status") == "finished":
            files = (task.get("result") or {}).get("files") or []
            if files:
                return str(files[0].get("filename") or "")[:255]
    return ""


def _record_outputs(job_id: int, tasks: list[dict]) -> int:
    """Our rows for the job's exported files, in one INSERT per 500 files however many (a job may
    export thousands of pages); how many files the job has.

    Called once per job, in the transaction that makes it finished (a finished job is never
    applied again), so no row of it exists yet: nothing to read or update first. A row that is
    there all the same (same job and file name) is kept as it is."""
    rows = _output_rows(_exported(tasks), job_id=job_id)
    column = _quoted(OutputFile, *OUTPUT_FIELDS)
    row = f"({', '.join(['%s'] * len(OUTPUT_FIELDS))})"
    per_insert = min(500, (connection.features.max_query_params or 500 * len(OUTPUT_FIELDS)) // len(OUTPUT_FIELDS))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_insert):
            batch = rows[start : start + per_insert]
            cursor.execute(
                f"INSERT INTO {column['table']} ({', '.join(column[name] for name in OUTPUT_FIELDS)}) "
                f"VALUES {', '.join([row] * len(batch))} ON CONFLICT DO NOTHING",
                [value for values in batch for value in values],
            )
    return len(rows)


# The columns of an OutputFile row the webhook writes, in its statements' order.
OUTPUT_FIELDS = ("uuid", "job", "filename", "size", "remote_url", "file", "thumbnail", "created_at")


def _exported(tasks: list[dict]) -> dict[str, tuple[int | None, str]]:
    """The files a finished job exported for the user (not the copy of the original): by file
    name, their size and URL."""
    found: dict[str, tuple[int | None, str]] = {}
    for task in tasks:
        if task.get("operation") != "export/url" or task.get("name") == ORIGINAL_EXPORT:
            continue
        if task.get("status") != "finished":
            continue
        for item in (task.get("result") or {}).get("files") or []:
            found[str(item.get("filename"))[:255]] = (item.get("size"), item.get("url") or "")
    return found


def _output_rows(found: dict[str, tuple[int | None, str]], *, job_id: int | None) -> list[list]:
    """The values of OUTPUT_FIELDS for each file, ready for this database (job_id None: the job
    is told by the statement)."""
    uuid_field = OutputFile._meta.get_field("uuid")
    database = connections[DEFAULT_DB_ALIAS]  # `connection` looks it up again at each use
    now = database.ops.adapt_datetimefield_value(timezone.now())
    return [
        [uuid_field.get_db_prep_save(uuid.uuid4(), database), job_id, filename, size, url, "", "", now]
        for filename, (size, url) in found.items()
    ]


def webhook_receive(*, body: bytes, event: str, job_payload: object) -> str:
    """Apply a verified webhook. Returns what happened, for the response and the log; a job
    object of the wrong shape raises MalformedPayload and records nothing.

    The delivery is recorded in the transaction that applies it: when applying fails, the record
    goes too, and the sender's retry of the same body is applied rather than taken for a
    duplicate. A concurrent copy of the body waits on the record's unique key, then is one."""
    job_payload = job_payload_clean(job_payload, source=body)
    insert, insert_params = _delivery_insert(body=body, event=event, remote_job_id=job_payload["id"])
    if connection.vendor == "postgresql" and _at_once_possible(job_payload):
        return _webhook_receive_at_once(insert, insert_params, job_payload)
    if connection.vendor == "sqlite":
        return _webhook_receive_sqlite(insert_params, job_payload)
    update = _job_update(job_payload)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, insert_params)
        if cursor.fetchone() is None:
            return "duplicate"
        applied = _job_apply_clean(job_payload, update=update)
    return "applied" if applied is not None else "unknown job"


def _delivery_seen(body_sha256: str) -> bool:
    """Whether a body was recorded already: on SQLite, where every writer waits for one lock, a
    replay is told by a read (WAL: no lock) and never queues for it. One that arrives meanwhile is
    still caught by the INSERT's unique key."""
    column = _quoted(WebhookDelivery, "body_sha256")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {column['table']} WHERE {column['body_sha256']} = %s", [body_sha256])
        return cursor.fetchone() is not None


# A finished job exporting more files than this is applied by several statements (_record_outputs).
AT_ONCE_MAX_FILES = 500


def _at_once_possible(payload: dict) -> bool:
    """Whether _webhook_receive_at_once can apply this delivery: what follows an end is queued
    by the same statement only with the database task backend, and a few hundred files at most."""
    from conversions.tasks import notify_owner, store_outputs

    status = _status_of(payload)
    if status not in ConversionJob.TERMINAL:
        return True
    if not (task_rows.uses_rows(notify_owner) and task_rows.uses_rows(store_outputs)):
        return False
    return status != Status.FINISHED or len(_exported(list(payload.get("tasks") or []))) <= AT_ONCE_MAX_FILES


def _webhook_receive_at_once(insert: str, insert_params: dict, job_payload: dict) -> str:
    """On PostgreSQL a delivery is recorded and applied by one statement, a transaction of its
    own: data-modifying WITH queries, the update taking place only when the record did, and what
    follows an end (_job_ended) only when the update did: the files' rows, the task copying them,
    the e-mail when the owner asked for one, and the workers' doorbell (pg_notify, sent when the
    statement commits). One round trip instead of up to seven (BEGIN, INSERT, UPDATE, the files,
    the task, COMMIT, NOTIFY); each costs both sides about as much CPU as the rest of the request.

    Each part's text is written once for each shape of delivery (its status, how many files) and
    takes its values by name, so a delivery costs Python its values, not its SQL."""
    from conversions.tasks import notify_owner, store_outputs

    update, params = _job_update(job_payload, only_if="EXISTS (SELECT 1 FROM recorded)")
    params.update(insert_params)
    job = _job_columns()
    moved_id = f"moved.{job['id']}"
    queries = [f"recorded AS ({insert})", f"moved AS ({update})"]
    queued: list[Task] = []
    status = _status_of(job_payload)
    if status == Status.FINISHED and (rows := _output_rows(_exported(list(job_payload.get("tasks") or [])), job_id=None)):
        files, files_params = _outputs_insert_from(rows, job_id=moved_id, source="moved")
        queries.append(f"files AS ({files})")
        params.update(files_params)
        copy, copy_params = task_rows.insert_from(store_outputs, source="moved", first_arg=moved_id, name="copy")
        queries.append(f"copy AS ({copy})")
        params.update(copy_params)
        queued.append(store_outputs)
    if status in ConversionJob.TERMINAL:
        mail, mail_params = task_rows.insert_from(
            notify_owner, source="moved", first_arg=moved_id, where=f"moved.{job['notify_by_email']}", name="mail"
        )
        queries.append(f"mail AS ({mail})")
        params.update(mail_params)
        queued.append(notify_owner)
    # A prepared statement (ccweb/db/postgresql, unless DATABASE_PREPARE is off): planned once per
    # connection, its values (the body, the payload) never parsed as SQL.
    with connection.prepared_cursor() as cursor:
        cursor.execute(
            f"WITH {', '.join(queries)} SELECT EXISTS (SELECT 1 FROM recorded), "
            f"EXISTS ({_job_lookup_sql(connection.vendor)}){_rings(tuple(task.queue_name for task in queued))}",
            params,
        )
        recorded, known = cursor.fetchone()[:2]
    if not recorded:
        return "duplicate"
    return "applied" if known else "unknown job"


@functools.lru_cache(maxsize=16)
def _rings(queue_names: tuple[str, ...]) -> str:
    """The pg_notify() calls of _webhook_receive_at_once's SELECT, one per queue, each only when
    the job moved; their values written in (psycopg's quoting)."""
    calls = [connection.ops.compose_sql(*wakeup.notify_call(name)) for name in dict.fromkeys(queue_names)]
    return "".join(f", (SELECT {call} FROM moved)" for call in calls)


def _webhook_receive_sqlite(insert_params: dict, job_payload: dict) -> str:
    """On SQLite a delivery is recorded and applied by one statement too: an INSERT into a
    temporary view whose trigger does what _webhook_receive_at_once's WITH queries do (SQLite has
    no data-modifying WITH). One statement is a transaction of its own, and SQLite runs it without
    coming back to Python, so the write lock, which every writer of every process waits for, is
    held for the statement's own work (about 0.2 ms). Through a transaction of several statements
    it was held 2 ms on average under bench/webhooks.py's load, mostly by a thread waiting for the
    other threads of its process to let it run again between two statements; the ingest of one
    gunicorn process then kept the other's waiting, and two processes were no faster than one.
    A replay is told first by a read (_delivery_seen), which takes no lock."""
    from conversions.tasks import notify_owner, store_outputs

    if _delivery_seen(insert_params["body_sha256"]):
        return "duplicate"
    status = _status_of(job_payload)
    changes, movable = _job_changes(job_payload)
    tasks = list(job_payload.get("tasks") or [])
    rows = _output_rows(_exported(tasks), job_id=None) if status == Status.FINISHED else []
    ended = status in ConversionJob.TERMINAL

    def row_id(task: Task, wanted: bool) -> object:
        """The id of the task's row when the statement is to queue it (the database task backend)."""
        return task_rows.fresh_id(task) if wanted and task_rows.uses_rows(task) else None

    values = {
        **insert_params,
        **{name: changes.get(name) for name in SQLITE_APPLIED_FIELDS},
        "input_filename": _input_filename(tasks),
        "movable": json.dumps(movable),
        "outputs": json.dumps([[value for name, value in zip(OUTPUT_FIELDS, row) if name != "job"] for row in rows]),
        "copy_id": row_id(store_outputs, bool(rows)),
        "mail_id": row_id(notify_owner, ended),
        "enqueued_at": connection.ops.adapt_datetimefield_value(timezone.now()),
    }
    with connection.cursor() as cursor:
        _sqlite_apply(
            cursor,
            f"INSERT INTO ccweb_webhook_apply ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})",
            list(values.values()),
        )
        # What the trigger found and did, kept by this connection (no read of the database).
        cursor.execute("SELECT recorded, job_id, notify, moved FROM ccweb_applied")
        recorded, job_id, notify_by_email, moved = cursor.fetchone()
    if not recorded:
        return "duplicate"
    # What follows the move, as _job_ended: queued by the statement (the workers are rung), or now
    # by another task backend. The e-mail only when the owner asked for one.
    for task, wanted in ((store_outputs, bool(rows)), (notify_owner, ended and notify_by_email)):
        if moved and wanted:
            if task_rows.uses_rows(task):
                wakeup.ring_when_committed(task)
            else:
                _enqueue_with_commit(task, job_id)
    return "applied" if job_id is not None else "unknown job"


# The columns of the job the SQLite trigger sets from the delivery (_job_changes; NULL: kept).
SQLITE_APPLIED_FIELDS = ("payload", "status", "percent", "updated_at", "error_message", "error_code", "finished_at")


def _sqlite_apply(cursor: CursorWrapper, sql: str, params: list) -> None:
    """Execute the INSERT into the view of _webhook_receive_sqlite, first making the view and its
    trigger on this connection when they are not there: at its first delivery, or again after a
    rollback of the transaction that made them (temporary objects live as long as their
    connection; made as it opens, they would be in the way of the migrations that rebuild the
    tables they write)."""
    try:
        cursor.execute(sql, params)
    except OperationalError as error:
        if "no such table: ccweb_webhook_apply" not in str(error):
            raise
        for statement in _sqlite_apply_ddl():
            cursor.execute(statement)
        cursor.execute(sql, params)


@functools.cache
def _sqlite_apply_ddl() -> list[str]:
    """CREATE statements of the temporary table `ccweb_applied` (what the WITH queries `recorded`
    and `moved` of the PostgreSQL statement hold, kept by the connection for the read that follows),
    of the view a delivery is inserted into and of its trigger. The trigger holds the write lock
    from its first statement, so what it reads first is still so when it writes: whether the body
    was recorded before; the job and whether it may move (_job_update). Then it records the body;
    moves the job; for an end, writes its files' rows and queues the tasks that follow
    (_job_ended), as task_rows.insert_select_sqlite builds them."""
    from conversions.tasks import notify_owner, store_outputs

    delivery = _quoted(WebhookDelivery, "body_sha256", "event", "remote_job_id", "received_at", "rejected_because",
                       "detail", "body_size", "body")
    job = _job_columns()
    output = _quoted(OutputFile, *OUTPUT_FIELDS)
    given = [name for name in OUTPUT_FIELDS if name != "job"]
    columns = [*DELIVERY_PARAMETERS, *SQLITE_APPLIED_FIELDS, "input_filename", "movable", "outputs", "copy_id",
               "mail_id", "enqueued_at"]
    moved = "FROM ccweb_applied WHERE recorded AND moved"

    def queue(task: Task, row_id: str, condition: str) -> str:
        sql = task_rows.insert_select_sqlite(task, first_arg="job_id", row_id=row_id, enqueued_at="NEW.enqueued_at")
        return f"{sql} {moved} AND {condition};"

    def kept_unless_null(name: str) -> str:
        return f"{job[name]} = COALESCE(NEW.{name}, {job[name]})"

    return [
        "CREATE TEMP TABLE IF NOT EXISTS ccweb_applied (recorded INTEGER, job_id INTEGER, notify INTEGER, moved INTEGER)",
        f"CREATE TEMP VIEW IF NOT EXISTS ccweb_webhook_apply AS SELECT {', '.join(f'NULL AS {c}' for c in columns)}",
        f"""CREATE TEMP TRIGGER IF NOT EXISTS ccweb_webhook_apply INSTEAD OF INSERT ON ccweb_webhook_apply BEGIN
            DELETE FROM ccweb_applied;
            INSERT INTO ccweb_applied (recorded, job_id, notify, moved) SELECT
                NOT EXISTS (SELECT 1 FROM {delivery['table']} WHERE {delivery['body_sha256']} = NEW.body_sha256),
                job.{job['id']}, job.{job['notify_by_email']},
                job.{job['status']} IN (SELECT value FROM json_each(NEW.movable))
                FROM (SELECT 1) LEFT JOIN {job['table']} AS job ON job.{job['id']} = (
                    SELECT {job['id']} FROM {job['table']} WHERE {job['remote_job_id']} = NEW.remote_job_id LIMIT 1);
            INSERT INTO {delivery['table']} ({', '.join(delivery[c] for c in delivery if c != 'table')})
                SELECT NEW.body_sha256, NEW.event, NEW.remote_job_id, NEW.received_at, '', '', NEW.body_size, NEW.body
                FROM ccweb_applied WHERE recorded;
            UPDATE {job['table']} SET
                {', '.join(f"{job[name]} = NEW.{name}" for name in ('payload', 'status', 'percent', 'updated_at'))},
                {', '.join(kept_unless_null(name) for name in ('error_message', 'error_code', 'finished_at'))},
                {job['input_filename']} = CASE WHEN {job['input_filename']} = '' THEN NEW.input_filename
                    ELSE {job['input_filename']} END
                WHERE {job['id']} = (SELECT job_id {moved});
            INSERT INTO {output['table']} ({', '.join(output[name] for name in OUTPUT_FIELDS)})
                SELECT {', '.join('job_id' if name == 'job' else f"json_extract(file.value, '$[{given.index(name)}]')" for name in OUTPUT_FIELDS)}
                FROM ccweb_applied, json_each(NEW.outputs) AS file WHERE recorded AND moved ON CONFLICT DO NOTHING;
            {queue(store_outputs, 'NEW.copy_id', 'NEW.copy_id IS NOT NULL')}
            {queue(notify_owner, 'NEW.mail_id', 'NEW.mail_id IS NOT NULL AND notify')}
        END""",
    ]


@functools.cache
def _output_types(vendor: str) -> list[str]:
    return [OutputFile._meta.get_field(name).db_type(connection) for name in OUTPUT_FIELDS]


def _outputs_insert_from(rows: list[list], *, job_id: str, source: str) -> tuple[str, dict]:
    """The INSERT ... SELECT of the files' rows (_output_rows) for the job `job_id`, a column of
    `source`, a WITH query of the same statement (nothing when it has no row); and its parameters,
    named file<row>_<field>. PostgreSQL: a parameter in a VALUES list is cast to its column's type."""
    params = {f"file{index}_{name}": values[n] for index, values in enumerate(rows) for n, name in _OUTPUT_GIVEN}
    return _outputs_insert_sql(connection.vendor, len(rows), job_id, source), params


# The fields of OUTPUT_FIELDS a file's row gives (the job is the statement's), with their index.
_OUTPUT_GIVEN = tuple((n, name) for n, name in enumerate(OUTPUT_FIELDS) if name != "job")


@functools.lru_cache(maxsize=64)
def _outputs_insert_sql(vendor: str, count: int, job_id: str, source: str) -> str:
    column = _quoted(OutputFile, *OUTPUT_FIELDS)
    types = _output_types(vendor)
    rows = ", ".join(
        f"({', '.join(f'CAST(%(file{index}_{name})s AS {types[n]})' for n, name in _OUTPUT_GIVEN)})"
        for index in range(count)
    )
    selected = [job_id if name == "job" else f"v.v{n}" for n, name in enumerate(OUTPUT_FIELDS)]
    return (
        f"INSERT INTO {column['table']} ({', '.join(column[name] for name in OUTPUT_FIELDS)}) "
        f"SELECT {', '.join(selected)} FROM {source}, (VALUES {rows}) AS v ({', '.join(f'v{n}' for n, _ in _OUTPUT_GIVEN)}) "
        f"ON CONFLICT DO NOTHING"
    )


# The values of a delivery's record that _delivery_insert takes as parameters.
DELIVERY_PARAMETERS = ("body_sha256", "event", "remote_job_id", "received_at", "body_size", "body")


def _delivery_insert(*, body: bytes, event: str, remote_job_id: str) -> tuple[str, dict]:
    """The statement recording a delivery once, returning a row unless it already was (a replay),
    with its body for a replay from the admin unless it is larger than
    CONVERSIONS_WEBHOOK_LOG_BODY_MAX; and its parameters (DELIVERY_PARAMETERS, by name).

    One INSERT ... ON CONFLICT DO NOTHING: the ORM's create() would need a savepoint around it to
    survive the duplicate key, three statements instead of one. SQLite's trigger takes only its
    parameters."""
    kept = body if len(body) <= settings.CONVERSIONS_WEBHOOK_LOG_BODY_MAX else None
    return _delivery_insert_sql(connection.vendor), {
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "event": event.replace("\x00", "")[:32],
        "remote_job_id": remote_job_id[:64],
        "received_at": connection.ops.adapt_datetimefield_value(timezone.now()),
        "body_size": len(body),
        "body": kept,
    }


@functools.cache
def _delivery_insert_sql(vendor: str) -> str:
    fields = ("body_sha256", "event", "remote_job_id", "received_at", "rejected_because", "detail", "body_size", "body")
    column = _quoted(WebhookDelivery, *fields)
    values = ", ".join("''" if name in ("rejected_because", "detail") else f"%({name})s" for name in fields)
    return (
        f"INSERT INTO {column['table']} ({', '.join(column[name] for name in fields)}) "
        f"VALUES ({values}) ON CONFLICT ({column['body_sha256']}) DO NOTHING RETURNING 1"
    )


def webhook_reject(*, reason: str, detail: str, body: bytes | None, size: int | None) -> WebhookDelivery:
    """Log a delivery the webhook refused (WebhookDelivery.Rejection) in one INSERT, with at most
    the first CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES of its body and, when the body names one,
    the job it claims to be about (unverified: for finding it in the log, nothing else)."""
    kept = body[: settings.CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES] if body else None
    return WebhookDelivery.objects.create(
        body_sha256=None,
        event=_claimed(body, "event")[:32],
        remote_job_id=_claimed(body, "id")[:64],
        rejected_because=WebhookDelivery.Rejection(reason),
        detail=detail.replace("\x00", "")[:500],
        body_size=size,
        body=kept or None,
    )


# The parts of a webhook body a rejection is filed under: `"event":"job.failed"`, the job's `"id":"…"`.
CLAIMED = {
    "event": re.compile(rb'"event"\s*:\s*"([A-Za-z0-9._-]{1,32})"'),
    "id": re.compile(rb'"id"\s*:\s*"([A-Za-z0-9-]{1,64})"'),
}


def _claimed(body: bytes | None, name: str) -> str:
    """What a rejected body says of itself, found by a pattern over its first bytes: it may be
    anything, so it is neither parsed whole nor believed."""
    if not body:
        return ""
    found = CLAIMED[name].search(body[: settings.CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES])
    return found.group(1).decode() if found else ""


def webhook_replay(*, delivery: WebhookDelivery) -> ConversionJob:
    """Apply a logged delivery's body again (staff, from the admin): for one that came before its
    job was known here, or was applied wrongly. As for any delivery, nothing moves a job
    backwards. Returns the job; raises ConversionError saying why it could not."""
    if delivery.rejected_because:
        raise ConversionError("It was rejected, so its body was neither trusted nor kept whole.")
    if not delivery.body:
        raise ConversionError("Its body was not kept (larger than the log keeps, or too old).")
    try:
        _, job_payload = webhook_body_parse(bytes(delivery.body))
        job = job_apply_payload(payload=job_payload)
    except MalformedPayload as error:
        raise ConversionError(f"Its body cannot be applied: {error}.") from error
    if job is None:
        raise ConversionError(f"No job here has the API's id {delivery.remote_job_id or '(none)'}.")
    return job


def webhook_body_parse(body: bytes) -> tuple[str, object]:
    """The event name and the job object of a webhook body, not yet checked (job_payload_clean);
    MalformedPayload when it is not a JSON object with an event name."""
    try:
        data = _WEBHOOK_JSON.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MalformedPayload(str(error)) from error
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise MalformedPayload("the body is not an object with an event name")
    return data["event"], data.get("job")


def _no_constants(name: str) -> float:
    raise MalformedPayload(f"{name} is not JSON")


# json.loads with a decoder made once: NaN and Infinity are not JSON, and no database stores them
# in a JSON column.
_WEBHOOK_JSON = json.JSONDecoder(parse_constant=_no_constants)


def job_refresh(*, job: ConversionJob, client: Client | None = None) -> ConversionJob:
    """Ask the API for the job's state now (the poller's, the admin's and a watching page's way in).

    When the API asks to be left alone for a while (Retry-After), the job keeps until when in
    poll_after, and the poller does not ask again before then."""
    try:
        payload = (client or get_client()).show_job(job.remote_job_id)
    except NotFound:
        with transaction.atomic():
            job = ConversionJob.objects.select_for_update().get(pk=job.pk)
            if job.is_running:
                job.status = Status.ERROR
                job.error_message = "The conversion service no longer knows this job. Please convert the file again."
                job.error_code = "NOT_FOUND"
                job.finished_at = timezone.now()
                job.save()
        return job
    except ApiError as error:
        if error.retry_after:
            # Beyond a day the poller has given up on the job anyway (and a huge value overflows).
            wait = timedelta(seconds=min(error.retry_after, POLL_AFTER_CAP.total_seconds()))
            ConversionJob.objects.filter(pk=job.pk).update(poll_after=timezone.now() + wait)
        raise
    try:
        return job_apply_payload(payload=payload) or job
    except MalformedPayload as error:
        logger.error("job %s: the API answered a job object ccweb cannot read: %s", job.uuid, error)
        raise ApiError("The conversion service answered in a form ccweb does not understand.") from error


def _live_client() -> Client:
    return Client(api_config(), max_retries=0, timeout=LIVE_REFRESH_TIMEOUT)


def _live_refresh_interval(job: ConversionJob) -> timedelta:
    """How old a running job's data may be before a watching page asks the API: a few seconds
    while the job is young, up to LIVE_REFRESH_MAX for one nobody has given a file for hours."""
    age = timezone.now() - job.created_at
    return min(LIVE_REFRESH_MAX, max(LIVE_REFRESH_MIN, age / LIVE_REFRESH_AGE_RATIO))


def jobs_refresh_stale(*, jobs: Iterable[ConversionJob], limit: int, every: timedelta | None = None) -> int:
    """Bring up to `limit` running jobs that pages are watching up to date with the API, the
    least recently changed first. Each job is asked about at most once per `every` (by default
    its age-based interval), whichever page, tab or process sharing the cache watches it.
    Returns how many were asked.

    Not "changed recently" but "asked recently" decides: a job waiting for its file changes
    nothing here when the file reaches the API. API trouble leaves pages showing what was
    known; the poller keeps going regardless."""
    running = sorted((job for job in jobs if job.is_running and job.remote_job_id), key=lambda job: job.updated_at)
    now = timezone.now()
    client = None
    asked = 0
    for job in running:
        if asked >= limit:
            break
        if job.poll_after and job.poll_after > now:
            continue  # the API asked not to be asked before then
        interval = every or _live_refresh_interval(job)
        if not cache.add(f"conversions:live-refresh:{job.pk}", True, interval.total_seconds()):
            continue  # asked a moment ago
        client = client or _live_client()
        asked += 1
        try:
            job_refresh(job=job, client=client)
        except ApiError as error:
            logger.info("job %s: could not refresh it for a page: %r", job.uuid, error)
            break  # the API is slow or down: the page does not wait for the others too
    return asked


def _upload_waits(payload: dict) -> bool:
    return any(
        task.get("operation") == "import/upload" and task.get("status") == "waiting"
        for task in payload.get("tasks") or []
    )


def _upload_refusal_sentence(code: str) -> str:
    if code == "FILE_TOO_LARGE":
        limit = filesizeformat(settings.CONVERSIONS_MAX_UPLOAD_SIZE)
        return (
            f"The file was not accepted: it is larger than {limit}, the most a file may have here. "
            "Start a new conversion with a smaller file."
        )
    if code == "INVALID_SIGNATURE":
        return "The file was not accepted because the upload form had expired. Start a new conversion."
    return "The conversion service did not accept the file. Start a new conversion and try again."


def job_upload_refused(*, job: ConversionJob, code: str) -> ConversionJob:
    """The API sent the browser back without the file it posted (too large, form expired...).

    What the browser says is only believed once the API confirms that the job still waits for
    its file: then the job ends here, in words, its start is given back to the daily quota (it
    converted nothing), and the API's job is cancelled. A refusal that is stale by now (a form
    posted again after the file arrived) changes nothing."""
    if not job.is_running or not job.remote_job_id:
        return job
    client = _live_client()
    try:
        payload = client.show_job(job.remote_job_id)
    except ApiError as error:
        logger.warning("job %s: could not check a refused upload: %r", job.uuid, error)
        return job
    if not _upload_waits(payload):
        return job
    code = code if UPLOAD_ERROR_CODE.fullmatch(code) else "UPLOAD_REFUSED"
    with transaction.atomic():
        job = ConversionJob.objects.select_for_update().get(pk=job.pk)
        if not job.is_running:
            return job
        job.status = Status.ERROR
        job.error_message = _upload_refusal_sentence(code)
        job.error_code = code
        job.finished_at = timezone.now()
        job.save()
        _quota_give_back(user=job.user, day=timezone.localdate(job.created_at))
    try:
        for task in payload.get("tasks") or []:
            if task.get("status") in ("waiting", "processing"):
                try:
                    client.cancel_task(task["id"])
                except (InvalidData, NotFound):
                    pass  # it ended meanwhile
        # The tasks as they ended, for the job page; the job itself stays as decided above.
        job.payload = job_payload_clean(client.show_job(job.remote_job_id))
        job.save(update_fields=["payload", "updated_at"])
    except (ApiError, MalformedPayload) as error:
        logger.warning("job %s: could not cancel it at the API after a refused upload: %r", job.uuid, error)
    return job


def _output_fetch(output: OutputFile) -> None:
    """Download one converted file from the API's export URL into our storage, with its thumbnail;
    sets both on `output` without saving it."""
    with TemporaryFile() as tmp:
        get_client().download(output.remote_url, tmp)
        tmp.seek(0)
        output.file.save(output.filename, File(tmp), save=False)
        tmp.seek(0)
        preview = thumbnail_png(tmp, output.filename)
    if preview:
        output.thumbnail.save(f"{output.uuid}.png", ContentFile(preview), save=False)


def output_store(*, output: OutputFile) -> bool:
    """Copy one converted file from the API's export URL into our storage (once)."""
    if output.file or not output.remote_url:
        return False
    _output_fetch(output)
    OutputFile.objects.filter(pk=output.pk, file="").update(file=output.file.name, thumbnail=output.thumbnail.name or "")
    # A row of the dashboard is re-rendered when its job changes: the thumbnail is such a change.
    ConversionJob.objects.filter(pk=output.job_id).update(updated_at=timezone.now())
    return True


def job_outputs_copy_again(*, job: ConversionJob) -> int:
    """Copy the job's files from the API into our storage again (staff, from the admin), for
    copies lost or damaged in storage or never made. A new copy replaces the old one only once it
    is downloaded whole: when the API no longer offers a file (it keeps them 24 hours), the old copy
    stays. Returns how many files were copied."""
    offered = [output for output in job.files.all() if output.remote_url]
    if not offered:
        raise ConversionError("The conversion service offers none of its files any more; the stored copies were kept.")
    for output in offered:
        old = [stored.name for stored in (output.file, output.thumbnail) if stored]
        output.file, output.thumbnail = "", ""
        try:
            _output_fetch(output)
        except ApiError as error:
            logger.warning("file %s: could not be copied again: %r", output.uuid, error)
            if error.retryable:
                raise ConversionError(
                    "The conversion service cannot be reached right now; the stored copies were kept. "
                    "Try again in a minute."
                ) from error
            raise ConversionError(
                "The conversion service no longer offers its files (it keeps them 24 hours); "
                "the stored copies were kept."
            ) from error
        OutputFile.objects.filter(pk=output.pk).update(file=output.file.name, thumbnail=output.thumbnail.name or "")
        for name in old:
            if name not in (output.file.name, output.thumbnail.name):
                output.file.storage.delete(name)
    ConversionJob.objects.filter(pk=job.pk).update(updated_at=timezone.now())
    return len(offered)


def job_notify_owner(*, job_id: int) -> bool:
    """Tell the owner by e-mail that their conversion ended; at most once per job."""
    with transaction.atomic():
        job = ConversionJob.objects.select_for_update().select_related("user").filter(pk=job_id).first()
        if job is None or not job.notify_by_email or job.notified_at or job.is_running or not job.user.email:
            return False
        # Marked before sending: a second run of the task (a retry) sends nothing.
        ConversionJob.objects.filter(pk=job.pk).update(notified_at=timezone.now())
    name = job.input_filename or "your file"
    link = settings.PUBLIC_URL + job.get_absolute_url()
    if job.status == Status.FINISHED:
        subject = f"Converted: {name} → {job.output_format.upper()}"
        body = f"Your conversion of {name} to {job.output_format.upper()} is done.\n\nDownload it here: {link}\n"
    else:
        subject = f"Conversion failed: {name}"
        body = f"Your conversion of {name} to {job.output_format.upper()} failed.\n\n{job.error_message}\n\nDetails: {link}\n"
    send_mail(subject, body, None, [job.user.email])
    return True


def preset_save(*, user: AbstractBaseUser, name: str, output_format: str, options: dict) -> Preset:
    """Save (or overwrite) the user's preset of that name."""
    preset, _ = Preset.objects.update_or_create(
        user=user, name=name.strip(), defaults={"output_format": output_format, "options": options}
    )
    return preset
