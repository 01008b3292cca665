"""The blocking ("sync") API: the same routes under /sync/v2, answering once the job or task ended.

The request thread polls the database: the work itself runs in the worker, never here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from engine.auth import json_body
from engine.models import Job, Task
from engine.ratelimit import rate_limited
from engine.serializers import (
    data_response,
    error_response,
    job_to_api,
    parse_include,
    task_to_api,
)
from engine.views.jobs import create_job, get_job
from engine.views.tasks import get_task

DEFAULT_SYNC_TIMEOUT = 300.0


def _wait(is_done: Callable[[], bool]) -> None:
    """Poll until is_done() or ENGINE_SYNC_TIMEOUT; then the caller answers with the current state."""
    deadline = time.monotonic() + float(getattr(settings, "ENGINE_SYNC_TIMEOUT", DEFAULT_SYNC_TIMEOUT))
    interval = 0.1
    while not is_done() and time.monotonic() < deadline:
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)


def _wait_job(job: Job) -> Job:
    _wait(lambda: Job.objects.filter(pk=job.pk, status__in=[Job.Status.FINISHED, Job.Status.ERROR]).exists())
    return get_job(str(job.pk))


def _export_redirect(job: Job) -> HttpResponse:
    """302 to the first file of the job's finished export/url task (`redirect=true`)."""
    for task in job.tasks.filter(operation="export/url", status=Task.Status.FINISHED).order_by("created_at"):
        files = (task.result or {}).get("files") or []
        if files and files[0].get("url"):
            return HttpResponseRedirect(files[0]["url"])
    return error_response(
        "The job has no exported file to redirect to; add an export/url task or check the job's errors.",
        "NO_EXPORT",
        status=422,
    )


def _wants_redirect(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def job_wait(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _wait_job(get_job(job_id))
    if _wants_redirect(request.GET.get("redirect")):
        return _export_redirect(job)
    return data_response(job_to_api(job))


def task_wait(request: HttpRequest, task_id: str) -> HttpResponse:
    task = get_task(task_id)
    _wait(
        lambda: Task.objects.filter(pk=task.pk, status__in=[Task.Status.FINISHED, Task.Status.ERROR]).exists()
    )
    return data_response(task_to_api(get_task(task_id), include=parse_include(request)))


@rate_limited
def job_create_wait(request: HttpRequest) -> HttpResponse:
    job = create_job(request)
    if isinstance(job, HttpResponse):
        return job
    job = _wait_job(job)
    if _wants_redirect(json_body(request).get("redirect")):
        return _export_redirect(job)
    return data_response(job_to_api(job), status=201)
