"""Streaming upload with a size limit: the file goes to a temporary file on disk chunk by chunk,
and the upload stops as soon as it grows past ENGINE_MAX_UPLOAD_SIZE."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import (
    SkipFile,
    StopUpload,
    TemporaryFileUploadHandler,
)

DEFAULT_MAX_UPLOAD_SIZE = 1024 * 1024 * 1024
FILE_FIELD = "file"


def max_upload_size(payload: dict | None = None) -> int:
    """The engine-wide limit, lowered by the task's own `max_file_size` (an engine extension:
    ccweb sets it so its upload limit holds even for clients that skip its form)."""
    limit = int(getattr(settings, "ENGINE_MAX_UPLOAD_SIZE", DEFAULT_MAX_UPLOAD_SIZE))
    own = (payload or {}).get("max_file_size")
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        return min(limit, own)
    return limit


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Accept only the `file` field, on disk, up to `limit` bytes; flag `exceeded` past it."""

    # Django's parser reads the body in pieces of this size; its default of 64 KiB made a 1 GiB
    # upload cost 16,384 trips through its Python boundary search and file writes.
    chunk_size = 1024 * 1024

    def __init__(self, request: object = None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def new_file(self, field_name: str, *args: object, **kwargs: object) -> None:
        if field_name != FILE_FIELD:
            # Anything but `file` is not ours to store (the SDKs send exactly one file part).
            raise SkipFile()
        super().new_file(field_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            # connection_reset=False: the parser drains the rest of the body (without keeping it)
            # so the client reads our 413 instead of a reset connection.
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
