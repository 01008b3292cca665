"""Is this instance ready for traffic? The database answers, both storages write and read back, and
at least one task worker is alive (without one, every conversion waits forever).

Each check catches everything its part can raise: a readiness probe answers "not ready" with what
failed in words, never a 500. The raw error goes to the log, not to the (unauthenticated) probe.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection

from engine.workers import live_workers

logger = logging.getLogger(__name__)

# What each storage keeps, in the words of a failed check.
STORAGES = {"default": "ccweb's file storage (converted files)", "engine": "the engine's file storage"}
PROBE_FOLDER = "readiness-probes"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("Readiness: the database did not answer.")
        return Check("database", False, "The database did not answer.")
    return Check("database", True, "The database answers.")


def storage(alias: str) -> Check:
    """Write a small file through Django's storage API (so S3 is checked the same way), read it back,
    delete it."""
    what = STORAGES[alias]
    name = f"storage:{alias}"
    content = uuid.uuid4().hex.encode()
    try:
        store = storages[alias]
        saved = store.save(f"{PROBE_FOLDER}/{content.decode()}.txt", ContentFile(content))
        try:
            with store.open(saved, "rb") as probe:
                read = probe.read()
        finally:
            store.delete(saved)
    except Exception:
        logger.exception("Readiness: %s could not be written, read or cleaned.", what)
        return Check(name, False, f"Could not write a file to {what} and read it back.")
    if read != content:
        logger.error("Readiness: %s gave back other bytes than were written.", what)
        return Check(name, False, f"A file written to {what} came back with other bytes.")
    return Check(name, True, f"A file was written to {what} and read back.")


def workers() -> Check:
    try:
        alive = len(live_workers())
    except Exception:
        logger.exception("Readiness: could not read the workers' heartbeats.")
        return Check("workers", False, "Could not ask the database which task workers are alive.")
    if not alive:
        silent = int(settings.WORKER_DEAD_AFTER)
        return Check(
            "workers", False,
            f"No task worker has reported in the last {silent} seconds, so conversions would wait: "
            "start one with `manage.py ccweb_worker` (bin/run starts them).",
        )
    return Check("workers", True, f"{alive} task worker(s) alive.")


def run_checks() -> list[Check]:
    return [database(), *(storage(alias) for alias in STORAGES), workers()]
