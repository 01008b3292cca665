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


def store_file(task: Task, filename: str, content: IO[bytes] | Path) -> File:
    """Save bytes for `task` and return the (unsaved) File row describing them.

    The row is saved by the caller together with the task's status change, so a task that was
    cancelled or deleted meanwhile leaves no row behind (see `discard_files`)."""
    file = File(id=uuid.uuid4(), task=task, filename=clean_filename(filename))
    name = f"tasks/{task.id}/{file.id}/{get_valid_filename(file.filename) or 'file'}"
    if isinstance(content, Path):
        with content.open("rb") as handle:
            file.path = engine_storage().save(name, DjangoFile(handle))
    else:
        file.path = engine_storage().save(name, DjangoFile(content))
    file.size = engine_storage().size(file.path)
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
