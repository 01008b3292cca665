"""How every /v2 request is let in: the Bearer key, JSON errors for everything, method routing.

CloudConvert's SDKs parse every error body as JSON `{message, code, errors?}` (the Java SDK throws
on anything else), so 401, 404, 405 and even an unexpected 500 are answered in that shape here
rather than by Django's HTML handlers.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from engine.serializers import error_response, invalid_data

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


class BadRequestBody(Exception):
    """The body is not a JSON object; answered as a 422 like any other invalid data."""


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object; an empty body counts as `{}` (Python sends `{}` or nothing)."""
    if not request.body.strip():
        return {}
    try:
        value = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestBody("The request body must be valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequestBody("The request body must be a JSON object.")
    return value


def is_authenticated(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = getattr(settings, "ENGINE_API_KEY", "")
    if scheme.lower() != "bearer" or not token or not expected:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def unauthenticated() -> HttpResponse:
    return error_response("Unauthenticated.", "UNAUTHENTICATED", status=401)


def not_found(message: str = "Not found.") -> HttpResponse:
    return error_response(message, "NOT_FOUND", status=404)


def json_errors(view: View) -> View:
    """Unknown ids, bad bodies and unexpected failures as JSON errors, never Django's HTML pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return not_found()
        except BadRequestBody as error:
            return invalid_data({"body": [str(error)]})
        except Exception:
            logger.exception("Engine error on %s %s", request.method, request.path)
            return error_response(
                "The engine failed to handle this request; the error has been logged.",
                "INTERNAL_ERROR",
                status=500,
            )

    return wrapper


def endpoint(*, public: bool = False, **handlers: View) -> View:
    """One URL, one view per HTTP method (`GET=..., POST=...`), all behind the API conventions."""
    allowed = sorted(handlers)
    handlers = {method: json_errors(handler) for method, handler in handlers.items()}

    @csrf_exempt
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not public and not is_authenticated(request):
            return unauthenticated()
        handler = handlers.get(request.method or "")
        if handler is None:
            response = error_response(
                f"The {request.method} method is not supported for this route. Supported: {', '.join(allowed)}.",
                "METHOD_NOT_ALLOWED",
                status=405,
            )
            response["Allow"] = ", ".join(allowed)
            return response
        return handler(request, *args, **kwargs)

    return view


@csrf_exempt
def unknown_route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Anything under /engine/ that matches no route: a JSON 404, never Django's HTML page."""
    return not_found(f"The route {request.path} could not be found.")
