"""Counts how ccweb's webhook endpoint answered (ops.metrics): rejections are recorded nowhere else."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from ops.metrics import webhook_answered

WEBHOOK_VIEW = "conversions:webhook"


class WebhookResponseCounter:
    """Outermost, so it sees the final status, a 500 from any layer included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name == WEBHOOK_VIEW:
            webhook_answered(response.status_code)
        return response
