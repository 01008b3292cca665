"""429 on job and task creation past ENGINE_RATE_LIMIT creates per minute (0 disables it).

The count is read from the rows created in the last 60 seconds, so every web process agrees
without a shared cache. Like CloudConvert, creates carry X-RateLimit-Limit / -Remaining, and a
429 carries Retry-After (seconds until the oldest create leaves the window).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from engine.models import Job, Task
from engine.serializers import error_response

WINDOW = timedelta(minutes=1)
DEFAULT_LIMIT = 500


def _usage() -> tuple[int, Any]:
    """Creates in the window (jobs, and tasks created on their own) and the oldest of them."""
    since = timezone.now() - WINDOW
    jobs = Job.objects.filter(created_at__gte=since).aggregate(n=Count("pk"), first=Min("created_at"))
    tasks = Task.objects.filter(job__isnull=True, created_at__gte=since).aggregate(
        n=Count("pk"), first=Min("created_at")
    )
    firsts = [value for value in (jobs["first"], tasks["first"]) if value is not None]
    return jobs["n"] + tasks["n"], min(firsts) if firsts else None


def rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        limit = int(getattr(settings, "ENGINE_RATE_LIMIT", DEFAULT_LIMIT))
        if limit <= 0:
            return view(request, *args, **kwargs)
        used, oldest = _usage()
        if used >= limit:
            retry_after = 1
            if oldest is not None:
                retry_after = max(1, math.ceil((oldest + WINDOW - timezone.now()).total_seconds()))
            response = error_response(
                f"Too many jobs and tasks created: at most {limit} per minute. Retry in {retry_after} seconds.",
                "TOO_MANY_REQUESTS",
                status=429,
            )
            response["Retry-After"] = str(retry_after)
            remaining = 0
        else:
            response = view(request, *args, **kwargs)
            remaining = max(0, limit - used - (1 if response.status_code < 300 else 0))
        response["X-RateLimit-Limit"] = str(limit)
        response["X-RateLimit-Remaining"] = str(remaining)
        return response

    return wrapper
