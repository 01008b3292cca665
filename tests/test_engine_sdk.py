"""The official CloudConvert Python SDK (2.1.0 from PyPI) against the live engine, base URL only.

The SDK lives in its own venv (var/sdk-venv): its wheel installs a top-level `tests` package
that would shadow ours. The script below is what an SDK user writes; it runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import wait_for
from tests.test_engine_helpers import Receiver, png_bytes, receiver  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

SDK_VERSION = "2.1.0"

SDK_SCRIPT = r"""
import json, os, sys
import cloudconvert

base, key, workdir = os.environ["ENGINE_URL"], os.environ["ENGINE_API_KEY"], os.environ["WORKDIR"]
cloudconvert.configure(api_key=key, endpoint=base, sync_endpoint=base + "/sync")
report = {}

job = cloudconvert.Job.create(payload={
    "tag": "sdk",
    "webhook_url": os.environ["WEBHOOK_URL"],
    "tasks": {
        "upload": {"operation": "import/upload"},
        "convert": {"operation": "convert", "input": "upload", "output_format": "jpg", "quality": 80},
        "export": {"operation": "export/url", "input": "convert"},
    },
})
upload_task = next(t for t in job["tasks"] if t["name"] == "upload")
report["uploaded"] = cloudconvert.Task.upload(file_name=os.path.join(workdir, "photo.png"), task=upload_task)
job = cloudconvert.Job.wait(id=job["id"])
report["job_status"] = job["status"]
export = next(t for t in job["tasks"] if t["operation"] == "export/url" and t["status"] == "finished")
file = export["result"]["files"][0]
report["downloaded"] = cloudconvert.download(filename=os.path.join(workdir, file["filename"]), url=file["url"])
report["shown"] = cloudconvert.Job.show(id=job["id"])["id"] == job["id"]
report["listed_jobs"] = [j["id"] for j in cloudconvert.Job.all({"filter[tag]": "sdk"})]
report["listed_tasks"] = len(cloudconvert.Task.all({"filter[job_id]": job["id"]}))

waiting = cloudconvert.Task.create(operation="import/upload", payload={"name": "later"})
report["cancelled"] = cloudconvert.Task.cancel(id=waiting["id"])
report["cancel_code"] = cloudconvert.Task.find(id=waiting["id"])["code"]
convert = next(t for t in job["tasks"] if t["name"] == "convert")
retried = cloudconvert.Task.retry(id=convert["id"])
report["retry_of"] = retried["retry_of_task_id"]
report["retry_status"] = cloudconvert.Task.wait(id=retried["id"])["status"]
report["task_deleted"] = cloudconvert.Task.delete(id=retried["id"])
report["job_deleted"] = cloudconvert.Job.delete(id=job["id"])
report["job_gone"] = cloudconvert.Job.find(id=job["id"]).get("code")
report["job_id"] = job["id"]
print(json.dumps(report))
"""

VERIFY_SCRIPT = r"""
import os, sys
import cloudconvert
body = open(os.environ["BODY_FILE"], encoding="utf-8").read()
print(cloudconvert.Webhook.verify(body, os.environ["SIGNATURE"], os.environ["SECRET"]))
"""


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    venv = Path(settings.BASE_DIR) / "var" / "sdk-venv"
    python = venv / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import importlib.metadata as m; assert m.version('cloudconvert') == '{SDK_VERSION}'",
    ]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"cloudconvert=={SDK_VERSION}"],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        pytest.fail(
            f"cloudconvert {SDK_VERSION} could not be installed from the package index: {install.stderr[-500:]}"
        )
    return python


def run(python: Path, script: str, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [str(python), "-c", script],
        cwd=cwd,  # never our project folder: the SDK must not see our `tests` package, nor we its
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_official_python_sdk_works_by_changing_only_the_base_url(
    sdk_python: Path, live_engine: str, worker, receiver: Receiver, tmp_path: Path
) -> None:
    (tmp_path / "photo.png").write_bytes(png_bytes((32, 32)))

    report = json.loads(
        run(
            sdk_python,
            SDK_SCRIPT,
            tmp_path,
            ENGINE_URL=live_engine,
            ENGINE_API_KEY=settings.ENGINE_API_KEY,
            WORKDIR=str(tmp_path),
            WEBHOOK_URL=receiver.url,
        )
    )

    assert report["uploaded"] is True
    assert report["job_status"] == "finished"
    assert report["downloaded"] and Path(report["downloaded"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert report["shown"] is True
    assert report["listed_jobs"] == [report["job_id"]]
    assert report["listed_tasks"] == 3
    assert report["cancelled"] is True and report["cancel_code"] == "CANCELLED"
    assert report["retry_of"] and report["retry_status"] == "finished"
    assert report["task_deleted"] is True and report["job_deleted"] is True
    assert report["job_gone"] == "NOT_FOUND"

    delivery = wait_for(lambda: receiver.deliveries and receiver.deliveries[0])
    (tmp_path / "body.json").write_bytes(delivery.body)
    verified = run(
        sdk_python,
        VERIFY_SCRIPT,
        tmp_path,
        BODY_FILE=str(tmp_path / "body.json"),
        SIGNATURE=delivery.headers["CloudConvert-Signature"],
        SECRET=settings.ENGINE_WEBHOOK_SECRET,
    )
    assert verified == "True"
