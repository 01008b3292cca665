"""Standalone tasks (POST /v2/{operation}), the tasks list, retry, delete, imports and the rate limit."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from engine.models import File, Task
from tests.test_engine_helpers import Api, png_bytes, upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def file_server() -> Iterator[str]:
    """A local site serving /photo.png, /moved (redirects to it) and /missing (404)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/photo.png")
                self.end_headers()
            elif self.path == "/photo.png":
                body = png_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def wait_task(api: Api, task_id: str) -> dict:
    return api.get(f"sync/v2/tasks/{task_id}").json()["data"]


def test_standalone_tasks_chain_by_id_and_answer_201(live_engine: str, worker) -> None:
    api = Api(live_engine)
    created = api.post("v2/import/upload", {"name": "my-upload", "operation": "import/upload"})
    assert created.status_code == 201
    assert created.content.startswith(b'{"data":')
    imported = created.json()["data"]
    assert imported["job_id"] is None and imported["status"] == "waiting"
    assert imported["result"]["form"]["parameters"]

    convert = api.post("v2/convert", {"input": imported["id"], "output_format": "webp"}).json()["data"]
    export = api.post("v2/export/url", {"input": [convert["id"]]}).json()["data"]
    assert convert["depends_on_task_ids"] == [imported["id"]]
    assert upload(imported, png_bytes(), "pic.png").status_code == 201

    export = wait_task(api, export["id"])

    assert export["status"] == "finished"
    assert export["result"]["files"][0]["filename"] == "pic.webp"
    assert (
        requests.get(export["result"]["files"][0]["url"], timeout=30).headers["Content-Type"] == "image/webp"
    )


def test_a_standalone_task_refuses_unknown_inputs_and_operations(live_engine: str) -> None:
    api = Api(live_engine)
    response = api.post(
        "v2/convert", {"input": "00000000-0000-0000-0000-000000000000", "output_format": "png"}
    )
    assert response.status_code == 422
    assert response.json()["errors"]["input"]
    assert api.post("v2/teleport", {}).status_code == 404


def test_the_tasks_list_filters_by_job_status_and_operation(live_engine: str) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {"a": {"operation": "import/upload"}, "b": {"operation": "export/url", "input": "a"}}
    )
    api.post("v2/import/upload", {})

    everything = api.get("v2/tasks").json()
    assert len(everything["data"]) == 3
    assert everything["meta"]["per_page"] == 100
    in_job = api.get("v2/tasks", params={"filter[job_id]": job["id"]}).json()["data"]
    assert {t["name"] for t in in_job} == {"a", "b"}
    exports = api.get("v2/tasks", params={"filter[operation]": "export/url"}).json()["data"]
    assert [t["name"] for t in exports] == ["b"]
    assert api.get("v2/tasks", params={"filter[status]": "finished"}).json()["data"] == []


def test_retry_creates_a_new_task_pointing_at_the_old_one(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "upload": {"operation": "import/upload"},
            "convert": {
                "operation": "convert",
                "input": "upload",
                "input_format": "png",
                "output_format": "jpg",
            },
        }
    )
    upload(job["tasks"][0], b"broken", "bad.png")
    failed = api.wait_job(job["id"])["tasks"][1]
    assert failed["status"] == "error"

    response = api.post(f"v2/tasks/{failed['id']}/retry")

    assert response.status_code == 201
    retry = response.json()["data"]
    assert retry["id"] != failed["id"]
    assert retry["retry_of_task_id"] == failed["id"] == retry["copy_of_task_id"]
    assert retry["depends_on_task_ids"] == failed["depends_on_task_ids"]
    assert wait_task(api, retry["id"])["status"] == "error"  # same input, same verdict
    shown = api.get(f"v2/tasks/{failed['id']}", params={"include": "retries"}).json()["data"]
    assert [r["id"] for r in shown["retries"]] == [retry["id"]]


def test_deleting_a_task_removes_it_and_its_files(live_engine: str) -> None:
    api = Api(live_engine)
    task = api.post("v2/import/upload", {}).json()["data"]
    upload(task, png_bytes())
    assert File.objects.count() == 1

    assert api.delete(f"v2/tasks/{task['id']}").status_code == 204

    assert api.get(f"v2/tasks/{task['id']}").status_code == 404
    assert not File.objects.exists()


def test_base64_and_raw_imports_store_their_content(live_engine: str, worker) -> None:
    api = Api(live_engine)
    encoded = api.post("v2/import/base64", {"file": base64.b64encode(b"hello").decode(), "filename": "a.txt"})
    raw = api.post("v2/import/raw", {"file": "plain text", "filename": "b.txt"})
    assert encoded.status_code == raw.status_code == 201

    assert wait_task(api, encoded.json()["data"]["id"])["result"]["files"] == [
        {"filename": "a.txt", "size": 5}
    ]
    assert wait_task(api, raw.json()["data"]["id"])["result"]["files"] == [{"filename": "b.txt", "size": 10}]

    invalid = api.post("v2/import/base64", {"file": "***", "filename": ""}).json()["errors"]
    assert set(invalid) == {"file", "filename"}


def test_url_import_follows_redirects_when_private_addresses_are_allowed(
    live_engine: str, worker, file_server: str, settings
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    task = api.post("v2/import/url", {"url": f"{file_server}/moved"}).json()["data"]

    task = wait_task(api, task["id"])

    assert task["status"] == "finished"
    assert task["result"]["files"] == [{"filename": "photo.png", "size": len(png_bytes())}]


def test_url_import_refuses_loopback_addresses_by_default(live_engine: str, worker, file_server: str) -> None:
    api = Api(live_engine)
    task = api.post("v2/import/url", {"url": f"{file_server}/photo.png"}).json()["data"]

    task = wait_task(api, task["id"])

    assert task["status"] == "error"
    assert "private or local address" in task["message"]


def test_url_import_enforces_the_size_limit_and_reports_http_errors(
    live_engine: str, worker, file_server: str, settings
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    settings.ENGINE_MAX_UPLOAD_SIZE = 10
    api = Api(live_engine)
    big = api.post("v2/import/url", {"url": f"{file_server}/photo.png"}).json()["data"]
    missing = api.post("v2/import/url", {"url": f"{file_server}/missing"}).json()["data"]

    assert wait_task(api, big["id"])["code"] == "FILE_TOO_LARGE"
    assert "404" in wait_task(api, missing["id"])["message"]
    assert api.post("v2/import/url", {"url": "not a url"}).status_code == 422


def test_creates_past_the_rate_limit_get_429_with_retry_after(live_engine: str, settings) -> None:
    settings.ENGINE_RATE_LIMIT = 2
    api = Api(live_engine)
    first = api.post("v2/jobs", {"tasks": {"a": {"operation": "import/upload"}}})
    assert (
        first.status_code,
        first.headers["X-RateLimit-Limit"],
        first.headers["X-RateLimit-Remaining"],
    ) == (
        201,
        "2",
        "1",
    )
    assert api.post("v2/import/upload", {}).headers["X-RateLimit-Remaining"] == "0"

    refused = api.post("v2/jobs", {"tasks": {"a": {"operation": "import/upload"}}})

    assert refused.status_code == 429
    assert refused.json()["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert api.get("v2/jobs").status_code == 200  # reads are never limited
    assert Task.objects.count() == 2


def test_operations_lists_conversions_and_transfers_without_a_key(live_engine: str) -> None:
    everything = requests.get(f"{live_engine}/v2/operations", timeout=30).json()["data"]
    names = {item["operation"] for item in everything}
    assert {"convert", "import/upload", "import/url", "export/url"} <= names
    converts = requests.get(
        f"{live_engine}/v2/operations",
        params={"filter[operation]": "convert", "filter[input_format]": "png"},
        timeout=30,
    ).json()["data"]
    assert converts and all(c["operation"] == "convert" and c["input_format"] == "png" for c in converts)
