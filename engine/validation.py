"""Turning submitted job and task payloads into clean task specs, or per-field 422 errors.

Error keys follow CloudConvert's Laravel style: `tasks`, `tasks.<name>.output_format`, and for a
standalone task simply `output_format`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from engine import converters
from engine.combine import ARCHIVE_FORMATS, MERGE_FORMATS
from engine.extract import EXTRACT_FORMATS, format_called

IMPORT_OPERATIONS = frozenset({"import/upload", "import/url", "import/base64", "import/raw", "import/s3"})
EXPORT_OPERATIONS = frozenset({"export/url", "export/s3"})
S3_OPERATIONS = frozenset({"import/s3", "export/s3"})
# Kept in the payload for the worker, never shown by the API (a task's payload can be read back).
SECRET_KEYS = frozenset({"secret_access_key", "session_token"})
S3_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
# What botocore itself accepts (it refuses anything else before sending); checked here for a 422.
S3_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")
S3_REGION = re.compile(r"[A-Za-z0-9-]{1,63}")
# Operations whose many input files become one output file, whatever their formats.
COMBINING_OPERATIONS: dict[str, tuple[str, ...]] = {"merge": MERGE_FORMATS, "archive": ARCHIVE_FORMATS}
CAPTURE_OPERATION = "capture-website"  # takes a `url`, no input task
METADATA_OPERATION = "metadata"  # reads its input; its result is `result.metadata`, not a file
EXTRACT_OPERATION = "archive/extract"  # one archive in, every file inside it out
WATERMARK_OPERATION = "watermark"  # may stamp the file of a further task, named by `image`
TASK_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
# What no text column takes: NUL (PostgreSQL) and unpaired UTF-16 surrogates (no UTF-8 for them).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Keys with a meaning of their own; every other key of a processing task is a conversion option.
COMMON_KEYS = frozenset(
    {
        "operation",
        "name",
        "input",
        "input_format",
        "output_format",
        "engine",
        "engine_version",
        "filename",
        "timeout",
        "ignore_error",
    }
)


class ValidationFailed(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The given data was invalid.")
        self.errors = errors


@dataclass
class TaskSpec:
    """One task to create: its name, operation, the payload to keep, the inputs it names and, for
    a watermark, the task whose picture it stamps."""

    name: str
    operation: str
    payload: dict
    inputs: list[str] = field(default_factory=list)
    image: str | None = None

    @property
    def dependencies(self) -> list[str]:
        """The tasks this one waits for. The picture comes last: the task's depends_on keeps this
        order, which is how the worker tells the picture from the files to work on."""
        return [*self.inputs, self.image] if self.image else self.inputs


def processing_operations() -> set[str]:
    return {conversion.operation for conversion in converters.available()}


def supported_operations() -> set[str]:
    return (
        set(IMPORT_OPERATIONS | EXPORT_OPERATIONS | COMBINING_OPERATIONS.keys())
        | {METADATA_OPERATION, EXTRACT_OPERATION}
        | processing_operations()
    )


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value or any(ch.isspace() or not ch.isprintable() for ch in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def input_list(value: Any) -> list[str] | None:
    """`input` as a list of strings (a single string or an array is allowed), None if malformed."""
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return list(dict.fromkeys(value))
    return None


def image_reference(payload: dict, operation: str) -> str | None:
    """The task (a name in a job, an id standalone) whose file a watermark stamps as its picture,
    None for any other task and for a watermark of text only."""
    value = payload.get("image") if operation == WATERMARK_OPERATION else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def has_unstorable(value: Any) -> bool:
    """Whether a NUL character, or an unpaired UTF-16 surrogate (JSON allows "\\ud800"), hides
    anywhere in a JSON value, keys included. PostgreSQL's text and jsonb cannot hold a NUL and
    neither database driver can encode a surrogate: refused here, both answer the same 422."""
    pending = [value]
    while pending:  # a loop, not recursion: JSON nests as deep as the parser allowed
        item = pending.pop()
        if isinstance(item, str) and UNSTORABLE.search(item):
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _escaped(name: str) -> str:
    """A field name as clients can show it: NUL and surrogates in a key written as \\u0000, \\ud800."""
    return UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", name)


def unstorable_error(name: str) -> str:
    return f"The {_escaped(name)} must not contain NUL characters (\\u0000) or unpaired surrogates (\\ud800)."


def unstorable_errors(payload: dict) -> dict[str, list[str]]:
    """An error per top-level field of payload holding a NUL or a surrogate somewhere."""
    return {
        _escaped(key): [unstorable_error(key)]
        for key, value in payload.items()
        if has_unstorable(key) or has_unstorable(value)
    }


def filter_value(query: Mapping[str, str], key: str) -> str | None:
    """`filter[key]` of a list's query string, None when absent or empty. Checked like a body,
    since the value goes into a database query."""
    name = f"filter[{key}]"
    value = query.get(name) or None
    if value is not None and has_unstorable(value):
        raise ValidationFailed({name: [unstorable_error(name)]})
    return value


def _headers_error(value: Any) -> str | None:
    if value is None or (
        isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        # A line break would end the header and start another one of the sender's choosing.
        and not any(ch in "\r\n" for item in value.items() for text in item for ch in text)
    ):
        return None
    return "The headers must be an object of strings, each on one line."


def public_payload(payload: dict) -> dict:
    """The payload as the API shows it: without the credentials a client sent for the worker."""
    return {key: value for key, value in payload.items() if key not in SECRET_KEYS}


def _filename_error(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        return "The filename field is required." if required else None
    if not isinstance(value, str) or "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        return "The filename must be a plain file name without folders."
    return None


def format_of(filename: str | None) -> str | None:
    suffix = PurePosixPath(filename or "").suffix
    return converters.normalize_format(suffix) if suffix else None


def check_task(
    payload: dict, operation: str, *, known_formats: dict[str, str | None]
) -> dict[str, list[str]]:
    """Errors for one task payload, keyed by field. `known_formats` maps each input name/id to the
    format of the file it will produce when that can be told at creation time."""
    if errors := unstorable_errors(payload):
        return errors  # the other checks would only repeat that the value is unusable

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if operation == "import/upload":
        redirect = payload.get("redirect")
        if redirect is not None and not is_http_url(redirect):
            add("redirect", "The redirect must be a valid http(s) URL.")
        limit = payload.get("max_file_size")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            add("max_file_size", "The max file size must be a positive number of bytes.")
    elif operation == "import/url":
        if not is_http_url(payload.get("url")):
            add("url", "The url must be a valid http(s) URL without spaces.")
        if (message := _filename_error(payload.get("filename"), required=False)) is not None:
            add("filename", message)
        if (message := _headers_error(payload.get("headers"))) is not None:
            add("headers", message)
    elif operation in ("import/base64", "import/raw"):
        content = payload.get("file")
        if not isinstance(content, str) or content == "":
            add("file", "The file field is required.")
        elif operation == "import/base64":
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                add("file", "The file must be valid base64.")
        if (message := _filename_error(payload.get("filename"), required=True)) is not None:
            add("filename", message)
    elif operation in S3_OPERATIONS:
        _check_s3(payload, operation, add)
    elif operation in EXPORT_OPERATIONS:
        for flag in ("inline", "archive_multiple_files"):
            if payload.get(flag) is not None and not isinstance(payload.get(flag), bool):
                add(flag, f"The {flag} field must be true or false.")
    elif operation in COMBINING_OPERATIONS:
        _check_combining(payload, operation, add)
    elif operation == CAPTURE_OPERATION:
        _check_capture(payload, add)
    elif operation == METADATA_OPERATION:
        pass  # any input file; what it is decides what is read
    elif operation == EXTRACT_OPERATION:
        # No output format and no filename: the names come from inside the archive.
        input_format = payload.get("input_format")
        if input_format is not None and not (isinstance(input_format, str) and format_called(input_format)):
            add("input_format", f"The engine extracts {', '.join(EXTRACT_FORMATS)} archives only.")
    else:
        _check_processing(payload, operation, known_formats, add)
        image = payload.get("image")
        # The options check says so too when the input formats are known; once is enough.
        if operation == WATERMARK_OPERATION and not isinstance(image, str | None) and "image" not in errors:
            add("image", "The image must be the name (in a job) or id of the task that imports the picture.")

    takes_input = operation not in IMPORT_OPERATIONS and operation != CAPTURE_OPERATION
    if takes_input and input_list(payload.get("input")) is None:
        add("input", "The input field is required: a task name (in a job) or task id, or a list of them.")
    timeout = payload.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        add("timeout", "The timeout must be a positive number of seconds.")
    return errors


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _check_s3(payload: dict, operation: str, add: Any) -> None:
    """import/s3 and export/s3: where the bucket is, the credentials, and which keys."""
    bucket = payload.get("bucket")
    if not _is_text(bucket):
        add("bucket", "The bucket field is required.")
    elif not S3_BUCKET.fullmatch(bucket):
        add("bucket", "The bucket must be a bucket name (letters, digits, dots, dashes, underscores).")
    region = payload.get("region")
    if region is not None and not (isinstance(region, str) and S3_REGION.fullmatch(region)):
        add("region", "The region must be a region name such as us-east-1.")
    endpoint = payload.get("endpoint")
    if endpoint is not None and not is_http_url(endpoint):
        add("endpoint", "The endpoint must be a valid http(s) URL.")
    for name in ("access_key_id", "secret_access_key"):
        if not _is_text(payload.get(name)):
            add(name, f"The {name.replace('_', ' ')} field is required.")
    strings = ["session_token", "key", "key_prefix"]
    if operation == "import/s3":
        if not _is_text(payload.get("key")) and not _is_text(payload.get("key_prefix")):
            add("key", "Give the key of the object to import, or a key_prefix to import every object under it.")
        if (message := _filename_error(payload.get("filename"), required=False)) is not None:
            add("filename", message)
    else:
        strings += ["cache_control", "content_type", "content_disposition", "server_side_encryption"]
        acl = payload.get("acl")
        if acl is not None and acl not in S3_ACLS:
            add("acl", f"The acl must be one of {', '.join(S3_ACLS)}.")
        metadata = payload.get("metadata")
        if metadata is not None and not _is_string_map(metadata, numbers=True):
            add("metadata", "The metadata must be an object of strings.")
        if payload.get("tagging") is not None and not _is_string_map(payload["tagging"]):
            add("tagging", "The tagging must be an object of strings.")
    for name in strings:
        if payload.get(name) is not None and not isinstance(payload[name], str):
            add(name, f"The {name.replace('_', ' ')} must be a string.")


def _is_string_map(value: Any, *, numbers: bool = False) -> bool:
    # Numbers are written as text: S3 metadata is text only, and the Node SDK types it loosely.
    scalar = (str, int, float) if numbers else (str,)
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, scalar) and not isinstance(v, bool) for k, v in value.items()
    )


def _check_combining(payload: dict, operation: str, add: Any) -> None:
    output_format = payload.get("output_format")
    allowed = COMBINING_OPERATIONS[operation]
    if not isinstance(output_format, str) or not output_format.strip():
        add("output_format", "The output format field is required.")
    elif converters.normalize_format(output_format) not in allowed:
        add(
            "output_format",
            f"The engine cannot {operation} into {output_format} files; choose {', '.join(allowed)}.",
        )
    if (message := _filename_error(payload.get("filename"), required=False)) is not None:
        add("filename", message)


def _check_capture(payload: dict, add: Any) -> None:
    if not is_http_url(payload.get("url")):
        add("url", "The url must be a valid http(s) URL without spaces.")
    if (message := _filename_error(payload.get("filename"), required=False)) is not None:
        add("filename", message)
    if (message := _headers_error(payload.get("headers"))) is not None:
        add("headers", message)
    output_format = payload.get("output_format")
    if not isinstance(output_format, str) or not output_format.strip():
        add("output_format", "The output format field is required.")
        return
    captures = {c.output_format: c for c in converters.available(CAPTURE_OPERATION)}
    conversion = captures.get(converters.normalize_format(output_format))
    if conversion is None:
        listed = ", ".join(captures) or "nothing (Chromium is not installed)"
        add("output_format", f"The engine cannot capture websites as {output_format}; choose {listed}.")
        return
    _check_options(conversion, payload, add)


def _check_options(conversion: converters.Conversion, payload: dict, add: Any) -> None:
    try:
        converters.clean_options(conversion, payload)
    except converters.InvalidOptions as error:
        for key, messages in error.errors.items():
            for message in messages:
                add(key, message)


def _check_processing(payload: dict, operation: str, known_formats: dict[str, str | None], add: Any) -> None:
    output_format = payload.get("output_format")
    if operation == "convert" and (not isinstance(output_format, str) or not output_format.strip()):
        add("output_format", "The output format field is required.")
        return
    if (message := _filename_error(payload.get("filename"), required=False)) is not None:
        add("filename", message)
    output_format = converters.normalize_format(output_format or "")
    candidates = [
        c for c in converters.available(operation) if not output_format or c.output_format == output_format
    ]
    if not candidates:
        add("output_format", f"The engine cannot produce {output_format or 'this'} files with {operation}.")
        return
    input_format = payload.get("input_format")
    if input_format is not None and not isinstance(input_format, str):
        add("input_format", "The input format must be a string.")
        return
    formats = {converters.normalize_format(input_format)} if input_format else set()
    if not formats:
        # Inferable from the filenames of the imports this task reads, when they are known.
        inputs = input_list(payload.get("input")) or []
        found = [known_formats.get(name) for name in inputs]
        if found and all(found):
            formats = set(found)  # type: ignore[arg-type]
    for fmt in sorted(formats):
        conversion = next((c for c in candidates if c.input_format == fmt), None)
        if conversion is None:
            add("output_format", f"Converting {fmt} to {output_format} is not supported.")
            continue
        _check_options(conversion, payload, add)


def produced_format(payload: dict, operation: str) -> str | None:
    """The format of the file an import will produce, when its filename already says it."""
    if operation in ("import/base64", "import/raw", "import/url"):
        # Not a URL's path: /report.php may well serve a PDF; the download's own name decides then.
        return format_of(payload.get("filename"))
    if operation == "import/s3" and isinstance(key := payload.get("key"), str):
        filename = payload.get("filename")
        return format_of(filename if isinstance(filename, str) and filename else key)
    return None


def validate_job(body: dict) -> tuple[list[TaskSpec], str | None, str | None]:
    """The tasks, tag and webhook_url of a POST /v2/jobs body, or ValidationFailed."""
    errors: dict[str, list[str]] = {}
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        errors["tag"] = ["The tag must be a string."]
    elif has_unstorable(tag):
        errors["tag"] = [unstorable_error("tag")]
    webhook_url = body.get("webhook_url")
    if has_unstorable(webhook_url):
        errors["webhook_url"] = [unstorable_error("webhook url")]
    elif webhook_url is not None and not is_http_url(webhook_url):
        errors["webhook_url"] = ["The webhook url must be a valid http(s) URL."]
    tasks = body.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        errors["tasks"] = ["The tasks field is required and must be an object of named tasks."]
        raise ValidationFailed(errors)

    specs: list[TaskSpec] = []
    known_formats: dict[str, str | None] = {}
    for name, payload in tasks.items():
        prefix = f"tasks.{name}"
        if not TASK_NAME.fullmatch(name):
            errors[prefix] = ["The task name may only contain letters, numbers, dashes and underscores."]
            continue
        if not isinstance(payload, dict):
            errors[prefix] = ["The task must be an object with an operation."]
            continue
        operation = payload.get("operation")
        if not isinstance(operation, str) or not operation:
            errors[f"{prefix}.operation"] = ["The operation field is required."]
            continue
        if operation not in supported_operations():
            errors[f"{prefix}.operation"] = [f"The operation {operation} is not supported by this engine."]
            continue
        known_formats[name] = produced_format(payload, operation)
        inputs = input_list(payload.get("input")) or []
        specs.append(TaskSpec(name, operation, payload, inputs, image_reference(payload, operation)))

    names = {spec.name for spec in specs}
    for spec in specs:
        for key, messages in check_task(spec.payload, spec.operation, known_formats=known_formats).items():
            errors.setdefault(f"tasks.{spec.name}.{key}", []).extend(messages)
        for key, referenced in (("input", spec.inputs), ("image", [spec.image] if spec.image else [])):
            for other in referenced:
                if other == spec.name:
                    errors.setdefault(f"tasks.{spec.name}.{key}", []).append(f"A task cannot be its own {key}.")
                elif other not in names and other in tasks:
                    continue  # that task has its own error already
                elif other not in names:
                    errors.setdefault(f"tasks.{spec.name}.{key}", []).append(
                        f"The {key} task {other} does not exist in this job."
                    )
        if spec.image in spec.inputs:
            errors.setdefault(f"tasks.{spec.name}.image", []).append(
                f"The task {spec.image} cannot be both an input and the image of this watermark."
            )
    if not errors and (cycle := _find_cycle(specs)):
        errors[f"tasks.{cycle}.input"] = ["The tasks' inputs form a cycle; no task could ever start."]
    if errors:
        raise ValidationFailed(errors)
    return _in_dependency_order(specs), tag, webhook_url


def _find_cycle(specs: list[TaskSpec]) -> str | None:
    graph = {spec.name: spec.dependencies for spec in specs}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str) -> str | None:
        state[node] = 1
        for parent in graph.get(node, []):
            if state.get(parent) == 1:
                return node
            if state.get(parent) is None and (found := visit(parent)):
                return found
        state[node] = 2
        return None

    for name in graph:
        if state.get(name) is None and (found := visit(name)):
            return found
    return None


def _in_dependency_order(specs: list[TaskSpec]) -> list[TaskSpec]:
    """Inputs before the tasks reading them (stable otherwise), so ids exist when referenced."""
    placed: set[str] = set()
    ordered: list[TaskSpec] = []
    pending = list(specs)
    while pending:
        ready = [spec for spec in pending if all(name in placed for name in spec.dependencies)]
        for spec in ready:
            ordered.append(spec)
            placed.add(spec.name)
        pending = [spec for spec in pending if spec.name not in placed]
    return ordered
