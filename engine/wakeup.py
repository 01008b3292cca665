"""Waking idle workers the moment a task is queued, instead of at their next look at the queue.

django-tasks-db's workers poll: a task queued just after a look waits a whole interval (bin/run's
0.5 s was most of a small job's latency). Every enqueue now rings a doorbell once its transaction
commits, and an idle worker waits on the doorbell, with the poll interval only as the fallback (a
task due later, a ring lost to a restart):
- on PostgreSQL, NOTIFY on a channel each worker LISTENs to, on a connection of its own: it reaches
  workers on every machine;
- on SQLite (web server and workers on one machine, sharing its file), a datagram to each worker's
  Unix socket in DATA_DIR/doorbells/, in a folder named after the database file.
The ring carries the queue's name; a worker wakes only for its own queues. A ring reaching a worker
busy with a task waits in its socket until it looks again; any number of rings count as one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import select
import socket
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.dispatch import receiver
from django_tasks.signals import task_enqueued
from django_tasks_db.backend import DatabaseBackend

logger = logging.getLogger(__name__)

CHANNEL = "ccweb_tasks"
# sockaddr_un's limit on a socket's path (107 characters and a NUL).
MAX_SOCKET_PATH = 107


def uses_notify() -> bool:
    return connection.vendor == "postgresql"


def socket_folder() -> Path:
    """Where the workers of this database (one SQLite file) keep their doorbell sockets."""
    return _socket_folder(str(settings.DATA_DIR), str(connection.settings_dict["NAME"]))


@functools.lru_cache(maxsize=8)
def _socket_folder(data_dir: str, database: str) -> Path:
    name = str(Path(database).resolve())
    return Path(data_dir) / "doorbells" / hashlib.sha256(name.encode()).hexdigest()[:12]


def ring(queue_name: str) -> None:
    """Tell the idle workers that a task of queue_name is ready (call after the commit)."""
    if uses_notify():
        call, params = notify_call(queue_name)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {call}", params)
        return
    try:
        bells = list(socket_folder().glob("*.sock"))
    except OSError:
        return
    if not bells:
        return
    message = queue_name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for bell in bells:
            try:
                sender.sendto(message, str(bell))
            except BlockingIOError:
                pass  # its buffer is full of rings it has not read yet: it will wake anyway
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody listens there any more: a worker that died without removing its socket.
                bell.unlink(missing_ok=True)
            except OSError as error:
                logger.warning("Could not ring the worker doorbell %s: %s", bell, error)


def notify_call(queue_name: str) -> tuple[str, list]:
    """The pg_notify() call ringing for queue_name, and its parameters, for a statement of the
    caller's: PostgreSQL sends it when that statement's transaction commits, not at all if it does
    not."""
    return "pg_notify(%s, %s)", [CHANNEL, queue_name]


@receiver(task_enqueued)
def ring_after_commit(sender: type, task_result: object, **kwargs: object) -> None:
    if not issubclass(sender, DatabaseBackend):
        return  # another backend (RQ) wakes its workers itself
    ring_when_committed(task_result.task)  # type: ignore[attr-defined]


def ring_when_committed(task: object) -> None:
    """Ring for the queue of a task just queued, once the current transaction commits (at once
    outside one); not for a task due later: the worker's poll finds it then."""
    run_after = getattr(task, "run_after", None)
    if run_after is not None and run_after.timestamp() > time.time():
        return
    queue_name = task.queue_name  # type: ignore[attr-defined]

    def notify() -> None:
        try:
            ring(queue_name)
        except DatabaseError as error:
            # The task is queued all the same; a worker finds it at its next poll.
            logger.warning("Could not wake the workers for queue %s: %s", queue_name, error)

    transaction.on_commit(notify)


def sweep(doorbells: Path) -> None:
    """Remove the sockets of workers that died without removing theirs (killed), and the folders
    left empty: nobody listens there any more."""
    for bell in doorbells.glob("*/*.sock"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(str(bell))
            except ConnectionRefusedError:
                bell.unlink(missing_ok=True)
            except OSError:
                continue
    for folder in doorbells.glob("*"):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, or not a folder


class Doorbell:
    """What an idle worker waits on: `wait(timeout)` returns at the first ring for one of its queues,
    or after timeout seconds. Listening starts at `open()`, so no ring between a look at the queue and
    the next wait is missed."""

    def __init__(self, queue_names: list[str]) -> None:
        self.queue_names = set(queue_names)
        self.listener: object | None = None  # a psycopg connection LISTENing, on PostgreSQL
        self.socket: socket.socket | None = None
        self.path: Path | None = None
        self.failing = False  # the last try to listen failed (warned once until it works again)

    def wanted(self, queue_name: str) -> bool:
        return "*" in self.queue_names or queue_name in self.queue_names

    def open(self) -> None:
        try:
            if uses_notify():
                self._listen()
            else:
                self._bind()
        except Exception as error:  # noqa: BLE001 - without a doorbell the worker still polls
            if not self.failing:
                logger.warning("Worker doorbell unavailable (%s); looking at the queue every interval instead.", error)
            self.failing = True
            self.close()
        else:
            self.failing = False

    def _listen(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.setdefault("connect_timeout", 5)  # an unreachable server must not hold the worker
        self.listener = psycopg.connect(**params, autocommit=True)
        self.listener.execute(f"LISTEN {CHANNEL}")

    def _bind(self) -> None:
        folder = socket_folder()
        sweep(folder.parent)
        path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        if len(str(path)) > MAX_SOCKET_PATH:
            raise OSError(f"the socket path {path} is longer than {MAX_SOCKET_PATH} characters")
        bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for attempt in range(3):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                bell.bind(str(path))
                break
            except FileNotFoundError:
                if attempt == 2:
                    bell.close()
                    raise
                # Another worker starting at this moment swept the folder while it was still empty.
        bell.setblocking(False)
        self.socket, self.path = bell, path

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self.listener is None and self.socket is None:
            self.open()  # it failed before (the database was away): try again
        while (left := deadline - time.monotonic()) > 0:
            source = self.listener or self.socket
            if source is None:
                time.sleep(left)
                return
            try:
                readable, _, _ = select.select([source.fileno()], [], [], left)
                if readable and self._rung():
                    return
            except Exception as error:  # noqa: BLE001 - a broken listener must not stop the worker
                logger.warning("Worker doorbell failed (%s); listening again.", error)
                self.close()
                self.open()

    def _rung(self) -> bool:
        """Read every ring waiting; True when one is for this worker's queues."""
        queues: list[str] = []
        if self.listener is not None:
            queues = [note.payload for note in self.listener.notifies(timeout=0)]
            if not queues and self.listener.closed:
                raise OSError("the listening connection was closed")
        elif self.socket is not None:
            while True:
                try:
                    queues.append(self.socket.recv(256).decode(errors="replace"))
                except BlockingIOError:
                    break
        return any(self.wanted(queue) for queue in queues)

    def close(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is dropped anyway
                pass
            self.listener = None
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            try:
                self.path.parent.rmdir()  # the last worker of that database leaves no folder behind
            except OSError:
                pass  # others still listen there
            self.path = None
