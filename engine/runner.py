"""Task and job state machine: who runs next, and what a task ending means for its job.

Statuses only move forward (waiting → processing → finished | error). Every move is a
conditional UPDATE on the expected current status, so a task claimed twice, cancelled while
running or deleted meanwhile never ends up in two states at once.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from engine import processes
from engine.converters import ConversionFailed
from engine.models import File, Job, Task
from engine.operations import perform
from engine.storage import discard_files
from engine.webhooks import first_attempt_inline

logger = logging.getLogger(__name__)

INPUT_TASK_FAILED = ("INPUT_TASK_FAILED", "Input task has failed")
# Operations that do not run in a worker: they finish when the client sends the file.
PASSIVE_OPERATIONS = frozenset({"import/upload"})


# While a worker records a task's outcome: the task its end made ready, for that worker to run next.
_chain = threading.local()


def schedule(task_ids: Iterable[str]) -> None:
    """Run these tasks in a worker once the current transaction commits: queued, except the first
    that a task running in this worker makes ready, which this worker runs itself right after it
    (see `execute`)."""
    from engine.tasks import run_task

    def start(task_id: str) -> None:
        following = getattr(_chain, "following", None)
        if following is not None and not following:
            following.append(task_id)
        else:
            run_task.enqueue(task_id)

    for task_id in task_ids:
        transaction.on_commit(lambda task_id=str(task_id): start(task_id))


def is_runnable(task: Task) -> bool:
    return task.operation not in PASSIVE_OPERATIONS


def inputs_state(task: Task) -> str:
    """ "ready" when every input finished, "failed" when one failed (or is gone), otherwise "pending"."""
    found = dict(Task.objects.filter(pk__in=task.depends_on).values_list("pk", "status"))
    statuses = set(found.values())
    if Task.Status.ERROR in statuses or len(found) < len(task.depends_on):
        return "failed"
    if statuses <= {Task.Status.FINISHED}:
        return "ready"
    return "pending"


def claim(task_id: str) -> Task | None:
    """Move a waiting task to processing; None if someone else already did (or it is gone)."""
    claimed = Task.objects.filter(pk=task_id, status=Task.Status.WAITING).update(
        status=Task.Status.PROCESSING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        percent=0,
        message=None,
    )
    if not claimed:
        return None
    task = Task.objects.select_related("job").filter(pk=task_id).first()
    if task is None:
        return None  # deleted right after the claim
    if task.job_id and task.job.status == Job.Status.WAITING:
        # Only a waiting job changes when one of its tasks starts (statuses only move forward).
        job_settle(task.job_id)
    return task


def task_finish(
    task: Task,
    *,
    files: list[File],
    result: dict | None = None,
    from_status: str = Task.Status.PROCESSING,
    credits: int = 0,
) -> bool:
    """Record a task's success and start what waited for it. False (and the new files are
    discarded) when the task was cancelled or deleted meanwhile."""
    if result is None:
        result = {"files": [{"filename": f.filename, "size": f.size} for f in files]}
    now = timezone.now()
    ended = {
        "status": Task.Status.FINISHED,
        "percent": 100,
        "message": None,
        "code": None,
        "result": result,
        "credits": credits,
        "engine": task.engine,
        "engine_version": task.engine_version,
        "started_at": task.started_at or now,
        "ended_at": now,
    }
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, status=from_status).update(**ended):
            transaction.on_commit(lambda: discard_files([f.path for f in files]))
            return False
        File.objects.bulk_create(files)
        # The caller's object as it now is, without reading it back.
        for field, value in ended.items():
            setattr(task, field, value)
        _start_dependents(task)
        if task.job_id:
            job_settle(task.job_id)
    return True


def task_fail(
    task_id: str,
    *,
    code: str,
    message: str,
    from_statuses: Iterable[str] | None = None,
    engine: tuple[str | None, str | None] = (None, None),
) -> bool:
    """Record a task's failure (and the engine that ran it, when one did); the tasks waiting for it
    fail too (INPUT_TASK_FAILED)."""
    statuses = list(from_statuses or (Task.Status.WAITING, Task.Status.PROCESSING))
    ran_by = {"engine": engine[0], "engine_version": engine[1]} if engine[0] else {}
    with transaction.atomic():
        now = timezone.now()
        updated = Task.objects.filter(pk=task_id, status__in=statuses).update(
            status=Task.Status.ERROR, code=code, message=message, ended_at=now, **ran_by
        )
        if not updated:
            return False
        task = Task.objects.get(pk=task_id)
        failed = [task]
        # Breadth-first over the dependents: each fails because its input did.
        while failed:
            current = failed.pop()
            for dependent in current.dependents.filter(status=Task.Status.WAITING):
                if Task.objects.filter(pk=dependent.pk, status=Task.Status.WAITING).update(
                    status=Task.Status.ERROR,
                    code=INPUT_TASK_FAILED[0],
                    message=INPUT_TASK_FAILED[1],
                    ended_at=now,
                ):
                    failed.append(dependent)
        if task.job_id:
            job_settle(task.job_id)
    return True


def _start_dependents(task: Task) -> None:
    # Locking the waiting dependents makes two workers that end a task's inputs at the same moment
    # take turns here: the second then sees the first one's finish committed, and one of them starts
    # the task (without the lock, each saw the other's input still processing and left it waiting).
    for dependent in task.dependents.filter(status=Task.Status.WAITING).select_for_update(of=("self",)):
        # Reading only this task, which just finished, it is ready: no need to ask.
        state = "ready" if dependent.depends_on == [str(task.pk)] else inputs_state(dependent)
        if state == "ready" and is_runnable(dependent):
            schedule([dependent.pk])
        elif state == "failed":
            task_fail(str(dependent.pk), code=INPUT_TASK_FAILED[0], message=INPUT_TASK_FAILED[1])


def job_settle(job_id: str) -> None:
    """Derive the job's status from its tasks; when it just ended, send its webhooks."""
    # No savepoint when called inside a transaction: a failure here fails the caller's anyway.
    with transaction.atomic(savepoint=False):
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_terminal:
            return
        tasks = list(job.tasks.values_list("status", "payload"))
        statuses = [status for status, _ in tasks]
        failed = any(
            status == Task.Status.ERROR
            and not (isinstance(payload, dict) and payload.get("ignore_error") is True)
            for status, payload in tasks
        )
        now = timezone.now()
        if failed:
            new_status = Job.Status.ERROR
        elif statuses and all(status in (Task.Status.FINISHED, Task.Status.ERROR) for status in statuses):
            new_status = Job.Status.FINISHED
        elif any(status != Task.Status.WAITING for status in statuses):
            new_status = Job.Status.PROCESSING
        else:
            new_status = Job.Status.WAITING
        if new_status == job.status:
            return
        job.status = new_status
        if new_status != Job.Status.WAITING and job.started_at is None:
            job.started_at = now
        if new_status in (Job.Status.FINISHED, Job.Status.ERROR):
            job.ended_at = now
        job.save(update_fields=["status", "started_at", "ended_at"])
        if job.is_terminal:
            from engine.webhooks import announce_job

            event = "job.finished" if new_status == Job.Status.FINISHED else "job.failed"
            transaction.on_commit(lambda: announce_job(job=job, event=event))


DEFAULT_TASK_TIMEOUT = 5 * 3600  # CloudConvert's default
DEFAULT_HEARTBEAT_INTERVAL = 30.0
# How soon a cancel reaches the task's tools (the issue asks for them gone within 2 s).
CANCEL_CHECK_INTERVAL = 0.5


def task_timeout(task: Task) -> int:
    """Seconds the task may run: its own `timeout`, capped by ENGINE_TASK_TIMEOUT."""
    ceiling = int(getattr(settings, "ENGINE_TASK_TIMEOUT", DEFAULT_TASK_TIMEOUT))
    own = task.payload.get("timeout") if isinstance(task.payload, dict) else None
    return min(own, ceiling) if isinstance(own, int) and not isinstance(own, bool) and own > 0 else ceiling


def timed_out_message(task: Task) -> str:
    return f"The task took longer than its timeout of {task_timeout(task)} seconds; raise `timeout` or split the input."


class Heartbeat(threading.Thread):
    """Watches a running task from beside it: touches its heartbeat_at (so recovery can tell a slow
    task from one whose worker died), and the moment it is no longer processing (cancelled, its job
    deleted, timed out by the chores) kills its tools, so the worker is free for the next task."""

    def __init__(self, task_id: str) -> None:
        super().__init__(name=f"engine-heartbeat-{task_id}", daemon=True)
        self.task_id = task_id
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = float(getattr(settings, "ENGINE_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL))
        next_beat = time.monotonic() + interval
        processing = Task.objects.filter(pk=self.task_id, status=Task.Status.PROCESSING)
        try:
            while not self.stopped.wait(CANCEL_CHECK_INTERVAL):
                try:
                    if time.monotonic() >= next_beat:
                        next_beat += interval
                        still = bool(processing.update(heartbeat_at=timezone.now()))
                    else:
                        still = processing.exists()
                except (OperationalError, InterfaceError) as error:
                    # A database hiccup says nothing about the task: keep it running, look again.
                    logger.warning("Engine task %s: could not check its status (%s).", self.task_id, error)
                    connection.close()
                    continue
                if not still:
                    killed = processes.cancel(self.task_id)
                    logger.info("Engine task %s is no longer processing; stopped %d tool(s).", self.task_id, killed)
                    return
        finally:
            connection.close()


def execute(task_id: str) -> None:
    """Run a task in this worker (claim it, perform its operation, record the outcome), then the
    task its end made ready, if any, and so on: an export runs right after its convert, without a
    trip through the queue. Recovery does not depend on that trip: a task whose worker died while
    running it is found by its silent heartbeat, one left waiting by its age (the chores).

    Safe to call twice for the same task: the second call finds it no longer waiting."""
    following: str | None = task_id
    while following is not None:
        following = _execute_one(following)


def _execute_one(task_id: str) -> str | None:
    """One task; returns the task its end made ready for this worker to run next."""
    task = claim(task_id)
    if task is None:
        return None

    def progress(percent: int) -> None:
        Task.objects.filter(pk=task.pk, status=Task.Status.PROCESSING).update(
            percent=max(0, min(99, percent))
        )

    # Named after its owner, so the folder of a worker killed mid-task is found and deleted.
    workdir = processes.temp_folder(f"engine-{task.pk}")
    heartbeat = Heartbeat(task_id)
    heartbeat.start()
    started = time.monotonic()
    try:
        try:
            with processes.serving(task_id):
                outcome = perform(task, workdir, progress)
        finally:
            # No tool runs any more: nothing is left for it to stop (a cancel from now on is seen by
            # the conditional update that records the outcome).
            heartbeat.stopped.set()
            heartbeat.join()
        if time.monotonic() - started > task_timeout(task):
            # Late results are dropped, as CloudConvert does: the task's deadline is part of its contract.
            discard_files([f.path for f in outcome.files])
            raise ConversionFailed("TIMEOUT", timed_out_message(task))
    except ConversionFailed as error:
        with first_attempt_inline():
            task_fail(
                task_id, code=error.code, message=error.message, from_statuses=[Task.Status.PROCESSING],
                engine=(task.engine, task.engine_version),
            )
    except Exception:
        logger.exception("Engine task %s (%s) failed unexpectedly", task_id, task.operation)
        with first_attempt_inline():
            task_fail(
                task_id,
                code="INTERNAL_ERROR",
                message="The engine failed unexpectedly while running this task; the error has been logged.",
                from_statuses=[Task.Status.PROCESSING],
                engine=(task.engine, task.engine_version),
            )
    else:
        _chain.following = []
        try:
            with first_attempt_inline():
                task_finish(task, files=outcome.files, result=outcome.result, credits=outcome.credits)
            return _chain.following[0] if _chain.following else None
        finally:
            _chain.following = None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return None
