"""Cancelling a running conversion stops its tool at once and frees the worker for the next task.

A real `manage.py ccweb_worker` converts a 25-second clip to VP9 with a real ffmpeg; the task is
cancelled (or its job deleted) through the API while ffmpeg runs.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from django_tasks_db.models import DBTaskResult

from tests.conftest import wait_for
from tests.test_engine_helpers import Api, png_bytes, task_named, upload
from tests.test_engine_recovery import (  # noqa: F401 - start_worker is a fixture
    VIDEO_TO_WEBM,
    long_video,
    start_worker,
    tool_pids,
    worker_row,
)

pytestmark = pytest.mark.django_db(transaction=True)

# The bound, with slack for a loaded machine: the worker looks every 0.5 s.
GONE_WITHIN = 2.5


def ended(api: Api, task_id: str) -> dict | None:
    task = api.get(f"v2/tasks/{task_id}").json()["data"]
    return task if task["status"] in ("finished", "error") else None


def ran_on(task_id: str) -> str | None:
    """The worker that ran the engine task's django-tasks row."""
    for result in DBTaskResult.objects.filter(task_path="engine.tasks.run_task", status="SUCCESSFUL"):
        if result.args_kwargs["args"] == [task_id]:
            return result.worker_ids[-1]
    return None


@pytest.mark.parametrize("how", ["cancel the task", "delete the job"])
def test_stopping_a_conversion_kills_its_ffmpeg_and_the_worker_runs_the_next_task(
    live_engine: str, start_worker, tmp_path: Path, how: str
) -> None:
    api = Api(live_engine)
    worker = worker_row(start_worker())
    job = api.create_job(VIDEO_TO_WEBM)
    convert_id = task_named(job, "convert")["id"]
    upload(task_named(job, "upload"), long_video(tmp_path), "clip.mp4")
    wait_for(lambda: tool_pids("ffmpeg", convert_id), timeout=60)

    stopped_at = time.monotonic()
    if how == "cancel the task":
        response = api.post(f"v2/tasks/{convert_id}/cancel")
    else:
        response = api.delete(f"v2/jobs/{job['id']}")
    assert response.status_code in (200, 204), response.text
    wait_for(lambda: not tool_pids("ffmpeg", convert_id), timeout=GONE_WITHIN, interval=0.05)
    print(f"{how}: ffmpeg gone {time.monotonic() - stopped_at:.2f} s after the request")

    if how == "cancel the task":
        task = api.get(f"v2/tasks/{convert_id}").json()["data"]
        assert (task["status"], task["code"]) == ("error", "CANCELLED")
    else:
        assert api.get(f"v2/tasks/{convert_id}").status_code == 404

    picture = base64.b64encode(png_bytes()).decode()
    following = api.post("v2/import/base64", {"file": picture, "filename": "next.png"}).json()["data"]
    done = wait_for(lambda: ended(api, following["id"]), timeout=30)
    assert done["status"] == "finished", done
    assert ran_on(following["id"]) == worker.worker_id
