"""Every way a call to the conversion API can fail, as one small family of exceptions.

Callers (services, tasks, views) never look at HTTP status codes: they catch these classes and
read `retryable` to decide between "try again later" and "tell a human". `message` is a sentence
a user or an admin can read; the raw response is in the log, never in the message.
"""


class ApiError(Exception):
    """A call to the conversion API failed.

    `code` is the API's machine code (e.g. "INVALID_DATA") when it sent one, `status` the HTTP
    status (None when no response arrived), `errors` the per-field validation messages,
    `api_message` the API's own text, kept apart from our sentence, and `retry_after` the wait in
    seconds the API asked for (Retry-After) when it was longer than the client would sleep."""

    default_message = "The conversion service answered with an unexpected error."
    default_retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: dict[str, list[str]] | None = None,
        api_message: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        self.code = code
        self.status = status
        self.errors = errors or {}
        self.api_message = api_message
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(self.message)


class Unauthenticated(ApiError):
    """401/403: the API key is wrong, revoked or lacks a scope — a configuration problem."""

    default_message = (
        "The conversion service did not accept the API key; "
        "check CLOUDCONVERT_API_KEY (or ENGINE_API_KEY for the built-in engine)."
    )


class InvalidData(ApiError):
    """400/422: the request was understood but refused; `errors` says which fields and why."""

    default_message = "The conversion service refused the request because some values are invalid."


class NotFound(ApiError):
    """404: the job, task or file does not exist (any more: the API deletes them after 24 h)."""

    default_message = (
        "The conversion service does not know this job, task or file; "
        "it may have expired or been deleted."
    )


class RateLimited(ApiError):
    """429 that outlasted our retries (or asked for a longer wait than the client sleeps)."""

    default_message = "The conversion service is receiving too many requests; try again in a moment."
    default_retryable = True


class Unavailable(ApiError):
    """5xx, refused or dropped connections and timeouts that outlasted our retries; a 503 may
    carry `retry_after` too."""

    default_message = "The conversion service cannot be reached right now; try again in a few minutes."
    default_retryable = True
