"""Job objects shaped like the API's (PROTOCOL.md §2.1, §3.1), for tests that mock CloudConvert."""

import uuid


def task_payload(name: str, operation: str, status: str, **extra: object) -> dict:
    task = {
        "id": str(uuid.uuid4()),
        "name": name,
        "job_id": None,
        "operation": operation,
        "status": status,
        "message": None,
        "code": None,
        "percent": 100,
        "credits": None,
        "result": None,
        "created_at": "2026-11-23T10:00:00+00:00",
        "started_at": None,
        "ended_at": None,
        "depends_on_task_ids": [],
        "retry_of_task_id": None,
        "copy_of_task_id": None,
        "links": {"self": "https://api.cloudconvert.com/v2/tasks/x"},
    }
    task.update(extra)
    return task


def job_payload(job_id: str, status: str, *, tag: str = "", files: list[dict] | None = None, error: tuple[str, str] | None = None) -> dict:
    """A three-task job (upload, convert, export) in the given state."""
    upload_status = "waiting" if status == "waiting" else "finished"
    convert_status = {"waiting": "waiting", "processing": "processing"}.get(status, "finished")
    upload = task_payload(
        "upload", "import/upload", upload_status,
        result={"form": {"url": "https://storage.cloudconvert.com/tasks", "parameters": {"key": "k"}}}
        if upload_status == "waiting" else {"files": [{"filename": "photo.png", "size": 1234}]},
    )
    convert = task_payload("convert", "convert", convert_status, percent=40 if status == "processing" else 100)
    export = task_payload("export", "export/url", "finished" if status == "finished" else "waiting")
    if status == "finished":
        export["result"] = {"files": files or [{"filename": "photo.jpg", "size": 999, "url": "https://storage.cloudconvert.com/tasks/x/photo.jpg?sig=1"}]}
    if error:
        convert.update(status="error", code=error[0], message=error[1])
        export.update(status="error", code="INPUT_TASK_FAILED", message="Input task has failed")
    for task in (upload, convert, export):
        task["job_id"] = job_id
    return {
        "id": job_id,
        "tag": tag,
        "status": status,
        "created_at": "2026-11-23T10:00:00+00:00",
        "started_at": None,
        "ended_at": None,
        "tasks": [upload, convert, export],
        "links": {"self": f"https://api.cloudconvert.com/v2/jobs/{job_id}"},
    }


def post_signed_webhook(remote_job_id: str, status: str, *, event: str = "job.finished"):
    """POST to ccweb's webhook what the engine sends for a job at `status`, signed as it signs it;
    the response."""
    import json

    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    from conversions.cloudconvert.webhooks import sign

    body = json.dumps({"event": event, "job": job_payload(remote_job_id, status)}).encode()
    return Client().post(
        reverse("conversions:webhook"), data=body, content_type="application/json",
        HTTP_CLOUDCONVERT_SIGNATURE=sign(settings.ENGINE_WEBHOOK_SECRET, body),
    )
