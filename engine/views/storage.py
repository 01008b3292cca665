"""The self-authorizing endpoints: the upload form target and the export download URLs.

No API key here (the SDKs never send one to these URLs): the signed parameters are the
authorization, and CORS is open because browsers post to the form straight from ccweb's pages.
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from engine import services, signing
from engine.auth import json_errors
from engine.models import File, Task
from engine.serializers import data_response, error_response, task_to_api
from engine.storage import engine_storage
from engine.uploads import LimitedUploadHandler, max_upload_size

logger = logging.getLogger(__name__)

# Multipart framing (boundaries, part headers, the form fields) on top of the file itself.
MULTIPART_SLACK = 1024 * 1024


def _cors(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = "GET, HEAD, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = request.headers.get(
        "Access-Control-Request-Headers", "Content-Type, X-Requested-With"
    )
    response["Access-Control-Max-Age"] = "86400"
    response["Vary"] = "Origin"
    return response


def _refuse(
    task: Task, message: str, code: str, *, status: int, errors: dict[str, list[str]] | None = None
) -> HttpResponse:
    """Refuse an upload: JSON for API clients; a browser's plain form post (the task has a
    `redirect`) is sent back to that page with the reason as `upload_error=<code>`, rather than
    left on a JSON body it would show as is."""
    redirect = task.payload.get("redirect")
    if isinstance(redirect, str) and redirect:
        scheme, netloc, path, query, fragment = urlsplit(redirect)
        query = urlencode([*parse_qsl(query, keep_blank_values=True), ("upload_error", code)])
        return HttpResponseRedirect(urlunsplit((scheme, netloc, path, query, fragment)), status=303)
    return error_response(message, code, status=status, errors=errors)


def _too_large(task: Task, limit: int) -> HttpResponse:
    return _refuse(
        task,
        f"The file is larger than the engine accepts ({limit} bytes); upload a smaller file.",
        "FILE_TOO_LARGE",
        status=413,
    )


def _receive(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        task = Task.objects.get(pk=uuid.UUID(task_id))
    except (ValueError, Task.DoesNotExist):
        return error_response(
            "This upload form points to a task that does not exist.", "NOT_FOUND", status=404
        )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    limit = max_upload_size(task.payload)
    if declared > limit + MULTIPART_SLACK:
        return _too_large(task, limit)

    handler = LimitedUploadHandler(request, limit=limit)
    request.upload_handlers = [handler]
    try:
        fields, files = request.POST, request.FILES
    except RequestDataTooBig:
        # DATA_UPLOAD_MAX_MEMORY_SIZE bounds the fields besides the file: the form's few parameters
        # are tiny, so only a misdirected or hostile post reaches it.
        return _refuse(
            task,
            "The upload's form fields are larger than the engine accepts: send the form's parameters, "
            "then the file as the field `file`.",
            "FIELDS_TOO_LARGE",
            status=413,
        )
    except (MultiPartParserError, TooManyFieldsSent) as error:
        logger.info("Unreadable upload for task %s: %s", task.pk, error)
        return _refuse(
            task,
            "The upload could not be read as a multipart form: send the form's parameters, "
            "then the file as the field `file`.",
            "INVALID_UPLOAD",
            status=400,
        )
    if handler.exceeded:
        return _too_large(task, limit)
    if not signing.upload_is_valid(
        str(task.pk), expires=fields.get("expires", ""), signature=fields.get("signature", "")
    ):
        return _refuse(
            task,
            "The upload form's signature is invalid or has expired; create a new upload task.",
            "INVALID_SIGNATURE",
            status=403,
        )
    upload = files.get("file")
    if upload is None:
        return _refuse(
            task,
            "No file was sent: post the form parameters, then the file as the field `file`, last.",
            "INVALID_DATA",
            status=422,
            errors={"file": ["The file field is required."]},
        )
    try:
        task = services.upload_receive(task=task, filename=upload.name or "file", content=upload)
    except services.UploadRejected as error:
        return _refuse(task, error.message, error.code, status=error.status)
    redirect = task.payload.get("redirect")
    if isinstance(redirect, str) and redirect:
        return HttpResponseRedirect(redirect, status=303)
    return data_response(task_to_api(task), status=201)


@csrf_exempt
@json_errors
def upload(request: HttpRequest, task_id: str) -> HttpResponse:
    """POST target of an import/upload task's form: answers 201 (or 303 to `redirect`)."""
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), request)
    if request.method != "POST":
        response = error_response("Uploads are sent with POST.", "METHOD_NOT_ALLOWED", status=405)
        response["Allow"] = "POST, OPTIONS"
        return _cors(response, request)
    return _cors(_receive(request, task_id), request)


@csrf_exempt
@json_errors
def download(request: HttpRequest, file_id: str, filename: str) -> HttpResponse:
    """A file behind an export URL, streamed, if the URL's signature holds and has not expired."""
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), request)
    if request.method not in ("GET", "HEAD"):
        response = error_response("Downloads are fetched with GET.", "METHOD_NOT_ALLOWED", status=405)
        response["Allow"] = "GET, HEAD, OPTIONS"
        return _cors(response, request)
    disposition = request.GET.get("disposition", "attachment")
    if disposition not in ("attachment", "inline") or not signing.download_is_valid(
        file_id,
        disposition=disposition,
        expires=request.GET.get("expires", ""),
        signature=request.GET.get("signature", ""),
    ):
        return _cors(
            error_response(
                "This download link is invalid or has expired; fetch the task again for a fresh link.",
                "INVALID_SIGNATURE",
                status=403,
            ),
            request,
        )
    file = File.objects.filter(pk=file_id).first()
    if file is None or not engine_storage().exists(file.path):
        return _cors(error_response("This file has been deleted.", "NOT_FOUND", status=404), request)
    content_type = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
    response = FileResponse(
        engine_storage().open(file.path, "rb"),
        as_attachment=disposition == "attachment",
        filename=file.filename,
        content_type=content_type,
    )
    response["Content-Length"] = str(file.size)
    response["Cache-Control"] = "private, max-age=3600"
    return _cors(response, request)
