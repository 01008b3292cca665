"""Writes: starting a conversion, applying what the API says about it, storing its outputs.

Views, the webhook, the poller and admin actions all go through these functions, so a job
payload is applied the same way whichever way it arrived."""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from conversions.cloudconvert.client import get_client
from conversions.cloudconvert.errors import ApiError, InvalidData, NotFound, Unauthenticated
from conversions.models import ConversionJob, OutputFile, WebhookDelivery

logger = logging.getLogger(__name__)

Status = ConversionJob.Status


class ConversionError(Exception):
    """Something the user must be told, as a sentence saying what to do."""


def api_error_sentence(error: ApiError) -> str:
    """What a user should read when the API refuses or cannot be reached."""
    if isinstance(error, Unauthenticated):
        return "ccweb could not sign in to the conversion service. Please tell an administrator."
    if isinstance(error, InvalidData):
        fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
        return f"The conversion service refused these settings ({fields or error.message}). Change them and try again."
    if error.retryable:
        return "The conversion service is busy or cannot be reached right now. Please try again in a minute."
    return "The conversion service could not start this conversion. Please try again."


def webhook_url() -> str:
    return settings.PUBLIC_URL + reverse("conversions:webhook")


def job_start(
    *,
    user: AbstractBaseUser,
    output_format: str,
    options: dict,
    input_filename: str = "",
    redirect_after_upload: bool = True,
) -> ConversionJob:
    """Create the job at the API: an upload waiting for the browser, a convert, an export.

    With redirect_after_upload, a browser's plain form post comes back to the job page."""
    job = ConversionJob.objects.create(
        user=user, output_format=output_format, options=options, input_filename=input_filename
    )
    job.tag = str(job.uuid)
    upload: dict = {"operation": "import/upload"}
    if redirect_after_upload:
        upload["redirect"] = settings.PUBLIC_URL + job.get_absolute_url()
    tasks = {
        "upload": upload,
        "convert": {"operation": "convert", "input": "upload", "output_format": output_format, **options},
        "export": {"operation": "export/url", "input": "convert"},
    }
    try:
        payload = get_client().create_job(tasks=tasks, tag=job.tag, webhook_url=webhook_url())
    except ApiError as error:
        logger.warning("job %s: the API refused to create it: %r", job.uuid, error)
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

    Idempotent; unknown jobs are ignored; a status never moves backwards."""
    remote_id = str(payload.get("id") or "")
    if not remote_id:
        return None
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
        job.save()
        created = _record_outputs(job, tasks) if new_status == Status.FINISHED else 0
    if created:
        from conversions.tasks import store_outputs

        transaction.on_commit(lambda: store_outputs.enqueue(job.id))
    return job


def _percent(tasks: list[dict], status: str) -> int:
    if status == Status.FINISHED:
        return 100
    work = [t for t in tasks if t.get("operation") not in ("import/upload", "export/url")]
    if not work:
        return 0
    progress = {"finished": lambda t: 100, "processing": lambda t: int(t.get("percent") or 0)}
    done = sum(progress.get(t.get("status"), lambda t: 0)(t) for t in work)
    return min(99, done // len(work))


def _input_filename(tasks: list[dict]) -> str:
    for task in tasks:
        if task.get("operation", "").startswith("import/") and task.get("status") == "finished":
            files = (task.get("result") or {}).get("files") or []
            if files:
                return str(files[0].get("filename") or "")[:255]
    return ""


def _record_outputs(job: ConversionJob, tasks: list[dict]) -> int:
    created = 0
    for task in tasks:
        if task.get("operation") != "export/url" or task.get("status") != "finished":
            continue
        for item in (task.get("result") or {}).get("files") or []:
            _, was_created = OutputFile.objects.update_or_create(
                job=job,
                filename=str(item.get("filename"))[:255],
                defaults={"size": item.get("size"), "remote_url": item.get("url") or ""},
            )
            created += was_created
    return created


def webhook_receive(*, body: bytes, event: str, job_payload: dict) -> str:
    """Apply a verified webhook. Returns what happened, for the response and the log."""
    digest = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                body_sha256=digest, event=event[:32], remote_job_id=str(job_payload.get("id") or "")[:64]
            )
    except IntegrityError:
        return "duplicate"
    job = job_apply_payload(payload=job_payload)
    return "applied" if job else "unknown job"


def job_refresh(*, job: ConversionJob) -> ConversionJob:
    """Ask the API for the job's state now (the poller's and the admin's way in)."""
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
    return job_apply_payload(payload=payload) or job


def output_store(*, output: OutputFile) -> bool:
    """Copy one converted file from the API's export URL into our storage (once)."""
    if output.file or not output.remote_url:
        return False
    from tempfile import TemporaryFile

    with TemporaryFile() as tmp:
        get_client().download(output.remote_url, tmp)
        tmp.seek(0)
        output.file.save(output.filename, File(tmp), save=False)
    OutputFile.objects.filter(pk=output.pk, file="").update(file=output.file.name)
    return True
