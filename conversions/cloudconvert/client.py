"""The only code in ccweb that speaks HTTP to the conversion API: CloudConvert or our own engine.

Timeouts, retries, authentication and the mapping of failures to named exceptions are decided
once, here, so services and tasks only call `get_client().create_job(...)` and catch the classes
in errors.py. CloudConvert and the embedded engine go through exactly the same code; only the
base URLs and the key differ (see `api_config()`).
"""

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from urllib3.fields import RequestField
from urllib3.filepost import choose_boundary

from .errors import ApiError, InvalidData, NotFound, RateLimited, Unauthenticated, Unavailable

logger = logging.getLogger(__name__)

LIVE_API_URL = "https://api.cloudconvert.com/v2"
LIVE_SYNC_API_URL = "https://sync.api.cloudconvert.com/v2"
SANDBOX_API_URL = "https://api.sandbox.cloudconvert.com/v2"
SANDBOX_SYNC_API_URL = "https://sync.api.sandbox.cloudconvert.com/v2"
_REGION = re.compile(r"^[a-z0-9-]+$")

# 429 means the request was not processed, so even a POST may be repeated. 502/503/504 and broken
# connections may come after the work was done: only requests that are safe to repeat retry them.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# We will not hold a web request or a worker longer than this for one Retry-After; past it the
# caller gets RateLimited(retry_after=...) and can reschedule its own work.
MAX_RETRY_AFTER = 60.0
CONNECT_TIMEOUT_CAP = 10.0
# The sync API answers only when the job has ended: its read timeout must outlast a conversion.
SYNC_READ_TIMEOUT = 300.0
CHUNK_SIZE = 64 * 1024
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
LOGGED_BODY_LIMIT = 2000


@dataclass(frozen=True)
class ApiConfig:
    """Where the API lives and how to authenticate; secrets stay out of repr() and so out of logs."""

    api_url: str
    sync_api_url: str
    api_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    is_engine: bool


def api_config() -> ApiConfig:
    """The API ccweb talks to, read from settings at call time: CloudConvert when a
    CLOUDCONVERT_API_KEY is set, otherwise the engine at ENGINE_INTERNAL_URL or ENGINE_URL."""
    if not settings.CLOUDCONVERT_API_KEY:
        engine_url = (settings.ENGINE_INTERNAL_URL or settings.ENGINE_URL).rstrip("/")
        return ApiConfig(
            api_url=f"{engine_url}/v2",
            sync_api_url=f"{engine_url}/sync/v2",
            api_key=settings.ENGINE_API_KEY,
            webhook_secret=settings.ENGINE_WEBHOOK_SECRET,
            is_engine=True,
        )
    region = settings.CLOUDCONVERT_REGION.strip().lower()
    if settings.CLOUDCONVERT_SANDBOX:
        # CloudConvert has no regional sandbox, so the region does not apply there.
        api_url, sync_api_url = SANDBOX_API_URL, SANDBOX_SYNC_API_URL
    elif region:
        if not _REGION.match(region):
            raise ImproperlyConfigured(
                f"CLOUDCONVERT_REGION {region!r} is not a region name such as 'eu-central'."
            )
        api_url = f"https://{region}.api.cloudconvert.com/v2"
        sync_api_url = f"https://{region}.sync.api.cloudconvert.com/v2"
    else:
        api_url, sync_api_url = LIVE_API_URL, LIVE_SYNC_API_URL
    return ApiConfig(
        api_url=(settings.CLOUDCONVERT_API_URL or api_url).rstrip("/"),
        sync_api_url=(settings.CLOUDCONVERT_SYNC_API_URL or sync_api_url).rstrip("/"),
        api_key=settings.CLOUDCONVERT_API_KEY,
        webhook_secret=settings.CLOUDCONVERT_WEBHOOK_SECRET,
        is_engine=False,
    )


# Where CloudConvert's import/upload forms post, live and sandbox, global and regional (PROTOCOL.md §1.1).
CLOUDCONVERT_UPLOAD_ORIGINS = ("https://storage.cloudconvert.com", "https://*.storage.cloudconvert.com")


def upload_origins(config: ApiConfig | None = None) -> list[str]:
    """The origins a browser sends files to, straight from the page (XHR or a plain form): the
    API's own origin (the engine serves its upload URLs there), and CloudConvert's storage hosts."""
    config = config if config is not None else api_config()
    # The engine's forms post to ENGINE_URL, whichever address ccweb's own calls use (ENGINE_INTERNAL_URL).
    parts = urlsplit(settings.ENGINE_URL if config.is_engine else config.api_url)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    if not config.is_engine:
        origins.extend(CLOUDCONVERT_UPLOAD_ORIGINS)
    return origins


class Client:
    """One method per endpoint of the CloudConvert API v2, over one requests.Session.

    Methods return the unwrapped `data` of single objects, raise errors.ApiError subclasses on
    failure, and retry what can safely be retried, sleeping through the injectable `sleep`."""

    def __init__(
        self,
        config: ApiConfig | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.config = config if config is not None else api_config()
        self.session = session if session is not None else requests.Session()
        read = float(settings.CLOUDCONVERT_TIMEOUT if timeout is None else timeout)
        self.timeout = (min(read, CONNECT_TIMEOUT_CAP), read)
        self.max_retries = int(settings.CLOUDCONVERT_MAX_RETRIES if max_retries is None else max_retries)
        self.sleep = sleep

    # --- Jobs ----------------------------------------------------------------------------------

    def create_job(
        self, *, tasks: dict, tag: str | None = None, webhook_url: str | None = None
    ) -> dict:
        """POST /v2/jobs: create a job from named tasks (201); returns the job."""
        body: dict[str, Any] = {"tasks": tasks}
        if tag is not None:
            body["tag"] = tag
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        return _data(self._api("POST", "/jobs", json=body))

    def show_job(self, job_id: str) -> dict:
        """GET /v2/jobs/{id}: the job with its tasks."""
        return _data(self._api("GET", f"/jobs/{_segment(job_id)}"))

    def wait_job(self, job_id: str) -> dict:
        """GET <sync host>/v2/jobs/{id}: blocks until the job is finished or failed."""
        timeout = (self.timeout[0], max(self.timeout[1], SYNC_READ_TIMEOUT))
        return _data(
            self._api("GET", f"/jobs/{_segment(job_id)}", base=self.config.sync_api_url, timeout=timeout)
        )

    def list_jobs(
        self,
        *,
        status: str | None = None,
        tag: str | None = None,
        include_tasks: bool = False,
        page: int = 1,
        per_page: int = 100,
    ) -> dict:
        """GET /v2/jobs: one page as {"data", "links", "meta"}; follow links.next for more."""
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        if status:
            params["filter[status]"] = status
        if tag:
            params["filter[tag]"] = tag
        if include_tasks:
            params["include"] = "tasks"
        return _json(self._api("GET", "/jobs", params=params))

    def delete_job(self, job_id: str) -> None:
        """DELETE /v2/jobs/{id}: the job, its tasks and files (204)."""
        self._api("DELETE", f"/jobs/{_segment(job_id)}")

    # --- Tasks ---------------------------------------------------------------------------------

    def show_task(self, task_id: str) -> dict:
        """GET /v2/tasks/{id}: one task."""
        return _data(self._api("GET", f"/tasks/{_segment(task_id)}"))

    def cancel_task(self, task_id: str) -> dict:
        """POST /v2/tasks/{id}/cancel: a waiting or processing task ends with code CANCELLED."""
        return _data(self._api("POST", f"/tasks/{_segment(task_id)}/cancel", json={}))

    def retry_task(self, task_id: str) -> dict:
        """POST /v2/tasks/{id}/retry: returns the new task (201) that repeats the old one."""
        return _data(self._api("POST", f"/tasks/{_segment(task_id)}/retry", json={}))

    # --- Catalogue and account -----------------------------------------------------------------

    def list_formats(
        self,
        *,
        input_format: str | None = None,
        output_format: str | None = None,
        include_options: bool = False,
    ) -> list[dict]:
        """GET /v2/convert/formats: the supported conversions, optionally with their options."""
        params: dict[str, Any] = {}
        if input_format:
            params["filter[input_format]"] = input_format
        if output_format:
            params["filter[output_format]"] = output_format
        if include_options:
            params["include"] = "options"
        payload = _json(self._api("GET", "/convert/formats", params=params))
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise _unexpected_shape("GET /convert/formats", payload)
        return payload["data"]

    def me(self) -> dict:
        """GET /v2/users/me: the account the key belongs to (credits, e-mail)."""
        return _data(self._api("GET", "/users/me"))

    # --- Files ---------------------------------------------------------------------------------

    def upload(self, form: dict, fileobj: IO[bytes], filename: str) -> None:
        """POST <result.form.url> of an import/upload task: every form parameter as a field, then
        `file` last (storage requires it), without our API key (the form is signed). Any 2xx is
        success; the body (S3-style XML) is ignored. The file is streamed, never held in memory."""
        if not _seekable(fileobj):
            # A known length avoids chunked uploads (which WSGI servers drop) and lets a 429 resend.
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
            shutil.copyfileobj(fileobj, spool, CHUNK_SIZE)
            spool.seek(0)
            fileobj = spool
        boundary = choose_boundary()
        body = _MultipartBody(boundary, form.get("parameters") or {}, fileobj, filename)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        response = self._send("POST", form["url"], headers=headers, data=body, signed_url=True)
        response.close()

    def download(self, url: str, dest: IO[bytes]) -> int:
        """GET <result.files[].url> of a finished export/url task, streamed into `dest` without
        our API key (the URL is signed); returns the number of bytes written."""
        response = self._send("GET", url, stream=True, signed_url=True)
        written = 0
        try:
            with response:
                for chunk in response.iter_content(CHUNK_SIZE):
                    dest.write(chunk)
                    written += len(chunk)
        except requests.RequestException as exc:
            logger.warning("Download of %s broke after %d bytes: %r", _redact(url), written, exc)
            raise Unavailable(
                "The download was interrupted; try again.", status=response.status_code
            ) from exc
        return written

    # --- Plumbing ------------------------------------------------------------------------------

    def _api(self, method: str, path: str, *, base: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.config.api_key}", "Accept": "application/json"}
        return self._send(method, f"{base or self.config.api_url}{path}", headers=headers, **kwargs)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        signed_url: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with bounded retries; returns a 2xx response or raises an ApiError."""
        idempotent = method in IDEMPOTENT_METHODS
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=timeout or self.timeout, **kwargs
                )
            except TRANSIENT_ERRORS as exc:
                # A connect timeout means nothing was sent, so even a POST can go again.
                if (idempotent or isinstance(exc, requests.ConnectTimeout)) and attempt < self.max_retries:
                    delay = _backoff(attempt)
                    logger.warning(
                        "%s %s failed (%r); retry %d of %d in %.1fs",
                        method, _redact(url), exc, attempt + 1, self.max_retries, delay,
                    )
                    self.sleep(delay)
                    attempt += 1
                    continue
                logger.warning("%s %s failed: %r", method, _redact(url), exc)
                raise Unavailable() from exc
            except requests.RequestException as exc:
                # Not transient: an unusable URL or header from our settings, or a malformed answer.
                logger.error("%s %s failed: %r", method, _redact(url), exc)
                raise ApiError(
                    "The request to the conversion service failed unexpectedly; "
                    "check the API URL and key settings, the log has the details."
                ) from exc

            status = response.status_code
            if status in RETRY_STATUSES and attempt < self.max_retries and (status == 429 or idempotent):
                retry_after = _retry_after(response)
                if retry_after is None or retry_after <= MAX_RETRY_AFTER:
                    delay = _backoff(attempt) if retry_after is None else retry_after
                    logger.warning(
                        "%s %s answered HTTP %d; retry %d of %d in %.1fs",
                        method, _redact(url), status, attempt + 1, self.max_retries, delay,
                    )
                    response.close()
                    self.sleep(delay)
                    attempt += 1
                    continue
            if 200 <= status < 300:
                return response
            raise _error(response, method, url, signed_url=signed_url)


def get_client() -> Client:
    """A client for the API configured right now (CloudConvert or the engine)."""
    return Client(api_config())


class _MultipartBody:
    """A multipart/form-data body streamed from a seekable file, with a known length so requests
    sends Content-Length; iterating again rewinds the file, so a retried upload is complete."""

    def __init__(self, boundary: str, parameters: dict, fileobj: IO[bytes], filename: str) -> None:
        head = bytearray()
        for name, value in parameters.items():
            head += _part_headers(boundary, str(name)) + str(value).encode() + b"\r\n"
        self.head = bytes(head + _part_headers(boundary, "file", filename))
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.fileobj = fileobj
        self.start = fileobj.tell()
        self.size = fileobj.seek(0, 2) - self.start
        fileobj.seek(self.start)

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        self.fileobj.seek(self.start)
        yield self.head
        while chunk := self.fileobj.read(CHUNK_SIZE):
            yield chunk
        yield self.tail


def _part_headers(boundary: str, name: str, filename: str | None = None) -> bytes:
    # urllib3 formats names the way requests (and so the official Python SDK) does.
    part = RequestField(name=name, data=b"", filename=filename)
    part.make_multipart()
    return f"--{boundary}\r\n".encode() + part.render_headers().encode()


def _seekable(fileobj: IO[bytes]) -> bool:
    try:
        return fileobj.seekable()
    except (AttributeError, ValueError):
        return False


def _segment(value: str) -> str:
    """An id as one path segment: an id from a payload must never reach another endpoint."""
    return quote(str(value), safe="")


def _backoff(attempt: int) -> float:
    return min(BACKOFF_BASE * 2**attempt, BACKOFF_CAP)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds; the header may also be an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _redact(url: str) -> str:
    """A URL fit for logs: signed upload and download URLs carry their signature in the query."""
    return url.split("?", 1)[0]


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise _unexpected_shape(f"{response.request.method} {_redact(response.url)}", response.text) from exc


def _data(response: requests.Response) -> dict:
    payload = _json(response)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise _unexpected_shape(f"{response.request.method} {_redact(response.url)}", payload)
    return payload["data"]


def _unexpected_shape(what: str, payload: object) -> ApiError:
    logger.error("%s answered an unexpected body: %.2000r", what, payload)
    return ApiError("The conversion service answered in a form ccweb does not understand.")


def _error(response: requests.Response, method: str, url: str, *, signed_url: bool) -> ApiError:
    """The named exception for a non-2xx response, JSON {message, code, errors} or not."""
    status = response.status_code
    logger.warning(
        "%s %s answered HTTP %d: %s", method, _redact(url), status, response.text[:LOGGED_BODY_LIMIT]
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    api_message = body.get("message") if isinstance(body.get("message"), str) else None
    details: dict[str, Any] = {
        "code": body.get("code") if isinstance(body.get("code"), str) else None,
        "status": status,
        "errors": _field_errors(body.get("errors")),
        "api_message": api_message,
        # A 429 or 503 whose Retry-After we did not sleep through: the caller reschedules its work.
        "retry_after": _retry_after(response),
    }
    said = f" It said: {api_message.strip()}" if api_message else ""
    if status == 429:
        return RateLimited(**details)
    if status >= 500:
        return Unavailable(
            f"The conversion service is unavailable (HTTP {status}); try again in a few minutes.", **details
        )
    if status in (401, 403):
        if signed_url:
            return ApiError(
                f"The upload form or download link was refused (HTTP {status}); it may have expired.",
                **details,
            )
        return Unauthenticated(**details)
    if status == 404:
        return NotFound(**details)
    if status in (400, 422):
        problems = " ".join(
            f"{name}: {'; '.join(m.rstrip('.') for m in msgs)}." for name, msgs in details["errors"].items()
        )
        return InvalidData(f"{InvalidData.default_message} {problems or said}".strip(), **details)
    return ApiError(f"The conversion service refused the request (HTTP {status}).{said}", **details)


def _field_errors(errors: object) -> dict[str, list[str]]:
    """Laravel-style {"field": ["text", ...]}, tolerating a bare string per field."""
    if not isinstance(errors, dict):
        return {}
    return {
        str(name): [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
        for name, messages in errors.items()
    }
