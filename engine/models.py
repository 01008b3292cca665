"""The engine's state: jobs, their tasks, and the files tasks produce (CloudConvert API v2 shapes)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    """The four statuses of jobs and tasks alike; SDKs crash on any other (PROTOCOL §10.4)."""

    WAITING = "waiting"
    PROCESSING = "processing"
    FINISHED = "finished"
    ERROR = "error"


class Job(models.Model):
    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tag = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    webhook_url = models.URLField(max_length=2000, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # GET /v2/jobs lists newest first, filtered by status and/or tag.
            models.Index(fields=["status", "-created_at"], name="engine_job_status_created"),
            models.Index(fields=["tag", "-created_at"], name="engine_job_tag_created"),
            # Retention cleanup finds jobs that ended long ago.
            models.Index(fields=["ended_at"], name="engine_job_ended"),
            # The rate limit counts the jobs created in the last minute.
            models.Index(fields=["created_at"], name="engine_job_created"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.ERROR)


class Task(models.Model):
    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, null=True, blank=True, related_name="tasks")
    # Unique within a job (the key of the `tasks` map); optional for standalone tasks.
    name = models.CharField(max_length=255, blank=True, default="")
    operation = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    message = models.TextField(null=True, blank=True)
    code = models.CharField(max_length=64, null=True, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    # The parameters as submitted (kept verbatim for debugging and for retries).
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    # Ids (strings) of the tasks whose output this task consumes, in the order given by `input`.
    depends_on = models.JSONField(default=list, blank=True)
    # The same dependencies as a relation, so the runner can ask "who waits for this task?"
    # with an indexed query instead of scanning every waiting task's JSON list.
    inputs = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)
    credits = models.IntegerField(null=True, blank=True)
    engine = models.CharField(max_length=64, null=True, blank=True)
    engine_version = models.CharField(max_length=64, null=True, blank=True)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    copy_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="copies"
    )
    # Touched regularly by the worker running the task: a stale heartbeat means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # How many times stuck-task recovery has put this task back in the queue.
    recoveries = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # GET /v2/tasks filters by status and operation, newest first.
            models.Index(fields=["status", "-created_at"], name="engine_task_status_created"),
            models.Index(fields=["operation", "-created_at"], name="engine_task_op_created"),
            # Stuck-task recovery looks for tasks processing since long ago.
            models.Index(fields=["status", "started_at"], name="engine_task_status_started"),
            # The rate limit and retention look at standalone tasks by creation / end time.
            models.Index(
                fields=["created_at"],
                condition=models.Q(job__isnull=True),
                name="engine_task_standalone_created",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "name"],
                condition=models.Q(job__isnull=False),
                name="engine_task_name_unique_in_job",
            ),
            models.CheckConstraint(
                condition=models.Q(percent__lte=100), name="engine_task_percent_at_most_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.name or self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.ERROR)


class File(models.Model):
    """A file a task produced (an upload, an import, a conversion output, an export archive).

    The bytes live in Django's `storages["engine"]` under `path`. A plain path rather than a
    FileField: FileField binds its storage once at import, and the engine storage is chosen per
    deployment (and per test) through STORAGES."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    path = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "filename"]

    def __str__(self) -> str:
        return self.filename


class Webhook(models.Model):
    """An account webhook created through POST /v2/webhooks, signed with its own secret."""

    class Event(models.TextChoices):
        JOB_CREATED = "job.created"
        JOB_FINISHED = "job.finished"
        JOB_FAILED = "job.failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    signing_secret = models.CharField(max_length=128)
    # Set when the receiver answered 410 Gone: it asked us to stop.
    disabled = models.BooleanField(default=False)
    # Set when the last delivery failed after all its retries.
    failing = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url


class Chore(models.Model):
    """When a periodic engine chore (stuck-task recovery, retention) is next due.

    django-tasks has no scheduler: the chore re-enqueues itself, and this row lets exactly one
    chain of it live (a duplicate finds the chore not due and stops)."""

    name = models.CharField(max_length=64, primary_key=True)
    next_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.next_run_at}"

    @classmethod
    def claim_turn(cls, name: str, every: timedelta) -> bool:
        """Book the chore's next run `every` from now; False when another chain already ran this
        turn (that one then stops)."""
        now = timezone.now()
        cls.objects.get_or_create(name=name, defaults={"next_run_at": now})
        # A little slack: run_after is "not before", and the clocks of workers differ slightly.
        return bool(
            cls.objects.filter(name=name, next_run_at__lte=now + timedelta(seconds=5)).update(next_run_at=now + every)
        )


class Worker(models.Model):
    """A background worker process as it last reported itself (`manage.py ccweb_worker`).

    Each worker touches `last_seen_at` every WORKER_HEARTBEAT_INTERVAL seconds while it lives and
    deletes its row when it stops cleanly; a row left behind names a worker that died. What it was
    running (django-tasks rows naming its worker_id) is then settled by the recovery chores."""

    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    # pid:start-time (engine.processes.owner_token): on the worker's own machine it tells at once,
    # without waiting for the heartbeat to go stale, whether that very process still lives.
    owner = models.CharField(max_length=64)
    queues = models.CharField(max_length=255)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # "Which workers are alive?" (readiness, recovery) filters on the last heartbeat.
            models.Index(fields=["last_seen_at"], name="engine_worker_last_seen"),
        ]

    def __str__(self) -> str:
        return f"worker {self.worker_id} ({self.hostname}, pid {self.pid})"
