"""Writes behind the API: creating jobs and tasks, cancelling, retrying, deleting, receiving uploads."""

from __future__ import annotations

from typing import IO

from django.db import transaction

from engine import runner, signing
from engine.models import File, Job, Task
from engine.storage import discard_files, store_file
from engine.validation import (
    TaskSpec,
    ValidationFailed,
    check_task,
    format_of,
    image_reference,
    input_list,
    is_uuid,
    produced_format,
)

WAITING_FOR_UPLOAD = "Waiting for file upload"


class NotAllowed(Exception):
    """A state change the task's current status forbids (answered as a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.errors = {field: [message]}


def _new_task(*, job: Job | None, spec: TaskSpec, depends_on: list[Task], **extra: object) -> Task:
    task = Task.objects.create(
        job=job,
        name=spec.name,
        operation=spec.operation,
        payload=spec.payload,
        depends_on=[str(t.pk) for t in depends_on],
        **extra,
    )
    if depends_on:
        task.inputs.set(depends_on)
    if task.operation == "import/upload":
        # The form is issued now and stays valid for ENGINE_URL_EXPIRY, like an S3 POST policy.
        task.result = {"form": signing.upload_form(str(task.pk))}
        task.message = WAITING_FOR_UPLOAD
        task.percent = 100
        task.save(update_fields=["result", "message", "percent"])
    return task


def _start(tasks: list[Task]) -> None:
    """Queue the tasks that can run right away; fail those whose inputs already failed.

    Called in the transaction creating the tasks. An input may be ending in the worker at this
    very moment, and its end starts only the dependents it can see: the inputs' rows are locked
    first, so either this transaction reads the input's end, or the worker's comes after ours
    and sees the new task (otherwise both could miss each other and the task would wait forever)."""
    for task in tasks:
        if task.depends_on:
            list(Task.objects.select_for_update().filter(pk__in=task.depends_on).values_list("pk", flat=True))
        state = runner.inputs_state(task) if task.depends_on else "ready"
        if state == "failed":
            runner.task_fail(
                str(task.pk), code=runner.INPUT_TASK_FAILED[0], message=runner.INPUT_TASK_FAILED[1]
            )
        elif state == "ready" and runner.is_runnable(task):
            runner.schedule([task.pk])


@transaction.atomic
def job_create(*, specs: list[TaskSpec], tag: str | None, webhook_url: str | None) -> Job:
    """A job and its tasks (specs already validated, inputs before their readers)."""
    from engine.webhooks import announce_job

    job = Job.objects.create(tag=tag, webhook_url=webhook_url)
    by_name: dict[str, Task] = {}
    for spec in specs:
        depends_on = [by_name[name] for name in spec.dependencies]
        by_name[spec.name] = _new_task(job=job, spec=spec, depends_on=depends_on)
    _start(list(by_name.values()))
    transaction.on_commit(lambda: announce_job(job=job, event="job.created"))
    return job


def _existing_task(task_id: str) -> Task | None:
    return Task.objects.filter(pk=task_id).first() if is_uuid(task_id) else None


def task_create(*, operation: str, payload: dict) -> Task:
    """A standalone task (POST /v2/{operation}); its `input` (and a watermark's `image`) name
    existing task ids."""
    inputs = input_list(payload.get("input")) or []
    known: list[Task] = []
    errors: dict[str, list[str]] = {}
    for task_id in inputs:
        task = _existing_task(task_id)
        if task is None:
            errors.setdefault("input", []).append(f"The input task {task_id} does not exist.")
        else:
            known.append(task)
    # As in a job: the picture's task is waited for like an input, and comes last in depends_on.
    picture: list[Task] = []
    if (image_id := image_reference(payload, operation)) is not None:
        if image_id in inputs:
            errors.setdefault("image", []).append(
                f"The task {image_id} cannot be both an input and the image of this watermark."
            )
        elif (image_task := _existing_task(image_id)) is None:
            errors.setdefault("image", []).append(f"The image task {image_id} does not exist.")
        else:
            picture.append(image_task)
    known_formats = {str(t.pk): produced_format(t.payload, t.operation) or _finished_format(t) for t in known}
    for key, messages in check_task(payload, operation, known_formats=known_formats).items():
        errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationFailed(errors)
    name = payload.get("name") if isinstance(payload.get("name"), str) else ""
    spec = TaskSpec(name=name[:255], operation=operation, payload={**payload, "operation": operation})
    with transaction.atomic():
        task = _new_task(job=None, spec=spec, depends_on=[*known, *picture])
        _start([task])
    return task


def _finished_format(task: Task) -> str | None:
    names = {f.filename for f in task.files.all()}
    formats = {format_of(name) for name in names}
    return formats.pop() if len(formats) == 1 else None


def task_cancel(*, task: Task) -> Task:
    if not runner.task_fail(
        str(task.pk),
        code="CANCELLED",
        message="The task has been cancelled.",
        from_statuses=(Task.Status.WAITING, Task.Status.PROCESSING),
    ):
        raise NotAllowed("status", "Cannot change status: task already completed.")
    task.refresh_from_db()
    return task


def task_retry(*, task: Task) -> Task:
    """A new task with the same operation, payload and inputs; the old one stays as it was."""
    if not task.is_terminal:
        raise NotAllowed("status", "Only a finished or failed task can be retried.")
    inputs = list(Task.objects.filter(pk__in=task.depends_on))
    inputs.sort(key=lambda t: task.depends_on.index(str(t.pk)))
    spec = TaskSpec(name=task.name, operation=task.operation, payload=task.payload)
    with transaction.atomic():
        # The retry is standalone: the old job's name slot stays taken by the old task.
        retry = _new_task(job=None, spec=spec, depends_on=inputs, retry_of=task, copy_of=task)
        _start([retry])
    return retry


def task_delete(*, task: Task) -> None:
    """Delete a task and its files; tasks that were waiting for it can never run, so they fail."""
    paths = list(task.files.values_list("path", flat=True))
    dependents = [str(t.pk) for t in task.dependents.filter(status=Task.Status.WAITING)]
    with transaction.atomic():
        job_id = task.job_id
        task.delete()
        for dependent in dependents:
            runner.task_fail(dependent, code=runner.INPUT_TASK_FAILED[0], message=runner.INPUT_TASK_FAILED[1])
        if job_id:
            runner.job_settle(job_id)
        transaction.on_commit(lambda: discard_files(paths))


def job_delete(*, job: Job) -> None:
    paths = list(File.objects.filter(task__job=job).values_list("path", flat=True))
    with transaction.atomic():
        job.delete()
        transaction.on_commit(lambda: discard_files(paths))


class UploadRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def upload_receive(*, task: Task, filename: str, content: IO[bytes]) -> Task:
    """Store an uploaded file as the result of its import/upload task and start what follows."""
    if task.operation != "import/upload" or task.status != Task.Status.WAITING:
        raise UploadRejected(
            422,
            "INVALID_DATA",
            "This task is not waiting for an upload (already uploaded, failed or cancelled).",
        )
    file = store_file(task, filename, content)
    if not runner.task_finish(task, files=[file], from_status=Task.Status.WAITING):
        raise UploadRejected(
            422, "INVALID_DATA", "This task stopped waiting for an upload while the file arrived."
        )
    return task  # task_finish brought it up to date
