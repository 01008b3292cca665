import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.urls import reverse


class Team(models.Model):
    """People who share their converted files: a job shared with a team is seen by its members,
    who open its page and download its files (only the owner acts on it). Staff manage teams."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="conversion_teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConversionJob(models.Model):
    """One user's conversion: a job at the API (CloudConvert or the engine) and what we know of it."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        PROCESSING = "processing", "Processing"
        FINISHED = "finished", "Finished"
        ERROR = "error", "Failed"

    # A status only moves forwards: late or repeated events never undo a later state.
    STATUS_RANK = {Status.WAITING: 0, Status.PROCESSING: 1, Status.FINISHED: 2, Status.ERROR: 2}
    TERMINAL = frozenset({Status.FINISHED, Status.ERROR})
    # The job's task exporting its input, so a retry can import the same file again.
    ORIGINAL_EXPORT = "export-original"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversion_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    remote_job_id = models.CharField(max_length=64, blank=True, default="")
    tag = models.CharField(max_length=64, blank=True, default="")
    input_filename = models.CharField(max_length=255, blank=True, default="")
    output_format = models.CharField(max_length=16)
    options = models.JSONField(default=dict, blank=True)
    source_url = models.URLField(max_length=2000, blank=True, default="", help_text="Imported from this URL.")
    notify_by_email = models.BooleanField(default=False, help_text="E-mail the owner when the job ends.")
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs",
        help_text="Shared with this team: its members see the job and download its files.",
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True, default="", help_text="Shown to the user.")
    error_code = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True, help_text="The last job object from the API.")
    poll_after = models.DateTimeField(
        null=True, blank=True, help_text="The API asked not to be polled about this job before then (Retry-After)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The dashboard: a user's jobs, newest first.
            models.Index(fields=["user", "-created_at", "-id"], name="job_user_recent_idx"),
            # The dashboard's other list: what teams share, newest first.
            models.Index(fields=["team", "-created_at", "-id"], name="job_team_recent_idx"),
            # Webhooks and polling find a job by the API's id.
            models.Index(fields=["remote_job_id"], name="job_remote_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.input_filename or 'upload'} → {self.output_format} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("conversions:job_detail", args=[self.uuid])

    @property
    def is_running(self) -> bool:
        return self.status not in self.TERMINAL

    @property
    def tasks(self) -> list[dict]:
        return list(self.payload.get("tasks") or [])

    @property
    def task_rows(self) -> list[dict]:
        """The API's tasks with how long each took, for the job page."""
        rows = []
        for task in self.tasks:
            row = dict(task)
            try:
                started = datetime.fromisoformat(task["started_at"])
                ended = datetime.fromisoformat(task["ended_at"])
                row["duration"] = f"{(ended - started).total_seconds():.1f} s"
            except (KeyError, TypeError, ValueError):
                row["duration"] = ""
            rows.append(row)
        return rows

    @property
    def upload_form(self) -> dict | None:
        """The upload form of the job's import/upload task while it still waits for a file."""
        for task in self.tasks:
            if task.get("operation") == "import/upload" and task.get("status") == "waiting":
                return (task.get("result") or {}).get("form")
        return None


class OutputFile(models.Model):
    """A converted file: where the API offers it, and our own copy once stored."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(ConversionJob, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField(null=True, blank=True)
    remote_url = models.TextField(blank=True, default="")
    file = models.FileField(upload_to="outputs/%Y/%m/%d/", blank=True)
    thumbnail = models.FileField(upload_to="thumbnails/%Y/%m/%d/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "filename"], name="output_file_unique_per_job"),
        ]

    def __str__(self) -> str:
        return self.filename

    def get_absolute_url(self) -> str:
        return reverse("conversions:file_download", args=[self.uuid])


class DailyJobCount(models.Model):
    """How many jobs a user started on one day: the row the daily quota is counted on. Starting a
    job locks it, so parallel starts (files dropped together) see each other; deleting a job does
    not give its start back."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    started = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="daily_job_count_unique_per_user_day")]

    def __str__(self) -> str:
        return f"{self.user} {self.day}: {self.started}"


class WebhookDelivery(models.Model):
    """Each distinct webhook body received once: an exact replay is recognised and ignored."""

    body_sha256 = models.CharField(max_length=64, unique=True)
    event = models.CharField(max_length=32)
    remote_job_id = models.CharField(max_length=64, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} {self.remote_job_id}"


class Preset(models.Model):
    """Options a user saved under a name, to convert the next files the same way."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversion_presets")
    name = models.CharField(max_length=80)
    output_format = models.CharField(max_length=16)
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="preset_name_unique_per_user")]

    def __str__(self) -> str:
        return self.name
