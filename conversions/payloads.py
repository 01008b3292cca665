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
    _expect(isinstance(payload.get("id"), str) and payload["id"] != "", "job.id is not a non-empty string")
    _expect(_optional(payload, "status", str), "job.status is not a string")
    tasks = payload.get("tasks")
    _expect(tasks is None or isinstance(tasks, list), "job.tasks is not a list")
    for index, task in enumerate(tasks or []):
        _task_check(task, f"job.tasks[{index}]")
    return payload


def _task_check(task: object, where: str) -> None:
    _expect(isinstance(task, dict), f"{where} is not an object")
    for name in TASK_TEXT_FIELDS:
        _expect(_optional(task, name, str), f"{where}.{name} is not a string")
    percent = task.get("percent")
    _expect(percent is None or _is_number(percent), f"{where}.percent is not a number")
    result = task.get("result")
    _expect(result is None or isinstance(result, dict), f"{where}.result is not an object")
    if not result:
        return
    _expect(_optional(result, "form", dict), f"{where}.result.form is not an object")
    if result.get("form"):
        _expect(_optional(result["form"], "url", str), f"{where}.result.form.url is not a string")
        _expect(_optional(result["form"], "parameters", dict), f"{where}.result.form.parameters is not an object")
    files = result.get("files")
    _expect(files is None or isinstance(files, list), f"{where}.result.files is not a list")
    for index, item in enumerate(files or []):
        here = f"{where}.result.files[{index}]"
        _expect(isinstance(item, dict), f"{here} is not an object")
        _expect(_optional(item, "filename", str), f"{here}.filename is not a string")
        _expect(_optional(item, "url", str), f"{here}.url is not a string")
        size = item.get("size")
        _expect(
            size is None or (isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE),
            f"{here}.size is not a byte count",
        )


def _optional(mapping: dict, key: str, kind: type) -> bool:
    return mapping.get(key) is None or isinstance(mapping[key], kind)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise MalformedPayload(problem)


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
