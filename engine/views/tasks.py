"""/v2/tasks and /v2/{operation}: standalone tasks, show, list, cancel, retry, delete."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from engine import maintenance, services
from engine.auth import endpoint, json_body, unknown_route
from engine.models import Task
from engine.ratelimit import rate_limited
from engine.serializers import (
    data_response,
    invalid_data,
    paginated_response,
    parse_include,
    task_to_api,
)
from engine.validation import ValidationFailed, filter_value, supported_operations


def get_task(task_id: str) -> Task:
    try:
        return Task.objects.select_related("job").get(pk=uuid.UUID(str(task_id)))
    except (ValueError, Task.DoesNotExist):
        raise Http404 from None


def task_show(request: HttpRequest, task_id: str) -> HttpResponse:
    return data_response(task_to_api(get_task(task_id), include=parse_include(request)))


def task_list(request: HttpRequest) -> HttpResponse:
    tasks = Task.objects.order_by("-created_at")
    if job_id := filter_value(request.GET, "job_id"):
        try:
            tasks = tasks.filter(job_id=uuid.UUID(job_id))
        except ValueError:
            tasks = tasks.none()
    if status := filter_value(request.GET, "status"):
        tasks = tasks.filter(status=status)
    if operation := filter_value(request.GET, "operation"):
        tasks = tasks.filter(operation=operation)
    include = parse_include(request)
    return paginated_response(request, tasks, "tasks", lambda task: task_to_api(task, include=include))


@rate_limited
def task_create(request: HttpRequest, operation: str) -> HttpResponse:
    try:
        task = services.task_create(operation=operation, payload=json_body(request))
    except ValidationFailed as error:
        return invalid_data(error.errors)
    maintenance.ensure_scheduled()
    return data_response(task_to_api(task), status=201)


def task_cancel(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        task = services.task_cancel(task=get_task(task_id))
    except services.NotAllowed as error:
        return invalid_data(error.errors)
    return data_response(task_to_api(task))


@rate_limited
def task_retry(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        task = services.task_retry(task=get_task(task_id))
    except services.NotAllowed as error:
        return invalid_data(error.errors)
    return data_response(task_to_api(task), status=201)


def task_delete(request: HttpRequest, task_id: str) -> HttpResponse:
    services.task_delete(task=get_task(task_id))
    return HttpResponse(status=204)


_create_endpoint = endpoint(POST=task_create)


@csrf_exempt
def operation_route(request: HttpRequest, operation: str) -> HttpResponse:
    """/v2/<operation>: a task create for the operations the engine runs, a 404 for anything else."""
    if operation not in supported_operations():
        return unknown_route(request)
    return _create_endpoint(request, operation=operation)
