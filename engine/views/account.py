"""/v2/users/me, the formats and operations catalogue, and account webhooks."""

from __future__ import annotations

import secrets
import uuid

from django.http import Http404, HttpRequest, HttpResponse

from engine import converters
from engine.auth import json_body
from engine.combine import ARCHIVE_ENGINE, MERGE_ENGINE
from engine.extract import EXTRACT_ENGINE, EXTRACT_FORMATS, format_called
from engine.models import Webhook
from engine.serializers import (
    api_url,
    data_response,
    invalid_data,
    json_response,
    paginated_response,
    webhook_to_api,
)
from engine.validation import (
    COMBINING_OPERATIONS,
    EXPORT_OPERATIONS,
    EXTRACT_OPERATION,
    IMPORT_OPERATIONS,
    METADATA_OPERATION,
    filter_value,
    has_unstorable,
    is_http_url,
    unstorable_error,
)

# The engine has one local account: whoever holds ENGINE_API_KEY.
ACCOUNT_ID = 1
ACCOUNT_USERNAME = "ccweb-engine"
ACCOUNT_EMAIL = "engine@localhost"


def user_me(request: HttpRequest) -> HttpResponse:
    # No `credits`: the engine does not count them, and .NET cannot take a null number.
    return data_response(
        {
            "id": ACCOUNT_ID,
            "username": ACCOUNT_USERNAME,
            "email": ACCOUNT_EMAIL,
            "links": {"self": api_url(f"users/{ACCOUNT_ID}")},
        }
    )


def _catalogue(request: HttpRequest, operation: str | None) -> list[dict]:
    include = {part.strip() for part in request.GET.get("include", "").split(",")}
    wanted = {
        key: converters.normalize_format(request.GET[f"filter[{key}]"])
        for key in ("input_format", "output_format")
        if request.GET.get(f"filter[{key}]")
    }
    engine = request.GET.get("filter[engine]")
    items = []
    for conversion in converters.available(operation):
        if any(getattr(conversion, key) != value for key, value in wanted.items()):
            continue
        if engine and conversion.engine != engine:
            continue
        items.append(conversion.as_api(include_options="options" in include))
    return items


def _combining(request: HttpRequest, operation: str | None) -> list[dict]:
    """merge and archive take files of any format, so they are listed by output format only."""
    if request.GET.get("filter[input_format]"):
        return []
    engines = {"merge": MERGE_ENGINE[0], "archive": ARCHIVE_ENGINE[0]}
    output_format = converters.normalize_format(request.GET.get("filter[output_format]") or "")
    return [
        {"operation": name, "output_format": fmt, "engine": engines[name], "credits": 1, "meta": {"group": name}}
        for name, formats in COMBINING_OPERATIONS.items()
        for fmt in formats
        if operation in (None, name)
        and output_format in ("", fmt)
        and request.GET.get("filter[engine]") in (None, "", engines[name])
    ]


def _extracting(request: HttpRequest, operation: str | None) -> list[dict]:
    """archive/extract makes files of whatever its archives hold, so it is listed by input format only."""
    if operation not in (None, EXTRACT_OPERATION) or request.GET.get("filter[output_format]"):
        return []
    if request.GET.get("filter[engine]") not in (None, "", EXTRACT_ENGINE[0]):
        return []
    wanted = request.GET.get("filter[input_format]")
    return [
        {
            "operation": EXTRACT_OPERATION,
            "input_format": fmt,
            "engine": EXTRACT_ENGINE[0],
            "credits": 1,
            "meta": {"group": "archive"},
        }
        for fmt in EXTRACT_FORMATS
        if not wanted or format_called(wanted) == fmt
    ]


def formats(request: HttpRequest) -> HttpResponse:
    return json_response({"data": _catalogue(request, "convert")})


def operations(request: HttpRequest) -> HttpResponse:
    operation = request.GET.get("filter[operation]") or None
    items = _catalogue(request, operation) + _combining(request, operation)
    items += _extracting(request, operation)
    filtered_by_format = any(
        request.GET.get(f"filter[{key}]") for key in ("input_format", "output_format", "engine")
    )
    if not filtered_by_format:
        # Imports and exports take no formats, and metadata reads any file; they are listed so
        # clients can discover them.
        transfers = sorted(IMPORT_OPERATIONS | EXPORT_OPERATIONS | {METADATA_OPERATION})
        items += [
            {"operation": name, "credits": 0, "meta": {"group": name.split("/")[0]}}
            for name in transfers
            if operation in (None, name)
        ]
    return json_response({"data": items})


WEBHOOK_EVENTS = {choice.value for choice in Webhook.Event}


def webhook_create(request: HttpRequest) -> HttpResponse:
    body = json_body(request)
    errors: dict[str, list[str]] = {}
    url = body.get("url")
    if has_unstorable(url):
        errors["url"] = [unstorable_error("url")]
    elif not is_http_url(url):
        errors["url"] = ["The url must be a valid http(s) URL."]
    events = body.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(event, str) and event in WEBHOOK_EVENTS for event in events)
    ):
        errors["events"] = [f"The events must be a list of: {', '.join(sorted(WEBHOOK_EVENTS))}."]
    if errors:
        return invalid_data(errors)
    webhook = Webhook.objects.create(
        url=url, events=list(dict.fromkeys(events)), signing_secret=secrets.token_urlsafe(32)
    )
    return data_response(webhook_to_api(webhook), status=201)


def webhook_list(request: HttpRequest) -> HttpResponse:
    webhooks = Webhook.objects.order_by("created_at")
    if url := filter_value(request.GET, "url"):
        webhooks = webhooks.filter(url=url)
    return paginated_response(request, webhooks, "users/me/webhooks", webhook_to_api)


def webhook_delete(request: HttpRequest, webhook_id: str) -> HttpResponse:
    try:
        deleted, _ = Webhook.objects.filter(pk=uuid.UUID(webhook_id)).delete()
    except ValueError:
        deleted = 0
    if not deleted:
        raise Http404
    return HttpResponse(status=204)
