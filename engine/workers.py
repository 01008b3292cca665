"""The background workers: surviving database outages, telling live workers from dead ones, and
settling what a dead one left.

`manage.py ccweb_worker` runs `ResilientWorker`, django-tasks-db's worker loop made to outlast the
database: the stock loop re-raises every database error but "locked" (and bookkeeping errors escape
`run_task`), so one "too many clients" or a SQLite lock held past its timeout ended the process.
An idle worker waits on a doorbell (engine/wakeup.py) that an enqueue rings, not a fixed sleep.
Each worker records itself in `engine.models.Worker` and touches the row from a thread of its own
(a worker busy with an hour-long video is alive); on its machine its owner token also tells at once
whether the process is gone. `recover()` runs when a worker starts and in the chores.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker as DatabaseWorker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from engine import processes
from engine.models import Worker
from engine.wakeup import Doorbell

logger = logging.getLogger(__name__)

# What a database that is restarting, full ("too many clients") or locked raises; anything else
# (a missing table, a bad query) is a bug that retrying cannot fix.
DATABASE_ERRORS = (OperationalError, InterfaceError)

DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_DEAD_AFTER = 120.0
DEFAULT_RETRY_MAX_DELAY = 30.0
FIRST_RETRY_DELAY = 0.5
# A task whose worker died is run once more on another; a second death gives it up.
MAX_RUNS = 2
RECORDED_FIELDS = ["status", "return_value", "finished_at", "exception_class_path", "traceback"]


class WorkerLost(Exception):
    """The worker running a task died (killed, crashed) before the task ended."""


def _seconds(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def retry_delay(failures: int) -> float:
    """Seconds to wait after the n-th failure in a row: 0.5, 1, 2, 4... up to WORKER_RETRY_MAX_DELAY."""
    return min(_seconds("WORKER_RETRY_MAX_DELAY", DEFAULT_RETRY_MAX_DELAY), FIRST_RETRY_DELAY * 2 ** (failures - 1))


def close_connections() -> None:
    """Drop this thread's database connections: a broken one is never usable again."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except DatabaseError:
            pass


class Pulse(threading.Thread):
    """Keeps this worker's row fresh; deletes it when the worker stops cleanly."""

    def __init__(self, worker_id: str, queues: list[str]) -> None:
        super().__init__(name=f"worker-pulse-{worker_id}", daemon=True)
        self.worker_id = worker_id
        self.queues = ",".join(queues)
        self.stopped = threading.Event()

    def beat(self) -> None:
        now = timezone.now()
        if not Worker.objects.filter(worker_id=self.worker_id).update(last_seen_at=now):
            Worker.objects.create(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                owner=processes.owner_token(),
                queues=self.queues,
                started_at=now,
                last_seen_at=now,
            )

    def run(self) -> None:
        interval = _seconds("WORKER_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL)
        try:
            while True:
                try:
                    self.beat()
                except DATABASE_ERRORS as error:
                    logger.warning("Worker %s could not record its heartbeat: %s", self.worker_id, error)
                    close_connections()
                if self.stopped.wait(interval):
                    break
            Worker.objects.filter(worker_id=self.worker_id).delete()
        except DATABASE_ERRORS as error:
            logger.warning("Worker %s could not remove its row on stopping: %s", self.worker_id, error)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


class ResilientWorker(DatabaseWorker):
    """django-tasks-db's worker that waits out database errors instead of dying of them."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.pulse = Pulse(self.worker_id, self.queue_names)
        # A task result that ran but could not be written: written once the database answers again.
        self.unrecorded: DBTaskResult | None = None
        self.recovered = False
        self.doorbell = Doorbell(self.queue_names)

    def run(self) -> None:
        self.pulse.start()
        self.doorbell.open()
        try:
            self.run_resiliently()
        finally:
            self.doorbell.close()
            self.pulse.stop()
            close_connections()

    def run_resiliently(self) -> None:
        failures, last_failure = 0, -math.inf
        # A failure long after the previous one starts the backoff over.
        calm = max(60.0, 2 * _seconds("WORKER_RETRY_MAX_DELAY", DEFAULT_RETRY_MAX_DELAY))
        while self.running:
            try:
                self.catch_up()
                self.serve()
                return
            except DATABASE_ERRORS as error:
                now = time.monotonic()
                failures = failures + 1 if now - last_failure < calm else 1
                last_failure = now
                delay = retry_delay(failures)
                logger.warning(
                    "Worker %s: the database failed (%s: %s); retrying in %.1f s (failure %d in a row).",
                    self.worker_id, type(error).__name__, str(error).strip(), delay, failures,
                )
                close_connections()
                time.sleep(delay)  # a SIGTERM meanwhile exits here (the stock shutdown handler)
                self.startup_delay = False

    def catch_up(self) -> None:
        """What waited for the database: this machine's recovery at start, a result not yet written."""
        if not self.recovered:
            recover()
            self.recovered = True
        if self.unrecorded is not None:
            self.unrecorded.save(update_fields=RECORDED_FIELDS)
            logger.info("Worker %s recorded task %s (%s) late.", self.worker_id, self.unrecorded.id,
                        self.unrecorded.status)
            self.unrecorded = None

    def serve(self) -> None:
        """django-tasks-db's loop, but idle on the doorbell rather than a sleep, and on one database
        connection throughout (the stock loop closes it after every look at the queue when
        CONN_MAX_AGE is 0, so each task paid for a new one; a broken one is closed by run_resiliently)."""
        logger.info("Starting worker worker_id=%s queues=%s", self.worker_id, ",".join(self.queue_names))
        if self.startup_delay and self.interval:
            time.sleep(random.random())  # noqa: S311 - spreads workers started together, nothing secret
            self.startup_delay = False
        while self.running:
            result = self.claim_next()
            if result is not None:
                self.run_task(result)
                if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                    return
                continue
            if self.batch:
                return
            if self.running:
                self.doorbell.wait(self.interval)

    def claim_next(self) -> DBTaskResult | None:
        """The next ready task, claimed for this worker; None when there is none.

        A SQLite database still locked after its busy timeout (SQLITE_TIMEOUT) raises like any other
        outage, so run_resiliently logs it and backs off: the stock loop looked again silently."""
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        with exclusive_transaction(tasks.db):
            result = tasks.get_locked()
            if result is not None:
                result.claim(self.worker_id)
        return result

    def run_task(self, db_task_result: DBTaskResult) -> None:
        try:
            super().run_task(db_task_result)
        except DATABASE_ERRORS:
            # The task ran; the stock code has set its outcome on the object but could not save it.
            self.unrecorded = db_task_result
            raise


# --- Who is alive, and what the dead left --------------------------------------------------------


def is_alive(worker: Worker) -> bool:
    """Heard from within WORKER_DEAD_AFTER and, on this machine, its process still there."""
    cutoff = timezone.now() - timedelta(seconds=_seconds("WORKER_DEAD_AFTER", DEFAULT_DEAD_AFTER))
    if worker.last_seen_at < cutoff:
        return False
    return worker.hostname != socket.gethostname() or processes.owner_alive(worker.owner)


def dead_worker_ids() -> set[str]:
    """Workers known dead: silent for WORKER_DEAD_AFTER, or, on this machine, whose process is gone."""
    return {worker.worker_id for worker in Worker.objects.all() if not is_alive(worker)}


def live_workers() -> list[Worker]:
    return [worker for worker in Worker.objects.all() if is_alive(worker)]


def settle_lost_results() -> int:
    """django-tasks rows a dead worker left RUNNING: queued again if it was their first run (ccweb's
    tasks are safe to run twice; an engine task's claim lets only one run through), failed after that."""
    dead = dead_worker_ids()
    if not dead:
        return 0
    settled = 0
    for result in DBTaskResult.objects.filter(status="RUNNING").only("id", "worker_ids", "task_path"):
        worker_id = result.worker_ids[-1] if result.worker_ids else None
        if worker_id not in dead:
            continue
        running = DBTaskResult.objects.filter(pk=result.pk, status="RUNNING")
        if len(result.worker_ids) < MAX_RUNS:
            settled += running.update(status="READY", started_at=None)
            logger.warning("Task %s (%s) lost its worker %s; queued again.", result.pk, result.task_path, worker_id)
            continue
        message = (
            f"Each of the {len(result.worker_ids)} workers that ran this task stopped (killed or crashed) "
            f"before it ended, the last one {worker_id}; the task was given up."
        )
        settled += running.update(
            status="FAILED",
            finished_at=timezone.now(),
            return_value=None,
            exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
            traceback=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}: {message}\n",
        )
        logger.error("Task %s (%s) lost its worker %s again; failed.", result.pk, result.task_path, worker_id)
    return settled


def forget_dead_workers() -> int:
    """Rows of workers dead for longer than ENGINE_RETENTION (kept until then for the admin)."""
    cutoff = timezone.now() - timedelta(seconds=_seconds("ENGINE_RETENTION", 24 * 3600))
    return Worker.objects.filter(last_seen_at__lt=cutoff).delete()[0]


def recover() -> dict[str, int]:
    """Settle what dead workers left: their tools and temp folders on this machine, their tasks anywhere."""
    return {**processes.reap(), "lost_results": settle_lost_results(), "forgotten_workers": forget_dead_workers()}
