"""The parts of the API's job object (PROTOCOL.md §2.1, §3.1) that ccweb reads, checked before
anything is written. A webhook body is signed, but a signature proves only who sent it: a body of
the wrong shape must be refused in words, never fail halfway through applying it."""

from typing import Any

# OutputFile.size is a BigIntegerField.
MAX_SIZE = 2**63 - 1
# The API's job objects are a few levels deep; far deeper nesting would only exhaust the stack
# of whatever walks it next (the JSON encoder saving it, for one).
MAX_DEPTH = 64
TASK_TEXT_FIELDS = ("id", "name", "operation", "status", "code", "message")


class MalformedPayload(ValueError):
    """The job object lacks what ccweb needs, or holds a value of the wrong type."""


def job_payload_clean(payload: object, *, source: bytes | None = None) -> dict:
    """The job object, checked, with NUL characters and lone surrogates taken out of its text
    (PostgreSQL stores neither); raises MalformedPayload naming the first problem.

    `source`, the JSON the payload was parsed from, spares walking every string when it shows
    there is nothing to take out and nothing nested too deep (see _plainly_storable)."""
    if not isinstance(payload, dict):
        raise MalformedPayload("the job is not an object")
    if source is None or not _plainly_storable(source):
        payload = _text_cleaned(payload)
    if not (isinstance(payload.get("id"), str) and payload["id"] != ""):
        raise MalformedPayload("job.id is not a non-empty string")
    if not _optional(payload, "status", str):
        raise MalformedPayload("job.status is not a string")
    tasks = payload.get("tasks")
    if not (tasks is None or isinstance(tasks, list)):
        raise MalformedPayload("job.tasks is not a list")
    for index, task in enumerate(tasks or []):
        _task_check(task, index)
    return payload


# Each check names what it found wrong only when it did: a webhook checks a few dozen values per
# delivery, and the words are for the one that fails.
def _task_check(task: object, index: int) -> None:
    where = f"job.tasks[{index}]"
    if not isinstance(task, dict):
        raise MalformedPayload(f"{where} is not an object")
    for name in TASK_TEXT_FIELDS:
        if not _optional(task, name, str):
            raise MalformedPayload(f"{where}.{name} is not a string")
    percent = task.get("percent")
    if not (percent is None or _is_number(percent)):
        raise MalformedPayload(f"{where}.percent is not a number")
    result = task.get("result")
    if not (result is None or isinstance(result, dict)):
        raise MalformedPayload(f"{where}.result is not an object")
    if result:
        _result_check(result, where)


def _result_check(result: dict, where: str) -> None:
    form = result.get("form")
    if not (form is None or isinstance(form, dict)):
        raise MalformedPayload(f"{where}.result.form is not an object")
    if form:
        if not _optional(form, "url", str):
            raise MalformedPayload(f"{where}.result.form.url is not a string")
        if not _optional(form, "parameters", dict):
            raise MalformedPayload(f"{where}.result.form.parameters is not an object")
    files = result.get("files")
    if not (files is None or isinstance(files, list)):
        raise MalformedPayload(f"{where}.result.files is not a list")
    for index, item in enumerate(files or []):
        if not isinstance(item, dict):
            raise MalformedPayload(f"{where}.result.files[{index}] is not an object")
        for name in ("filename", "url"):
            if not _optional(item, name, str):
                raise MalformedPayload(f"{where}.result.files[{index}].{name} is not a string")
        size = item.get("size")
        if not (size is None or (isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE)):
            raise MalformedPayload(f"{where}.result.files[{index}].size is not a byte count")


def _optional(mapping: dict, key: str, kind: type) -> bool:
    value = mapping.get(key)
    return value is None or isinstance(value, kind)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plainly_storable(source: bytes) -> bool:
    """Whether JSON text can hold neither a NUL nor a lone surrogate, nor nest past MAX_DEPTH, told
    by three scans at C speed: a NUL or a surrogate in parsed JSON comes from a \\u escape, or from
    UTF-8 bytes starting 0xED (json.loads lets encoded surrogates pass); nesting needs brackets.
    False only means "look closer" (Hangul also starts with 0xED, brackets may stand in strings)."""
    return (
        b"\\u" not in source
        and b"\xed" not in source
        and source.count(b"{") + source.count(b"[") <= MAX_DEPTH
    )


def _text_cleaned(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if depth > MAX_DEPTH and isinstance(value, dict | list):
        raise MalformedPayload(f"the job is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_text_cleaned(key): _text_cleaned(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_text_cleaned(item, depth + 1) for item in value]
    return value
