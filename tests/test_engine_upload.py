"""The upload form target: signed, expiring, size-limited while streaming, CORS-open."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from engine import signing
from engine.models import File, Task
from tests.conftest import wait_for
from tests.test_engine_helpers import Api, png_bytes, upload

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_ONLY = {"upload": {"operation": "import/upload"}}


def test_it_stores_an_upload_sent_like_the_sdks_and_answers_201(live_engine: str) -> None:
    api = Api(live_engine)
    task = api.create_job(UPLOAD_ONLY)["tasks"][0]

    response = upload(task, png_bytes(), "photo.png")

    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.content.startswith(b'{"data":')
    shown = api.get(f"v2/tasks/{task['id']}").json()["data"]
    assert shown["status"] == "finished"
    assert shown["result"]["files"] == [{"filename": "photo.png", "size": len(png_bytes())}]
    assert File.objects.get(task_id=task["id"]).size == len(png_bytes())


def test_it_accepts_lowercase_unquoted_part_headers_like_the_node_sdk(live_engine: str) -> None:
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    form = task["result"]["form"]
    boundary = "----node-boundary"
    parts = [
        f'--{boundary}\r\ncontent-disposition:form-data;name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in form["parameters"].items()
    ]
    parts.append(
        f'--{boundary}\r\ncontent-disposition:form-data;name="file";filename=node.png\r\n'
        f"content-type:application/octet-stream\r\n\r\n".encode()
        + png_bytes()
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = requests.post(
        form["url"],
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert File.objects.get(task_id=task["id"]).filename == "node.png"


def test_it_rejects_a_forged_signature(live_engine: str) -> None:
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    task["result"]["form"]["parameters"]["signature"] = "0" * 64

    response = upload(task, png_bytes())

    assert response.status_code == 403
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert Task.objects.get(pk=task["id"]).status == "waiting"
    assert not File.objects.exists()


def test_it_rejects_an_expired_form(live_engine: str, settings) -> None:
    settings.ENGINE_URL_EXPIRY = -1
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]

    response = upload(task, png_bytes())

    assert response.status_code == 403
    assert not File.objects.exists()


def test_it_rejects_a_signature_made_for_another_task(live_engine: str) -> None:
    api = Api(live_engine)
    first, second = (api.create_job(UPLOAD_ONLY)["tasks"][0] for _ in range(2))
    second["result"]["form"]["parameters"] = first["result"]["form"]["parameters"]
    assert upload(second, png_bytes()).status_code == 403


def test_it_refuses_an_oversized_upload_with_413_and_stores_nothing(
    live_engine: str, settings, tmp_path: Path
) -> None:
    settings.ENGINE_MAX_UPLOAD_SIZE = 10_000
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]

    response = upload(task, b"x" * 50_000, "big.bin")

    assert response.status_code == 413
    assert response.json()["code"] == "FILE_TOO_LARGE"
    assert Task.objects.get(pk=task["id"]).status == "waiting"
    assert not File.objects.exists()
    engine_dir = tmp_path / "engine"
    assert not engine_dir.exists() or not any(p.is_file() for p in engine_dir.rglob("*"))


def test_it_redirects_a_browser_post_with_303_when_the_task_asks(live_engine: str) -> None:
    task = Api(live_engine).create_job(
        {"upload": {"operation": "import/upload", "redirect": "https://ccweb.example/done?x=1"}}
    )["tasks"][0]

    response = upload(task, png_bytes(), allow_redirects=False)

    assert response.status_code == 303
    assert response.headers["Location"] == "https://ccweb.example/done?x=1"
    assert Task.objects.get(pk=task["id"]).status == "finished"


def test_it_answers_a_cors_preflight(live_engine: str) -> None:
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    response = requests.options(
        task["result"]["form"]["url"],
        headers={
            "Origin": "http://ccweb.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-requested-with",
        },
        timeout=30,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "x-requested-with"


def test_it_refuses_a_second_upload_to_the_same_task(live_engine: str) -> None:
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    assert upload(task, png_bytes()).status_code == 201

    response = upload(task, png_bytes(color="blue"))

    assert response.status_code == 422
    assert response.json()["code"] == "INVALID_DATA"
    assert File.objects.count() == 1


def test_it_requires_the_file_field(live_engine: str) -> None:
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    form = task["result"]["form"]
    response = requests.post(
        form["url"], data=form["parameters"], files={"other": ("a.png", b"x")}, timeout=30
    )
    assert response.status_code == 422
    assert response.json()["errors"]["file"]


def test_download_urls_reject_a_tampered_or_expired_signature(live_engine: str) -> None:
    url = signing.download_url("00000000-0000-0000-0000-000000000000", "a.png")
    assert requests.get(url.replace("signature=", "signature=0"), timeout=30).status_code == 403
    assert (
        requests.get(url.replace("disposition=attachment", "disposition=inline"), timeout=30).status_code
        == 403
    )
    expires = str(int(time.time()) - 10)
    forged = (
        f"{settings.ENGINE_URL}/storage/files/x/a.png?disposition=attachment&expires={expires}&signature=abc"
    )
    response = requests.get(forged, timeout=30)
    assert response.status_code == 403
    assert response.json()["code"] == "INVALID_SIGNATURE"


def test_a_task_can_lower_the_upload_limit_with_max_file_size(live_engine: str) -> None:
    task = Api(live_engine).create_job({"upload": {"operation": "import/upload", "max_file_size": 1000}})[
        "tasks"
    ][0]

    response = upload(task, b"x" * 5000, "big.bin")

    assert response.status_code == 413
    assert "1000 bytes" in response.json()["message"]
    assert upload(task, b"x" * 900, "small.bin").status_code == 201


def test_an_upload_is_moved_into_storage_not_written_twice(live_engine: str, settings, tmp_path: Path) -> None:
    """The file Django streams the upload into is the stored file itself: same inode, no copy left."""
    import http.client
    from urllib.parse import urlsplit

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploading")
    (tmp_path / "uploading").mkdir()
    task = Api(live_engine).create_job(UPLOAD_ONLY)["tasks"][0]
    form = task["result"]["form"]
    content = png_bytes((400, 300)) + b"\0" * 4_000_000
    boundary = "----ccweb-test"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in form["parameters"].items()
    ) + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    url = urlsplit(form["url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("POST", url.path)
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + len(content) + len(tail)))
    connection.endheaders()

    # Most of the file sent (more than the parser's 1 MiB pieces): the server is writing it to its
    # temporary file.
    connection.send(head + content[: 3_000_000])
    receiving = wait_for(lambda: [p for p in (tmp_path / "uploading").iterdir() if p.stat().st_size > 0], timeout=10)
    inode = receiving[0].stat().st_ino
    connection.send(content[3_000_000:] + tail)
    response = connection.getresponse()

    assert response.status == 201, response.read()
    stored = tmp_path / "engine" / File.objects.get(task_id=task["id"]).path
    assert stored.read_bytes() == content
    assert stored.stat().st_ino == inode
    assert not any((tmp_path / "uploading").iterdir())
