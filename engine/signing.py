"""Self-authorizing URLs: upload forms and export downloads carry an expiry and an HMAC.

The browser (or an SDK) uses them without the API key, exactly like CloudConvert's S3 POST
policies and pre-signed download URLs, so they must be unforgeable and short-lived.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.utils.crypto import salted_hmac

DEFAULT_URL_EXPIRY = 24 * 3600


def _signature(purpose: str, *parts: str) -> str:
    # salted_hmac derives a key from SECRET_KEY per purpose: an upload signature can never be
    # replayed as a download signature, and every process sharing SECRET_KEY agrees.
    return salted_hmac(f"ccweb.engine.{purpose}", "\n".join(parts), algorithm="sha256").hexdigest()


def url_expiry() -> int:
    return int(getattr(settings, "ENGINE_URL_EXPIRY", DEFAULT_URL_EXPIRY))


def _valid(expected: str, signature: str, expires: str) -> bool:
    try:
        not_after = int(expires)
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(expected, signature or "") and time.time() <= not_after


def upload_form(task_id: str) -> dict:
    """The `result.form` of an import/upload task: where to POST, and the fields to send."""
    expires = str(int(time.time()) + url_expiry())
    return {
        "url": f"{settings.ENGINE_URL}/storage/upload/{task_id}",
        # Values must all be strings (.NET reads them with GetString()).
        "parameters": {"expires": expires, "signature": _signature("upload", task_id, expires)},
    }


def upload_is_valid(task_id: str, *, expires: str, signature: str) -> bool:
    return _valid(_signature("upload", task_id, expires), signature, expires)


def download_url(file_id: str, filename: str, *, inline: bool = False) -> str:
    """A signed, expiring URL that serves one stored file without authentication."""
    expires = str(int(time.time()) + url_expiry())
    disposition = "inline" if inline else "attachment"
    query = {
        "disposition": disposition,
        "expires": expires,
        "signature": _signature("download", file_id, disposition, expires),
    }
    return f"{settings.ENGINE_URL}/storage/files/{file_id}/{quote(filename)}?{urlencode(query)}"


def download_is_valid(file_id: str, *, disposition: str, expires: str, signature: str) -> bool:
    return _valid(_signature("download", file_id, disposition, expires), signature, expires)
