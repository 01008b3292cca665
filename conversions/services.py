"""Writes: starting a conversion, applying what the API says about it, storing its outputs.

Views, the webhook, the poller and admin actions all go through these functions, so a job
payload is applied the same way whichever way it arrived."""

import hashlib
import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile, File
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from conversions import selectors
from conversions.catalogue import input_format_of
from conversions.cloudconvert.client import api_config, get_client
from conversions.cloudconvert.errors import ApiError, InvalidData, NotFound, Unauthenticated
from conversions.models import ConversionJob, DailyJobCount, OutputFile, Preset, Team, WebhookDelivery
from conversions.payloads import MalformedPayload, job_payload_clean
from conversions.thumbnails import thumbnail_png

logger = logging.getLogger(__name__)

Status = ConversionJob.Status
ORIGINAL_EXPORT = ConversionJob.ORIGINAL_EXPORT
POLL_AFTER_CAP = timedelta(hours=24)


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


def _quota_take(*, user: AbstractBaseUser, day: date) -> None:
    """Count one more job started today, refusing beyond the user's daily quota
    (CONVERSIONS_DAILY_JOB_QUOTA, 0: none). Call inside a transaction: the user's counter row
    stays locked until it commits, so parallel starts wait for each other instead of all reading
    the same count (SQLite's IMMEDIATE transactions serialise them just the same)."""
    counter, _ = DailyJobCount.objects.select_for_update().get_or_create(user=user, day=day)
    quota = settings.CONVERSIONS_DAILY_JOB_QUOTA
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
        # Still shared with the team, unless the owner has left it since.
        team=selectors.teams_of(job.user).filter(pk=job.team_id).first(),
    )


def job_share(*, job: ConversionJob, team: Team | None) -> ConversionJob:
    """Let one of the owner's teams see the job and its files, or (None) nobody but the owner.
    The team it is shared with now may stay, even if the owner has left it."""
    if team is not None and not selectors.teams_for_sharing(job).filter(pk=team.pk).exists():
        raise ConversionError("You can only share with a team you belong to.")
    job.team = team
    job.save(update_fields=["team", "updated_at"])
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


def job_delete(*, job: ConversionJob) -> None:
    """Delete the job here and at the API (its files there too)."""
    if job.remote_job_id:
        try:
            get_client().delete_job(job.remote_job_id)
        except NotFound:
            pass
    for output in job.files.all():
        for stored in (output.file, output.thumbnail):
            if stored:
                stored.delete(save=False)
    job.delete()


def _status_of(payload: dict) -> str:
    status = payload.get("status")
    if status in Status.values:
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
    shape raises MalformedPayload before anything is written."""
    payload = job_payload_clean(payload)
    remote_id = payload["id"]
    with transaction.atomic():
        job = ConversionJob.objects.select_for_update().filter(remote_job_id=remote_id).first()
        if job is None:
            return None
        new_status = _status_of(payload)
        if job.status in ConversionJob.TERMINAL or (
            ConversionJob.STATUS_RANK[new_status] < ConversionJob.STATUS_RANK[job.status]
        ):
            return job
        tasks = list(payload.get("tasks") or [])
        job.payload = payload
        job.status = new_status
        job.percent = _percent(tasks, new_status)
        if not job.input_filename:
            job.input_filename = _input_filename(tasks)
        if new_status == Status.ERROR:
            job.error_message, job.error_code = _failure_sentence(tasks)
        if new_status in ConversionJob.TERMINAL:
            job.finished_at = timezone.now()
            if job.notify_by_email:
                from conversions.tasks import notify_owner

                transaction.on_commit(lambda: notify_owner.enqueue(job.id))
        job.save()
        created = _record_outputs(job, tasks) if new_status == Status.FINISHED else 0
    if created:
        from conversions.tasks import store_outputs

        transaction.on_commit(lambda: store_outputs.enqueue(job.id))
    return job


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


def _record_outputs(job: ConversionJob, tasks: list[dict]) -> int:
    """Our rows for the job's exported files, in a few queries however many files (a job may
    export thousands of pages)."""
    found: dict[str, tuple[int | None, str]] = {}
    for task in tasks:
        if task.get("operation") != "export/url" or task.get("name") == ORIGINAL_EXPORT:
            continue
        if task.get("status") != "finished":
            continue
        for item in (task.get("result") or {}).get("files") or []:
            found[str(item.get("filename"))[:255]] = (item.get("size"), item.get("url") or "")
    known = {output.filename: output for output in job.files.all()}
    changed = []
    for filename, (size, url) in found.items():
        output = known.get(filename)
        if output is not None and (output.size, output.remote_url) != (size, url):
            output.size, output.remote_url = size, url
            changed.append(output)
    OutputFile.objects.bulk_update(changed, ["size", "remote_url"], batch_size=500)
    new = [
        OutputFile(job=job, filename=filename, size=size, remote_url=url)
        for filename, (size, url) in found.items()
        if filename not in known
    ]
    OutputFile.objects.bulk_create(new, batch_size=500)
    return len(new)


def webhook_receive(*, body: bytes, event: str, job_payload: object) -> str:
    """Apply a verified webhook. Returns what happened, for the response and the log; a job
    object of the wrong shape raises MalformedPayload and records nothing.

    The delivery is recorded in the transaction that applies it: when applying fails, the record
    goes too, and the sender's retry of the same body is applied rather than taken for a
    duplicate. A concurrent copy of the body waits on the record's unique key, then is one."""
    job_payload = job_payload_clean(job_payload)
    digest = hashlib.sha256(body).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(
                    body_sha256=digest, event=event.replace("\x00", "")[:32], remote_job_id=job_payload["id"][:64]
                )
        except IntegrityError:
            return "duplicate"
        job = job_apply_payload(payload=job_payload)
    return "applied" if job else "unknown job"


def job_refresh(*, job: ConversionJob) -> ConversionJob:
    """Ask the API for the job's state now (the poller's and the admin's way in).

    When the API asks to be left alone for a while (Retry-After), the job keeps until when in
    poll_after, and the poller does not ask again before then."""
    try:
        payload = get_client().show_job(job.remote_job_id)
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


def output_store(*, output: OutputFile) -> bool:
    """Copy one converted file from the API's export URL into our storage (once)."""
    if output.file or not output.remote_url:
        return False
    from tempfile import TemporaryFile

    with TemporaryFile() as tmp:
        get_client().download(output.remote_url, tmp)
        tmp.seek(0)
        output.file.save(output.filename, File(tmp), save=False)
        tmp.seek(0)
        preview = thumbnail_png(tmp, output.filename)
    if preview:
        output.thumbnail.save(f"{output.uuid}.png", ContentFile(preview), save=False)
    OutputFile.objects.filter(pk=output.pk, file="").update(file=output.file.name, thumbnail=output.thumbnail.name or "")
    # A row of the dashboard is re-rendered when its job changes: the thumbnail is such a change.
    ConversionJob.objects.filter(pk=output.job_id).update(updated_at=timezone.now())
    return True


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
