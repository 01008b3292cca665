"""The blocking API under /sync/v2: reads and creates answer once the job has ended."""

from __future__ import annotations

import base64
import threading
import time

import pytest
import requests

from tests.test_engine_helpers import CONVERT_TO_JPG, Api, png_bytes, task_named, upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_get_job_blocks_until_the_job_finished(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)

    def upload_later() -> None:
        time.sleep(0.5)
        upload(task_named(job, "upload"), png_bytes(), "photo.png")

    uploader = threading.Thread(target=upload_later)
    uploader.start()
    started = time.monotonic()
    response = api.get(f"sync/v2/jobs/{job['id']}")
    uploader.join()

    assert time.monotonic() - started >= 0.5
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "finished"


def test_sync_get_task_blocks_until_the_task_ended(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    task = api.get(f"sync/v2/tasks/{task_named(job, 'export')['id']}").json()["data"]

    assert task["status"] == "finished"
    assert task["result"]["files"][0]["url"]


def test_sync_get_answers_the_current_state_after_the_timeout(live_engine: str, settings) -> None:
    settings.ENGINE_SYNC_TIMEOUT = 0.3
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    response = api.get(f"sync/v2/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "waiting"


def test_sync_post_job_with_redirect_answers_302_to_the_export(live_engine: str, worker) -> None:
    api = Api(live_engine)
    tasks = {
        "import": {
            "operation": "import/base64",
            "file": base64.b64encode(png_bytes()).decode(),
            "filename": "small.png",
        },
        "convert": {"operation": "convert", "input": "import", "output_format": "jpg"},
        "export": {"operation": "export/url", "input": "convert"},
    }
    response = api.post("sync/v2/jobs", {"tasks": tasks, "redirect": True}, allow_redirects=False)

    assert response.status_code == 302
    download = requests.get(response.headers["Location"], timeout=30)
    assert download.headers["Content-Type"] == "image/jpeg"

    created = api.post("sync/v2/jobs", {"tasks": tasks})
    assert created.status_code == 201
    assert created.json()["data"]["status"] == "finished"


def test_sync_get_job_with_redirect_answers_302_to_the_first_export(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    response = api.get(f"sync/v2/jobs/{job['id']}", params={"redirect": "true"}, allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{live_engine}/storage/files/")
