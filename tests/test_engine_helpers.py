"""Helpers shared by the engine tests (no tests here): an API client, sample files, a webhook
receiver. The engine is always exercised over real HTTP, the way the SDKs use it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.conf import settings
from PIL import Image

from tests.conftest import wait_for


class Api:
    """The engine's REST API with the Bearer key, as an SDK would call it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {settings.ENGINE_API_KEY}"

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=60, **kwargs)

    def post(self, path: str, body: dict | None = None, **kwargs: object) -> requests.Response:
        return self.session.post(
            f"{self.base}/{path}", json=body if body is not None else {}, timeout=60, **kwargs
        )

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(f"{self.base}/{path}", timeout=60)

    def create_job(self, tasks: dict, **extra: object) -> dict:
        response = self.post("v2/jobs", {"tasks": tasks, **extra})
        assert response.status_code == 201, response.text
        return response.json()["data"]

    def job(self, job_id: str) -> dict:
        return self.get(f"v2/jobs/{job_id}").json()["data"]

    def wait_job(self, job_id: str, timeout: float = 60) -> dict:
        return wait_for(lambda: _ended(self.job(job_id)), timeout=timeout)  # type: ignore[return-value]


def _ended(job: dict) -> dict | None:
    return job if job["status"] in ("finished", "error") else None


def task_named(job: dict, name: str) -> dict:
    return next(task for task in job["tasks"] if task["name"] == name)


def upload(task: dict, content: bytes, filename: str = "input.png", **kwargs: object) -> requests.Response:
    """What every SDK does: the form parameters as fields, then `file` last, no API key."""
    form = task["result"]["form"]
    return requests.post(
        form["url"], data=form["parameters"], files={"file": (filename, content)}, timeout=60, **kwargs
    )


def png_bytes(size: tuple[int, int] = (40, 30), color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def pdf_bytes(pages: int) -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("RGB", (200, 280), color) for color in ("white", "yellow", "blue", "green")[:pages]]
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=72)
    return buffer.getvalue()


CONVERT_TO_JPG = {
    "upload": {"operation": "import/upload"},
    "convert": {"operation": "convert", "input": "upload", "output_format": "jpg"},
    "export": {"operation": "export/url", "input": "convert"},
}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny HTTP server that records webhook deliveries and answers with scripted statuses."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once exhausted
    attempts: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.attempts += 1
            status = state.statuses.pop(0) if state.statuses else 200
            if status < 300:
                state.deliveries.append(Delivery(dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
