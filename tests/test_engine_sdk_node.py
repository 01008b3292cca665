"""The official CloudConvert Node SDK (`cloudconvert` 3.0.0 from npm) against the live engine, base URL only.

The SDK is installed with npm into var/node-sdk (git-ignored, reused while it holds that version);
tests/sdk/node_sdk_flow.mjs is what an SDK user writes, run with `node` in a subprocess. npm says
3.0.0 wants Node >= 20.11.19, but nothing it runs here needs more than Debian bookworm's Node 18
(global fetch, web streams; the upload source is a file stream), so bin/setup's nodejs will do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from tests.test_engine_helpers import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

SDK_VERSION = "3.0.0"
SCRIPT = Path(__file__).parent / "sdk" / "node_sdk_flow.mjs"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed; bin/setup installs Debian's nodejs and npm")
    return path


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """var/node-sdk with cloudconvert SDK_VERSION in its node_modules, installed once."""
    folder = Path(settings.BASE_DIR) / "var" / "node-sdk"
    installed = folder / "node_modules" / "cloudconvert" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == SDK_VERSION:
        return folder
    npm = _tool("npm")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(
        json.dumps({"name": "ccweb-node-sdk-test", "private": True, "dependencies": {}}, indent=2) + "\n"
    )
    install = subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--engine-strict=false",
            "--save-exact",
            f"cloudconvert@{SDK_VERSION}",
        ],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if install.returncode != 0 or not installed.exists():
        pytest.fail(f"cloudconvert@{SDK_VERSION} could not be installed with npm: {install.stderr[-800:]}")
    return folder


def test_the_official_node_sdk_works_by_changing_only_the_base_url(
    node_sdk: Path, live_engine: str, worker, tmp_path: Path
) -> None:
    (tmp_path / "photo.png").write_bytes(png_bytes((48, 36), "blue"))
    payload = json.dumps(
        {"event": "job.finished", "job": {"id": "d0e1", "tag": "café ☕", "status": "finished"}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    (tmp_path / "webhook.json").write_text(payload, encoding="utf-8")
    signature = hmac.new(settings.ENGINE_WEBHOOK_SECRET.encode(), payload.encode("utf-8"), hashlib.sha256).hexdigest()

    result = subprocess.run(
        [_tool("node"), str(SCRIPT)],
        check=False,
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "SDK_DIR": str(node_sdk),
            "ENGINE_URL": live_engine,
            "ENGINE_API_KEY": settings.ENGINE_API_KEY,
            "INPUT_PNG": str(tmp_path / "photo.png"),
            "OUTPUT_JPG": str(tmp_path / "photo.jpg"),
            "WEBHOOK_PAYLOAD_FILE": str(tmp_path / "webhook.json"),
            "WEBHOOK_SIGNATURE": signature,
            "WEBHOOK_SECRET": settings.ENGINE_WEBHOOK_SECRET,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    job_id = report["job_id"]

    assert report["sdk_version"] == SDK_VERSION
    assert report["me"]["id"] and report["me"]["username"]

    # create, upload, wait (on the sync host), export URL, download
    assert report["created"]["tasks"] == {"upload": "waiting", "convert": "waiting", "export": "waiting"}
    assert report["waited"] == {
        "status": "finished",
        "tasks": {"upload": "finished", "convert": "finished", "export": "finished"},
    }
    assert [f["filename"] for f in report["export_files"]] == ["photo.jpg"]
    assert report["download"]["status"] == 200
    assert report["download"]["content_type"] == "image/jpeg"
    with Image.open(tmp_path / "photo.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (48, 36))
    assert report["download"]["bytes"] == report["export_files"][0]["size"] == (tmp_path / "photo.jpg").stat().st_size

    # lists with filters, then the cancel of the second job's waiting upload task
    assert report["jobs_finished"] == [job_id]
    assert report["jobs_waiting"] == [report["later_job_id"]]
    assert report["job_tasks_listed"] == 3
    assert report["cancel"] == {
        "before": "waiting",
        "form": True,
        "status": "error",
        "code": "CANCELLED",
        "fetched": ["error", "CANCELLED"],
        "job": "error",
    }

    # import/url of the engine's own export link, tasks.wait
    assert report["import_url"] == {
        "id": report["import_url"]["id"],
        "created": "waiting",
        "status": "finished",
        "files": ["again.jpg"],
    }

    # retry (through the SDK's call(): 3.0.0 has no tasks.retry)
    assert report["retry"]["sdk_method"] is False
    assert report["retry"]["retry_of"] == report["retry"]["original"]
    assert report["retry"]["status"] == "finished"

    # errors surface as thrown Errors carrying the Response
    assert report["unknown_job"] == {"message": "Not Found", "status": 404, "code": "NOT_FOUND"}
    assert report["task_deleted"] is True and report["job_deleted"] is True
    assert report["deleted_job"]["status"] == 404

    # webhooks.verify against Python's HMAC-SHA256 of the same UTF-8 bytes
    assert report["webhook"] == {"valid": True, "tampered": False, "wrong_secret": False}

    # Every call reached the engine (the script refuses any other host): the waits (job, import/url
    # task, retried task) went to its sync host, the upload to the form URL without the API key.
    requests = report["requests"]
    assert all(r.split(" ", 1)[1].startswith("/engine/") for r in requests), requests
    assert [r for r in requests if "/sync/" in r] == [
        f"GET /engine/sync/v2/jobs/{job_id}",
        f"GET /engine/sync/v2/tasks/{report['import_url']['id']}",
        f"GET /engine/sync/v2/tasks/{report['retry']['id']}",
    ]
    upload, download = report["anonymous"]
    assert upload.startswith("POST /engine/storage/upload/") and download.endswith("/photo.jpg")
