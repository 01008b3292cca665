"""How every /v2 request is let in: the Bearer key, JSON errors for everything, method routing.

CloudConvert's SDKs parse every error body as JSON `{message, code, errors?}` (the Java SDK throws
on anything else), so 401, 404, 405, 413 and even an unexpected 500 are answered in that shape here
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
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from engine.serializers import error_response, invalid_data
from engine.validation import ValidationFailed

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


# import/base64 carries whole files in the JSON body. CloudConvert advises it for files under
# 10 MB (13.4 MB once in base64); 64 MiB leaves room for a job importing four such files at once,
# while bounding what one request can make the server hold in memory (the body and its parsed copy).
DEFAULT_MAX_REQUEST_BODY = 64 * 1024 * 1024


class BadRequestBody(Exception):
    """The body is not a JSON object; answered as a 422 like any other invalid data."""


class BodyTooLarge(Exception):
    """The body is over ENGINE_MAX_REQUEST_BODY; answered as a 413."""


def max_request_body() -> int:
    return int(getattr(settings, "ENGINE_MAX_REQUEST_BODY", DEFAULT_MAX_REQUEST_BODY))


def _read_body(request: HttpRequest) -> bytes:
    """The raw body, read up to the engine's own limit.

    Not `request.body`: that applies DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default, sized for the
    web app's forms) and would refuse ordinary import/base64 jobs."""
    limit = max_request_body()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BodyTooLarge  # refused before reading a byte of it
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge
    return body


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object; an empty body counts as `{}` (Python sends `{}` or nothing).
    Parsed once per request: the sync API reads it again for `redirect`."""
    if hasattr(request, "engine_json"):
        return request.engine_json
    body = _read_body(request)
    if not body.strip():
        value = {}
    else:
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequestBody("The request body must be valid JSON.") from None
        except RecursionError:
            raise BadRequestBody("The request body nests arrays or objects too deeply to be read.") from None
    if not isinstance(value, dict):
        raise BadRequestBody("The request body must be a JSON object.")
    request.engine_json = value
    return value


def too_large() -> HttpResponse:
    limit = max_request_body()
    return error_response(
        f"The request body is larger than the engine accepts ({limit} bytes). Send big files with "
        "import/upload or import/url rather than import/base64 or import/raw.",
        "REQUEST_TOO_LARGE",
        status=413,
    )


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
        except ValidationFailed as error:
            return invalid_data(error.errors)
        except (BodyTooLarge, RequestDataTooBig):
            return too_large()
        except SuspiciousOperation as error:
            # Django's other limits on what a request may carry (e.g. over 1000 query parameters).
            logger.warning("Engine refused %s %s: %s", request.method, request.path, error)
            return error_response(
                "The request could not be read: it carries more than the engine accepts.", "BAD_REQUEST", status=400
            )
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
