"""Self-authorizing URLs: upload forms and export downloads carry an expiry and an HMAC.

The browser (or an SDK) uses them without the API key, exactly like CloudConvert's S3 POST
policies and pre-signed download URLs, so they must be unforgeable and short-lived.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import parse_qs, quote, urlencode, urlsplit

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


def _address(url: str) -> tuple[str, str, int | None] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        return None
    return parts.scheme.lower(), parts.hostname or "", port


def own_download(url: str) -> tuple[str, bool] | None:
    """(file id, whether the signature holds and has not expired) when url is one of this engine's
    export URLs (same scheme, host, port and path as ENGINE_URL now), None for any other URL."""
    base, parts = urlsplit(settings.ENGINE_URL), urlsplit(url)
    prefix = f"{base.path.rstrip('/')}/storage/files/"
    address = _address(url)
    if address is None or address != _address(settings.ENGINE_URL) or not parts.path.startswith(prefix):
        return None
    file_id = parts.path[len(prefix) :].split("/", 1)[0]
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    valid = download_is_valid(
        file_id,
        disposition=query.get("disposition", "attachment"),
        expires=query.get("expires", ""),
        signature=query.get("signature", ""),
    )
    return file_id, valid
