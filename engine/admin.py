"""Staff view of the engine: jobs with their tasks, tasks with payload/result, files, webhooks, workers."""

from __future__ import annotations

import json

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from engine.models import File, Job, Task, Webhook, Worker
from engine.validation import SECRET_KEYS
from engine.workers import is_alive


def _pretty(value: object) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


class TaskInline(admin.TabularInline):
    model = Task
    fields = ("name", "operation", "status", "code", "message", "percent", "ended_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "tag", "status", "created_at", "ended_at")
    list_filter = ("status", "created_at")
    search_fields = ("id", "tag")
    readonly_fields = ("id", "tag", "status", "webhook_url", "created_at", "started_at", "ended_at")
    inlines = [TaskInline]
    date_hierarchy = "created_at"


class FileInline(admin.TabularInline):
    model = File
    fields = ("filename", "size", "path", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "operation", "status", "code", "job", "created_at")
    list_filter = ("status", "operation", "code", "engine")
    search_fields = ("id", "name", "job__id", "job__tag", "message")
    list_select_related = ("job",)
    exclude = ("payload", "result", "inputs")
    readonly_fields = (
        "id",
        "job",
        "name",
        "operation",
        "status",
        "code",
        "message",
        "percent",
        "credits",
        "engine",
        "engine_version",
        "depends_on",
        "retry_of",
        "copy_of",
        "recoveries",
        "created_at",
        "started_at",
        "ended_at",
        "payload_pretty",
        "result_pretty",
    )
    inlines = [FileInline]

    @admin.display(description="payload")
    def payload_pretty(self, task: Task) -> str:
        # Base64 imports carry whole files: show their size, not their bytes.
        # Credentials sent for the worker (S3 keys) are not shown, not even to staff.
        payload = {key: "<hidden>" if key in SECRET_KEYS else value for key, value in task.payload.items()}
        if task.operation == "import/base64" and isinstance(payload.get("file"), str):
            payload["file"] = f"<{len(payload['file'])} base64 characters>"
        return _pretty(payload)

    @admin.display(description="result")
    def result_pretty(self, task: Task) -> str:
        return _pretty(task.result)


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    list_display = ("filename", "size", "task", "created_at")
    search_fields = ("filename", "task__id")
    readonly_fields = ("id", "task", "filename", "size", "path", "created_at")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("url", "events", "disabled", "failing", "created_at")
    list_filter = ("disabled", "failing")
    readonly_fields = ("id", "signing_secret", "created_at", "updated_at")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    """Live workers, and for a while the rows of dead ones (what they ran is settled by the chores)."""

    list_display = ("worker_id", "hostname", "pid", "queues", "started_at", "last_seen_at", "alive")
    list_filter = ("hostname",)
    search_fields = ("worker_id", "hostname")
    readonly_fields = ("worker_id", "hostname", "pid", "owner", "queues", "started_at", "last_seen_at")

    @admin.display(boolean=True)
    def alive(self, worker: Worker) -> bool:
        return is_alive(worker)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
