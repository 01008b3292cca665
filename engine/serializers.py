"""API v2 shapes: jobs, tasks and lists as CloudConvert serialises them, and the JSON responses.

Byte-level details matter here (PROTOCOL.md §10): the Java SDK strips the first 8 characters of a
single-object body, so it must start with `{"data":` with no whitespace; every JSON answer carries
`Content-Type: application/json`; timestamps have an explicit `+00:00` offset.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from engine.models import Job, Task, Webhook
from engine.validation import public_payload


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_response(body: dict, *, status: int = 200) -> HttpResponse:
    # An unpaired surrogate (from a client's own JSON, echoed in an error) cannot be UTF-8: it is
    # written as its JSON escape (\ud800), which every client reads back as it sent it.
    content = dumps(body).encode("utf-8", "backslashreplace")
    response = HttpResponse(content, status=status, content_type="application/json")
    response["Cache-Control"] = "no-cache, private"
    return response


def data_response(data: Any, *, status: int = 200) -> HttpResponse:
    # A one-key dict literal keeps "data" first, which the Java SDK relies on.
    return json_response({"data": data}, status=status)


def error_response(
    message: str, code: str, *, status: int, errors: dict[str, list[str]] | None = None
) -> HttpResponse:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return json_response(body, status=status)


def invalid_data(errors: dict[str, list[str]]) -> HttpResponse:
    return error_response("The given data was invalid.", "INVALID_DATA", status=422, errors=errors)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def api_url(path: str) -> str:
    # Read per call: the engine may be reached under a URL only known at runtime (tests, proxies).
    return f"{settings.ENGINE_URL}/v2/{path}"


def parse_include(request: HttpRequest) -> set[str]:
    return {part.strip() for part in request.GET.get("include", "").split(",") if part.strip()}


def task_to_api(task: Task, *, include: Iterable[str] = ()) -> dict:
    include = set(include)
    data: dict[str, Any] = {"id": str(task.id)}
    if task.job_id is not None or task.name:
        data["name"] = task.name
    data.update(
        {
            "job_id": str(task.job_id) if task.job_id else None,
            "operation": task.operation,
            "status": task.status,
            "credits": task.credits,
            "code": task.code,
            "message": task.message,
            "percent": task.percent,
            "result": task.result,
            "created_at": iso(task.created_at),
            "started_at": iso(task.started_at),
            "ended_at": iso(task.ended_at),
            "retry_of_task_id": str(task.retry_of_id) if task.retry_of_id else None,
            "copy_of_task_id": str(task.copy_of_id) if task.copy_of_id else None,
            "depends_on_task_ids": list(task.depends_on),
            "engine": task.engine,
            "engine_version": task.engine_version,
        }
    )
    if "payload" in include:
        data["payload"] = public_payload(task.payload)
    if "depends_on_tasks" in include:
        inputs = {str(t.id): t for t in Task.objects.filter(pk__in=task.depends_on)}
        data["depends_on_tasks"] = [task_to_api(inputs[i]) for i in task.depends_on if i in inputs]
    if "retries" in include:
        # Only on request: the .NET SDK types `retries` as a string and would choke on an array.
        data["retries"] = [task_to_api(t) for t in task.retries.all()]
    if "job" in include and task.job_id:
        data["job"] = job_to_api(task.job, include_tasks=False)
    data["links"] = {"self": api_url(f"tasks/{task.id}")}
    return data


def job_to_api(job: Job, *, include_tasks: bool = True, tasks: Sequence[Task] | None = None) -> dict:
    data: dict[str, Any] = {
        "id": str(job.id),
        "tag": job.tag,
        "status": job.status,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
    }
    if include_tasks:
        if tasks is None:
            tasks = list(job.tasks.order_by("created_at", "name"))
        data["tasks"] = [task_to_api(task) for task in tasks]
    data["links"] = {"self": api_url(f"jobs/{job.id}")}
    return data


def webhook_to_api(webhook: Webhook) -> dict:
    return {
        "id": str(webhook.id),
        "url": webhook.url,
        "events": list(webhook.events),
        "signing_secret": webhook.signing_secret,
        "disabled": webhook.disabled,
        "failing": webhook.failing,
        "created_at": iso(webhook.created_at),
        "updated_at": iso(webhook.updated_at),
        "links": {"self": api_url(f"webhooks/{webhook.id}")},
    }


MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
# Pages past this are empty anyway; the cap keeps the OFFSET within what databases take (a
# 64-bit integer), so ?page=99999999999999999999 is an empty page rather than a database error.
MAX_PAGE = 1_000_000_000


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default


def paginated_response(request: HttpRequest, queryset: Any, path: str, render: Any) -> HttpResponse:
    """Laravel's "simple paginator": no total, `last` is null, follow `links.next` until null."""
    page = min(_positive_int(request.GET.get("page"), 1), MAX_PAGE)
    per_page = min(_positive_int(request.GET.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
    offset = (page - 1) * per_page
    # One extra row tells whether a next page exists without counting the whole table.
    rows = list(queryset[offset : offset + per_page + 1])
    has_next = len(rows) > per_page
    rows = rows[:per_page]
    base = api_url(path)
    kept = [(key, value) for key, value in request.GET.items() if key != "page"]

    def page_url(number: int) -> str:
        return f"{base}?{urlencode([*kept, ('page', str(number))])}"

    body = {
        "data": [render(row) for row in rows],
        "links": {
            "first": page_url(1),
            "last": None,
            "prev": page_url(page - 1) if page > 1 else None,
            "next": page_url(page + 1) if has_next else None,
        },
        "meta": {
            "current_page": page,
            "from": offset + 1 if rows else None,
            "path": base,
            "per_page": per_page,
            "to": offset + len(rows) if rows else None,
        },
    }
    return json_response(body)
