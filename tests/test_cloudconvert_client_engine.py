"""ccweb's API client against the real engine, over HTTP: the same code path as with CloudConvert.

A live server hosts the engine and a real worker runs its conversions, so these tests upload a
real PNG through the real upload form and download the real JPEG the engine made of it.
"""

import dataclasses
import io
import uuid

import pytest
from PIL import Image

from conversions.cloudconvert.client import Client, api_config, get_client
from conversions.cloudconvert.errors import InvalidData, NotFound, Unauthenticated
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PNG_SIZE = (64, 48)
CONVERT_TASKS = {
    "upload": {"operation": "import/upload"},
    "to-jpg": {"operation": "convert", "input": "upload", "input_format": "png", "output_format": "jpg"},
    "out": {"operation": "export/url", "input": "to-jpg"},
}


@pytest.fixture
def client(live_engine, settings) -> Client:
    settings.CLOUDCONVERT_API_KEY = ""  # no key: ccweb talks to its engine
    return get_client()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", PNG_SIZE, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def task_named(job: dict, name: str) -> dict:
    return next(task for task in job["tasks"] if task["name"] == name)


def ended(client: Client, job_id: str) -> dict:
    """The job once it is finished or failed, polled the way ccweb's fallback poller does."""

    def check() -> dict | None:
        job = client.show_job(job_id)
        return job if job["status"] in ("finished", "error") else None

    return wait_for(check, timeout=60, interval=0.2)


def upload_png(client: Client, job: dict) -> None:
    upload = task_named(job, "upload")
    assert upload["status"] == "waiting"
    client.upload(upload["result"]["form"], io.BytesIO(png_bytes()), "picture.png")


def test_it_converts_a_png_to_a_jpg(client, worker):
    job = client.create_job(tasks=CONVERT_TASKS, tag="engine-test")
    assert job["tag"] == "engine-test"
    upload_png(client, job)

    job = ended(client, job["id"])

    assert job["status"] == "finished", job
    [exported] = task_named(job, "out")["result"]["files"]
    assert exported["filename"].endswith(".jpg")
    dest = io.BytesIO()
    written = client.download(exported["url"], dest)
    assert written == len(dest.getvalue()) > 0
    image = Image.open(io.BytesIO(dest.getvalue()))
    assert (image.format, image.size) == ("JPEG", PNG_SIZE)


def test_it_waits_for_a_job_on_the_sync_api(client, worker):
    job = client.create_job(tasks=CONVERT_TASKS)
    upload_png(client, job)

    waited = client.wait_job(job["id"])

    assert waited["status"] == "finished", waited
    assert task_named(waited, "out")["result"]["files"][0]["url"]


def test_it_lists_jobs_filtered_by_status(client, worker):
    finished = client.create_job(tasks=CONVERT_TASKS)
    upload_png(client, finished)
    assert ended(client, finished["id"])["status"] == "finished"
    pending = client.create_job(tasks=CONVERT_TASKS)

    listed = client.list_jobs(status="finished")

    ids = [job["id"] for job in listed["data"]]
    assert finished["id"] in ids and pending["id"] not in ids
    assert set(listed) >= {"data", "links", "meta"}
    assert [job["id"] for job in client.list_jobs(status="error")["data"]] == []


def test_it_shows_a_task_waiting_for_its_upload(client):
    job = client.create_job(tasks=CONVERT_TASKS)

    task = client.show_task(task_named(job, "upload")["id"])

    assert (task["status"], task["operation"], task["job_id"]) == ("waiting", "import/upload", job["id"])
    assert task["result"]["form"]["url"].startswith("http")
    assert isinstance(task["result"]["form"]["parameters"], dict)


def test_it_cancels_a_waiting_upload_task(client, worker):
    job = client.create_job(tasks=CONVERT_TASKS)
    upload_id = task_named(job, "upload")["id"]

    cancelled = client.cancel_task(upload_id)

    assert (cancelled["id"], cancelled["status"], cancelled["code"]) == (upload_id, "error", "CANCELLED")
    assert client.show_task(upload_id)["code"] == "CANCELLED"
    assert ended(client, job["id"])["status"] == "error"


def test_it_retries_a_cancelled_task(client):
    job = client.create_job(tasks=CONVERT_TASKS)
    upload_id = task_named(job, "upload")["id"]
    client.cancel_task(upload_id)

    retried = client.retry_task(upload_id)

    assert retried["id"] != upload_id
    assert (retried["retry_of_task_id"], retried["status"]) == (upload_id, "waiting")


def test_it_deletes_a_job(client):
    job = client.create_job(tasks=CONVERT_TASKS)

    client.delete_job(job["id"])

    with pytest.raises(NotFound):
        client.show_job(job["id"])


def test_it_raises_not_found_for_an_unknown_job(client):
    with pytest.raises(NotFound) as caught:
        client.show_job(str(uuid.uuid4()))
    assert caught.value.status == 404


def test_it_refuses_a_job_without_tasks(client):
    with pytest.raises(InvalidData) as caught:
        client.create_job(tasks={})
    assert (caught.value.status, caught.value.code) == (422, "INVALID_DATA")
    assert "tasks" in caught.value.errors


def test_it_lists_png_to_jpg_among_the_formats(client):
    formats = client.list_formats(input_format="png")
    assert any(item["output_format"] == "jpg" for item in formats)
    assert all(item["input_format"] == "png" for item in formats)


def test_it_returns_the_account(client):
    account = client.me()
    assert isinstance(account, dict) and "id" in account


def test_it_raises_unauthenticated_with_a_wrong_key(live_engine, settings):
    settings.CLOUDCONVERT_API_KEY = ""
    client = Client(dataclasses.replace(api_config(), api_key="not-the-engine-key"))
    with pytest.raises(Unauthenticated) as caught:
        client.me()
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (401, "UNAUTHENTICATED", False)
