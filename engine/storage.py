"""The engine's bytes: everything goes through Django's `storages["engine"]` (disk or S3)."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from django.core.files import File as DjangoFile
from django.core.files.storage import Storage, storages
from django.utils.text import get_valid_filename

from engine.models import File, Task

logger = logging.getLogger(__name__)


def engine_storage() -> Storage:
    # Looked up on every use, so a STORAGES change (per deployment, per test) takes effect.
    return storages["engine"]


def clean_filename(name: str | None, *, default: str = "file") -> str:
    """A file name safe to show and to store: no folders, no control characters, not empty."""
    name = (name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().strip(".")
    return name[:200] or default


class _ScratchFile(DjangoFile):
    """A file of a task's work folder handed to storage. Like an upload's temporary file it has a
    temporary_file_path(), so storage on the local disk moves it into place instead of copying it;
    S3 reads it as any file."""

    def temporary_file_path(self) -> str:
        return self.name


def store_file(task: Task, filename: str, content: IO[bytes] | Path) -> File:
    """Save bytes for `task` and return the (unsaved) File row describing them.

    An upload's temporary file is moved into place when the storage is on its file system
    (FILE_UPLOAD_TEMP_DIR): written once, never copied; other content is copied. The row is saved
    by the caller together with the task's status change, so a task that was cancelled or deleted
    meanwhile leaves no row behind (see `discard_files`)."""
    file = _new_file(task, filename)
    storage = engine_storage()
    if isinstance(content, Path):
        with content.open("rb") as handle:
            file.path = storage.save(file.path, DjangoFile(handle))
        file.size = content.stat().st_size
    elif hasattr(content, "temporary_file_path"):
        file.path = storage.save(file.path, content)
        file.size = content.size
    else:
        file.path = storage.save(file.path, DjangoFile(content))
        file.size = storage.size(file.path)
    return file


def store_output(task: Task, filename: str, path: Path) -> File:
    """store_file for a file the task made in its work folder, which is deleted after the task: the
    file is moved into place rather than copied (a rename when storage is on the same disk), so
    the path is gone afterwards."""
    file = _new_file(task, filename)
    file.size = path.stat().st_size
    with path.open("rb") as handle:
        file.path = engine_storage().save(file.path, _ScratchFile(handle, name=str(path)))
    return file


def _new_file(task: Task, filename: str) -> File:
    """The row of a file about to be stored, its path the name it is stored under."""
    file = File(id=uuid.uuid4(), task=task, filename=clean_filename(filename))
    file.path = f"tasks/{task.id}/{file.id}/{get_valid_filename(file.filename) or 'file'}"
    return file


def discard_files(paths: Iterable[str]) -> None:
    """Delete stored bytes; a missing file is not an error (deletes may race each other)."""
    storage = engine_storage()
    for path in paths:
        try:
            storage.delete(path)
        except OSError:
            logger.warning("Could not delete engine file %s", path, exc_info=True)


def download_to(file: File, directory: Path) -> Path:
    """Copy a stored file into a local work folder (converters work on local paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / clean_filename(file.filename)
    with engine_storage().open(file.path, "rb") as source, target.open("wb") as sink:
        shutil.copyfileobj(source, sink, length=1024 * 1024)
    return target
