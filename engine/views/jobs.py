"""/v2/jobs: create, list, show, delete."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse

from engine import maintenance, services
from engine.auth import json_body
from engine.models import Job
from engine.ratelimit import rate_limited
from engine.serializers import (
    data_response,
    invalid_data,
    job_to_api,
    paginated_response,
    parse_include,
)
from engine.validation import ValidationFailed, filter_value, validate_job


def get_job(job_id: str) -> Job:
    try:
        return Job.objects.get(pk=uuid.UUID(str(job_id)))
    except (ValueError, Job.DoesNotExist):
        raise Http404 from None


def create_job(request: HttpRequest) -> Job | HttpResponse:
    """The job from the request body, or the 422 that explains what is wrong with it."""
    try:
        specs, tag, webhook_url = validate_job(json_body(request))
    except ValidationFailed as error:
        return invalid_data(error.errors)
    job = services.job_create(specs=specs, tag=tag, webhook_url=webhook_url)
    maintenance.ensure_scheduled()
    return job


@rate_limited
def job_create(request: HttpRequest) -> HttpResponse:
    job = create_job(request)
    if isinstance(job, HttpResponse):
        return job
    return data_response(job_to_api(job), status=201)


def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.order_by("-created_at")
    if status := filter_value(request.GET, "status"):
        jobs = jobs.filter(status=status)
    if tag := filter_value(request.GET, "tag"):
        jobs = jobs.filter(tag=tag)
    include_tasks = "tasks" in parse_include(request)
    if include_tasks:
        jobs = jobs.prefetch_related("tasks")
    return paginated_response(
        request,
        jobs,
        "jobs",
        lambda job: job_to_api(
            job, include_tasks=include_tasks, tasks=list(job.tasks.all()) if include_tasks else None
        ),
    )


def job_show(request: HttpRequest, job_id: str) -> HttpResponse:
    return data_response(job_to_api(get_job(job_id)))


def job_delete(request: HttpRequest, job_id: str) -> HttpResponse:
    services.job_delete(job=get_job(job_id))
    return HttpResponse(status=204)
