import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Team(models.Model):
    """People who share their converted files: a job shared with a team is seen by its members,
    who open its page and download its files (only the job's owner, and the team's owners and
    admins, act on it). Users make teams (the maker is its owner); staff may too, in the admin."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Not unique: teams are made by anyone, and a name taken elsewhere must not tell that it is.
    name = models.CharField(max_length=80)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="conversion_teams", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Read by conversions/retention.py; set by the team's owners and admins on its activity page.
    retention_days = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Stored files of the jobs shared with the team are deleted this many days after the "
        "conversion ended; 0 keeps them; empty: the site's default (CONVERSIONS_RETENTION_DAYS).",
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("conversions:team_detail", args=[self.uuid])


class Membership(models.Model):
    """A user in a team, with a role: owners and admins invite, change roles and remove members
    (only owners touch owners); members also share their jobs with the team; viewers only look
    and download."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
    SHARERS = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_per_team_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def manages(self) -> bool:
        return self.role in self.MANAGERS


class TeamInvitation(models.Model):
    """An invitation to a team sent to an e-mail address. The link's token is kept only as its
    SHA-256: the database alone opens no invitation."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        REVOKED = "revoked", "Revoked"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    # Lower-cased: addresses are compared without regard to case.
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_sha256 = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Inviting an address again replaces its pending invitation (services: invitation_send).
            models.UniqueConstraint(
                fields=["team", "email"], condition=models.Q(status="pending"), name="invitation_one_pending_per_email"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.team} ({self.status})"


class ShareLink(models.Model):
    """A public link to one converted file or to all of a job's files, for people without an
    account. Anyone holding the token downloads, within the link's limits."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # secrets.token_urlsafe(32): 256 random bits. Kept as is, so the owner can copy the link again.
    token = models.CharField(max_length=64, unique=True)
    job = models.ForeignKey("ConversionJob", on_delete=models.CASCADE, related_name="share_links")
    output = models.ForeignKey(
        "OutputFile", on_delete=models.CASCADE, null=True, blank=True, related_name="share_links",
        help_text="The file shared; empty: all of the job's files.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Django's password hash (make_password); empty: no password.
    password = models.CharField(max_length=128, blank=True, default="")
    max_downloads = models.PositiveIntegerField(null=True, blank=True)
    download_count = models.PositiveIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_downloads__isnull=True) | models.Q(max_downloads__gte=1),
                name="share_link_download_limit_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.output or self.job} ({self.download_count} downloads)"

    def get_absolute_url(self) -> str:
        return reverse("conversions:share_link_public", args=[self.token])

    @property
    def state(self) -> str:
        """What the job page says of the link: active, revoked, used up or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.max_downloads is not None and self.download_count >= self.max_downloads:
            return "used up"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


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
    """The webhook's log. Each distinct body accepted is recorded once, by its SHA-256: an exact
    replay is recognised and ignored. Its body is kept (up to CONVERSIONS_WEBHOOK_LOG_BODY_MAX
    bytes, for CONVERSIONS_WEBHOOK_LOG_DAYS) so staff can apply it again. Rejected deliveries are
    logged too, with why, no hash (the same bad body twice is two rejections) and at most the
    first bytes of the body."""

    class Rejection(models.TextChoices):
        BAD_SIGNATURE = "bad_signature", "Missing or bad signature"
        MALFORMED = "malformed", "Malformed body"
        TOO_LARGE = "too_large", "Body too large"

    # Empty for a rejected delivery: several may share a body, and none counts as received.
    body_sha256 = models.CharField(max_length=64, unique=True, null=True, blank=True)
    event = models.CharField(max_length=32, blank=True, default="")
    remote_job_id = models.CharField(max_length=64, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)
    rejected_because = models.CharField(max_length=16, choices=Rejection.choices, blank=True, default="")
    detail = models.CharField(max_length=500, blank=True, default="", help_text="Why it was rejected, in detail.")
    body_size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes received.")
    body = models.BinaryField(
        null=True, blank=True, help_text="As received; cut short for a rejected delivery; empty once too old."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The admin's log, newest first, and the retention sweep of old ones.
            models.Index(fields=["-received_at", "-id"], name="delivery_recent_idx"),
        ]
        permissions = [("replay_webhookdelivery", "Can apply a stored webhook delivery again")]

    def __str__(self) -> str:
        return f"{self.event or self.get_rejected_because_display()} {self.remote_job_id}".strip()


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


class ActivityEvent(models.Model):
    """Something a person (or the system) did to a job, a file, a link or a team: shared, downloaded,
    deleted, joined... Written by conversions/activity.py::record; read by team owners/admins for
    their team, by a user for their own jobs, and by staff in the admin."""

    class Verb(models.TextChoices):
        SHARED = "shared", "shared with a team"
        UNSHARED = "unshared", "stopped sharing"
        DOWNLOADED = "downloaded", "downloaded"
        DELETED = "deleted", "deleted"
        MEMBER_INVITED = "member_invited", "invited a member"
        MEMBER_JOINED = "member_joined", "joined"
        MEMBER_DECLINED = "member_declined", "declined an invitation"
        MEMBER_LEFT = "member_left", "left"
        MEMBER_REMOVED = "member_removed", "removed a member"
        ROLE_CHANGED = "role_changed", "changed a role"
        TEAM_CREATED = "team_created", "created the team"
        TEAM_DELETED = "team_deleted", "deleted the team"
        LINK_CREATED = "link_created", "created a share link"
        LINK_REVOKED = "link_revoked", "revoked a share link"
        LINK_DOWNLOADED = "link_downloaded", "downloaded through a share link"
        RETENTION_CHANGED = "retention_changed", "changed how long files are kept"
        EXPIRED = "expired", "deleted the stored files past retention"
        ADMIN_ACTION = "admin_action", "ran an admin action"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Who it was when it happened: kept when the account is gone; "system" or "share link" without one.
    actor_label = models.CharField(max_length=150, blank=True, default="")
    verb = models.CharField(max_length=24, choices=Verb.choices)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="activity")
    # Whose job it concerns, so its owner sees what others did with it even once the job is deleted.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        ConversionJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="activity"
    )
    # What it was done to, as it was named then: the row itself may be deleted by the event.
    target_type = models.CharField(max_length=32, blank=True, default="")
    target_label = models.CharField(max_length=255, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A team's activity page, newest first.
            models.Index(fields=["team", "-created_at", "-id"], name="activity_team_recent_idx"),
            # A user's own activity (their jobs), newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="activity_owner_recent_idx"),
        ]

    # How a page tells each event: {actor}, {target}, {team}, and {action} (an admin action's name).
    SENTENCES = {
        Verb.SHARED: "{actor} shared {target} with {team}.",
        Verb.UNSHARED: "{actor} stopped sharing {target} with {team}.",
        Verb.DOWNLOADED: "{actor} downloaded {target}.",
        Verb.DELETED: "{actor} deleted {target}.",
        Verb.MEMBER_INVITED: "{actor} invited {target} to {team}.",
        Verb.MEMBER_JOINED: "{actor} joined {team}.",
        Verb.MEMBER_DECLINED: "{target} declined the invitation to {team}.",
        Verb.MEMBER_LEFT: "{actor} left {team}.",
        Verb.MEMBER_REMOVED: "{actor} removed {target} from {team}.",
        Verb.ROLE_CHANGED: "{actor} changed the role of {target} in {team}.",
        Verb.TEAM_CREATED: "{actor} created {team}.",
        Verb.TEAM_DELETED: "{actor} deleted the team {target}.",
        Verb.LINK_CREATED: "{actor} created a share link to {target}.",
        Verb.LINK_REVOKED: "{actor} revoked a share link to {target}.",
        Verb.LINK_DOWNLOADED: "Someone downloaded {target} through a share link.",
        Verb.RETENTION_CHANGED: "{actor} changed how long {team} keeps files.",
        Verb.EXPIRED: "The stored files of {target} were deleted: their retention had passed.",
        Verb.ADMIN_ACTION: "{actor} (staff) used “{action}” on {target} in the admin.",
    }

    def __str__(self) -> str:
        return self.sentence

    @property
    def sentence(self) -> str:
        """The event in words, as the activity pages show it."""
        team = self.team.name if self.team_id and self.team else "a team"
        return self.SENTENCES[self.verb].format(
            actor=self.actor_label or "Someone",
            target=self.target_label or "something",
            team=team,
            action=self.detail.get("action", "an action") if isinstance(self.detail, dict) else "an action",
        )


class QuotaOverride(models.Model):
    """A daily job quota other than CONVERSIONS_DAILY_JOB_QUOTA, for one user or for the members
    of one team (services._quota_take): the user's own override first, else the most generous of
    their teams', else the setting."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="quota_override"
    )
    team = models.OneToOneField(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="quota_override")
    daily_jobs = models.PositiveIntegerField(help_text="Conversions per day; 0: no limit.")
    note = models.CharField(max_length=200, blank=True, default="", help_text="Why, for other staff.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, team__isnull=True) | models.Q(user__isnull=True, team__isnull=False)
                ),
                name="quota_override_for_a_user_or_a_team",
            ),
        ]

    def __str__(self) -> str:
        limit = self.daily_jobs or "no limit"
        return f"{self.user or self.team}: {limit}"
