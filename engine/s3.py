"""import/s3 and export/s3: objects read from and written to the user's own bucket, on AWS or on
any S3-compatible endpoint, with the credentials given in the task.

The engine connects to `endpoint` itself, so it is checked like an import/url (fetch.check_host):
no private or local addresses unless ENGINE_IMPORT_ALLOW_PRIVATE. Over plain http the client then
connects to the address that was checked; over https the certificate check ties the connection
to the name, so a second DNS answer pointing inside cannot be used.

Every botocore failure becomes a ConversionFailed with a sentence; the credentials never appear in one.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlencode, urlsplit, urlunsplit

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from engine.converters import ConversionFailed
from engine.fetch import DEFAULT_TIMEOUT, check_host
from engine.models import File, Task
from engine.storage import discard_files, engine_storage, store_file
from engine.uploads import max_upload_size

IMPORT_FAILED = "IMPORT_FAILED"
EXPORT_FAILED = "EXPORT_FAILED"
ACCESS_DENIED = "S3_ACCESS_DENIED"
DEFAULT_REGION = "us-east-1"
CHUNK_SIZE = 1024 * 1024
# Error codes S3 (and MinIO, Ceph, R2...) answer when the credentials are wrong or lack a permission.
REFUSED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
# S3's printf-style placeholder in an export key: %d, or zero-padded as %03d.
PLACEHOLDER = re.compile(r"%(0?\d*)d")
# Arguments of export/s3 passed to S3 as they are (metadata and tagging are reshaped).
UPLOAD_ARGUMENTS = {
    "acl": "ACL",
    "cache_control": "CacheControl",
    "content_type": "ContentType",
    "content_disposition": "ContentDisposition",
    "server_side_encryption": "ServerSideEncryption",
}


def s3_client(payload: dict, *, failure: str) -> BaseClient:
    """A client for the task's bucket, with its own credentials and nothing of the engine's own
    AWS environment (no profile, no AWS_ENDPOINT_URL), explicit timeouts and few retries."""
    endpoint = payload.get("endpoint") or None
    if endpoint is not None:
        endpoint = _checked_endpoint(endpoint, failure=failure)
    timeout = float(getattr(settings, "ENGINE_IMPORT_TIMEOUT", DEFAULT_TIMEOUT))
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": 3},
        signature_version="s3v4",
        # Custom endpoints rarely serve bucket names as subdomains (MinIO, Ceph, moto do not).
        s3={"addressing_style": "path" if endpoint else "auto"},
        ignore_configured_endpoint_urls=True,
        # Checksums only where S3 demands them: several S3-compatible servers refuse the newer ones.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=payload["access_key_id"],
        aws_secret_access_key=payload["secret_access_key"],
        aws_session_token=payload.get("session_token") or None,
        region_name=payload.get("region") or DEFAULT_REGION,
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def _checked_endpoint(endpoint: str, *, failure: str) -> str:
    """The endpoint to connect to: refused when private; over http, pinned to the checked address."""
    try:
        address = check_host(endpoint)
    except ConversionFailed as refused:
        raise ConversionFailed(failure, f"The S3 endpoint was refused. {refused.message}") from None
    parts = urlsplit(endpoint)
    if address is None or parts.scheme != "http":
        return endpoint
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@contextmanager
def _answered(*, failure: str, bucket: str, key: str | None = None) -> Iterator[None]:
    """Turn botocore's exceptions into the task's error code and a sentence."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = str(details.get("Message") or code or f"HTTP {status}").rstrip(".")
        if code in REFUSED_CODES or status == 403:
            raise ConversionFailed(
                ACCESS_DENIED,
                f"The bucket refused the credentials: {text}. "
                "Check the access key id, the secret access key and their permissions on the bucket.",
            ) from None
        if code == "NoSuchBucket":
            raise ConversionFailed(
                failure, f"The bucket {bucket} does not exist; check its name, region and endpoint."
            ) from None
        if key is not None and (code in ("NoSuchKey", "NotFound") or status == 404):
            raise ConversionFailed(failure, f"No object {key} in bucket {bucket}.") from None
        raise ConversionFailed(failure, f"The bucket {bucket} answered {code or status}: {text}.") from None
    except BotoCoreError as error:
        raise ConversionFailed(
            failure, f"The S3 endpoint could not be reached: {error}. Check the endpoint and region."
        ) from None


def import_objects(task: Task, workdir: Path) -> list[File]:
    """import/s3: the object at `key`, or every object under `key_prefix`, as the task's files."""
    payload = task.payload
    bucket = payload["bucket"]
    client = s3_client(payload, failure=IMPORT_FAILED)
    key = payload.get("key") or None
    keys = [key] if key else _keys_under(client, bucket, payload["key_prefix"])
    files: list[File] = []
    try:
        for index, name in enumerate(keys):
            target = workdir / f"object-{index}"
            _download(client, bucket, name, target)
            filename = (key and payload.get("filename")) or PurePosixPath(name).name
            files.append(store_file(task, filename, target))
            target.unlink()
    except BaseException:
        # Files are recorded only when the task finishes; these would be left behind otherwise.
        discard_files([f.path for f in files])
        raise
    return files


def _keys_under(client: BaseClient, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    with _answered(failure=IMPORT_FAILED, bucket=bucket):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            # Keys ending in / are the "folders" consoles create: empty, not files.
            keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if not keys:
        raise ConversionFailed(IMPORT_FAILED, f"No object under the prefix {prefix} in bucket {bucket}.")
    return keys


def _download(client: BaseClient, bucket: str, key: str, target: Path) -> None:
    """Stream one object into `target`, refusing it as soon as it is known to be too large."""
    limit = max_upload_size()
    too_large = ConversionFailed(
        "FILE_TOO_LARGE", f"The object {key} is larger than the engine accepts ({limit} bytes)."
    )
    with _answered(failure=IMPORT_FAILED, bucket=bucket, key=key):
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        with body, target.open("wb") as sink:
            if response.get("ContentLength", 0) > limit:
                raise too_large
            received = 0
            for chunk in body.iter_chunks(CHUNK_SIZE):
                received += len(chunk)
                if received > limit:
                    raise too_large
                sink.write(chunk)


def object_key(payload: dict, filename: str, index: int, total: int) -> str:
    """Where export/s3 writes a file: `key` (its %d numbered from 1 when several files go out;
    without a placeholder several files are numbered like `filename`: report-1.pdf,
    report-2.pdf), else `key_prefix` + the file's name."""
    key = payload.get("key") or ""
    if not key:
        return (payload.get("key_prefix") or "") + filename
    if PLACEHOLDER.search(key):
        return PLACEHOLDER.sub(lambda match: f"%{match.group(1)}d" % (index + 1), key, count=1)
    if total == 1:
        return key
    folder, _, name = key.rpartition("/")
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    return f"{folder}/{stem}-{index + 1}{suffix}" if folder else f"{stem}-{index + 1}{suffix}"


def _upload_arguments(payload: dict, filename: str) -> dict:
    arguments = {"ContentType": mimetypes.guess_type(filename)[0] or "application/octet-stream"}
    arguments.update({name: payload[key] for key, name in UPLOAD_ARGUMENTS.items() if payload.get(key)})
    if metadata := payload.get("metadata"):
        arguments["Metadata"] = {name: str(value) for name, value in metadata.items()}
    if tagging := payload.get("tagging"):
        arguments["Tagging"] = urlencode(tagging)
    return arguments


def export_objects(task: Task, files: list[File]) -> dict:
    """export/s3: each file streamed from the engine's storage into the bucket; the task's result."""
    payload = task.payload
    bucket = payload["bucket"]
    client = s3_client(payload, failure=EXPORT_FAILED)
    for index, file in enumerate(files):
        key = object_key(payload, file.filename, index, len(files))
        arguments = _upload_arguments(payload, file.filename)
        with engine_storage().open(file.path, "rb") as source, _answered(failure=EXPORT_FAILED, bucket=bucket):
            client.upload_fileobj(source, bucket, key, ExtraArgs=arguments)
    # As CloudConvert's exports without URLs: the names and sizes of what went out.
    return {"files": [{"filename": file.filename, "size": file.size} for file in files]}
