"""import/s3 and export/s3 against a bucket on an S3-compatible server (moto's, on this machine),
over real HTTP with a worker. The engine's own storage stays on disk: only the tasks talk to S3."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from django.urls import reverse
import requests
from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.test_engine_helpers import Api, png_bytes, task_named

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "wJalrXUtnFEMI-the-users-own-secret"


@dataclass
class Bucket:
    name: str
    endpoint: str
    client: object  # boto3's S3 client, for the test to put and read objects

    def credentials(self, **overrides: str) -> dict:
        """The import/s3 and export/s3 parameters that reach this bucket."""
        return {
            "bucket": self.name,
            "region": "us-east-1",
            "endpoint": self.endpoint,
            "access_key_id": "AKIAUSERSKEY",
            "secret_access_key": SECRET,
            **overrides,
        }

    def put(self, key: str, content: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=content)

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"  # noqa: SLF001  (moto keeps the bound port there)
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    client.create_bucket(Bucket="users-bucket")
    yield Bucket("users-bucket", endpoint, client)
    server.stop()


@pytest.fixture
def private_allowed(settings) -> None:
    """moto listens on 127.0.0.1, which the engine refuses unless told otherwise."""
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True


def wait_task(api: Api, task_id: str) -> dict:
    return api.get(f"sync/v2/tasks/{task_id}").json()["data"]


def run(api: Api, operation: str, body: dict) -> dict:
    created = api.post(f"v2/{operation}", body)
    assert created.status_code == 201, created.text
    return wait_task(api, created.json()["data"]["id"])


def test_a_job_converts_an_object_of_the_bucket_and_puts_the_result_back(
    live_engine: str, worker, bucket: Bucket, private_allowed: None
) -> None:
    bucket.put("incoming/holiday.png", png_bytes((50, 40), "blue"))
    api = Api(live_engine)
    job = api.create_job(
        {
            "import": {"operation": "import/s3", "key": "incoming/holiday.png", **bucket.credentials()},
            "convert": {"operation": "convert", "input": "import", "output_format": "jpg"},
            "export": {
                "operation": "export/s3",
                "input": "convert",
                "key_prefix": "converted/",
                "metadata": {"owner": "alice", "batch": 7},
                "content_type": "image/x-holiday",
                "cache_control": "max-age=60",
                "tagging": {"project": "ccweb"},
                **bucket.credentials(),
            },
        }
    )

    job = api.wait_job(job["id"])

    assert job["status"] == "finished", job
    assert task_named(job, "import")["result"]["files"][0]["filename"] == "holiday.png"
    stored = bucket.client.get_object(Bucket=bucket.name, Key="converted/holiday.jpg")
    content = stored["Body"].read()
    image = Image.open(io.BytesIO(content))
    assert (image.format, image.size) == ("JPEG", (50, 40))
    assert stored["Metadata"] == {"owner": "alice", "batch": "7"}
    assert (stored["ContentType"], stored["CacheControl"]) == ("image/x-holiday", "max-age=60")
    tags = bucket.client.get_object_tagging(Bucket=bucket.name, Key="converted/holiday.jpg")["TagSet"]
    assert tags == [{"Key": "project", "Value": "ccweb"}]
    assert task_named(job, "export")["result"] == {"files": [{"filename": "holiday.jpg", "size": len(content)}]}


def test_a_key_prefix_imports_every_object_under_it(
    live_engine: str, worker, bucket: Bucket, private_allowed: None
) -> None:
    bucket.put("batch/", b"")  # the "folder" a console creates
    bucket.put("batch/a.txt", b"first")
    bucket.put("batch/sub/b.txt", b"second")
    bucket.put("elsewhere/c.txt", b"not me")
    api = Api(live_engine)
    job = api.create_job(
        {
            "import": {"operation": "import/s3", "key_prefix": "batch/", **bucket.credentials()},
            "archive": {"operation": "archive", "input": "import", "output_format": "zip"},
            "export": {"operation": "export/url", "input": "archive"},
        }
    )

    job = api.wait_job(job["id"])

    assert job["status"] == "finished", job
    assert task_named(job, "import")["result"]["files"] == [
        {"filename": "a.txt", "size": 5},
        {"filename": "b.txt", "size": 6},
    ]
    (exported,) = task_named(job, "export")["result"]["files"]
    archive = zipfile.ZipFile(io.BytesIO(requests.get(exported["url"], timeout=30).content))
    assert {name: archive.read(name) for name in archive.namelist()} == {"a.txt": b"first", "b.txt": b"second"}


def test_an_export_of_several_files_numbers_the_key(
    live_engine: str, worker, bucket: Bucket, private_allowed: None
) -> None:
    bucket.put("pages/one.txt", b"1")
    bucket.put("pages/two.txt", b"22")
    api = Api(live_engine)
    imported = run(api, "import/s3", {"key_prefix": "pages/", **bucket.credentials()})

    numbered = run(api, "export/s3", {"input": imported["id"], "key": "copies/page-%02d.txt", **bucket.credentials()})
    plain = run(api, "export/s3", {"input": imported["id"], "key": "plain/page.txt", **bucket.credentials()})

    assert (numbered["status"], plain["status"]) == ("finished", "finished")
    assert bucket.keys("copies/") == ["copies/page-01.txt", "copies/page-02.txt"]
    assert bucket.keys("plain/") == ["plain/page-1.txt", "plain/page-2.txt"]
    assert bucket.client.get_object(Bucket=bucket.name, Key="copies/page-02.txt")["Body"].read() == b"22"


def test_a_missing_object_or_bucket_fails_the_task_in_plain_words(
    live_engine: str, worker, bucket: Bucket, private_allowed: None
) -> None:
    bucket.put("present.txt", b"here")
    api = Api(live_engine)

    missing = run(api, "import/s3", {"key": "absent.png", **bucket.credentials()})
    empty = run(api, "import/s3", {"key_prefix": "nothing/", **bucket.credentials()})
    present = run(api, "import/s3", {"key": "present.txt", **bucket.credentials()})
    no_bucket = run(api, "export/s3", {"input": present["id"], **bucket.credentials(bucket="no-such-bucket")})

    assert (missing["status"], missing["code"]) == ("error", "IMPORT_FAILED")
    assert missing["message"] == "No object absent.png in bucket users-bucket."
    assert (empty["code"], empty["message"]) == (
        "IMPORT_FAILED",
        "No object under the prefix nothing/ in bucket users-bucket.",
    )
    assert (no_bucket["status"], no_bucket["code"]) == ("error", "EXPORT_FAILED")
    assert no_bucket["message"] == "The bucket no-such-bucket does not exist; check its name, region and endpoint."


def test_credentials_the_bucket_refuses_fail_the_task_with_access_denied(
    live_engine: str, worker, bucket: Bucket, private_allowed: None
) -> None:
    bucket.put("photo.png", png_bytes())
    api = Api(live_engine)

    with enable_iam_authentication():  # moto now checks keys against its IAM, which knows none
        task = run(api, "import/s3", {"key": "photo.png", **bucket.credentials()})

    assert (task["status"], task["code"]) == ("error", "S3_ACCESS_DENIED")
    assert task["message"].startswith("The bucket refused the credentials: ")
    assert SECRET not in task["message"]


def test_an_object_larger_than_the_limit_is_refused(
    live_engine: str, worker, bucket: Bucket, private_allowed: None, settings
) -> None:
    settings.ENGINE_MAX_UPLOAD_SIZE = 10
    bucket.put("big.bin", b"x" * 11)
    api = Api(live_engine)

    task = run(api, "import/s3", {"key": "big.bin", **bucket.credentials()})

    assert (task["status"], task["code"]) == ("error", "FILE_TOO_LARGE")
    assert "larger than the engine accepts (10 bytes)" in task["message"]


def test_it_names_each_missing_or_malformed_s3_field(live_engine: str) -> None:
    api = Api(live_engine)
    tasks = {
        "import": {"operation": "import/s3", "region": "us east", "endpoint": "not a url"},
        "export": {
            "operation": "export/s3",
            "input": "import",
            "bucket": "out",
            "access_key_id": "AKIA",
            "acl": "everyone",
            "metadata": {"nested": {"no": "objects"}},
            "tagging": ["a"],
            "key": 5,
        },
    }

    response = api.post("v2/jobs", {"tasks": tasks})

    assert response.status_code == 422
    assert set(response.json()["errors"]) == {
        "tasks.import.bucket",
        "tasks.import.region",
        "tasks.import.endpoint",
        "tasks.import.access_key_id",
        "tasks.import.secret_access_key",
        "tasks.import.key",
        "tasks.export.secret_access_key",
        "tasks.export.acl",
        "tasks.export.metadata",
        "tasks.export.tagging",
        "tasks.export.key",
    }
    assert response.json()["errors"]["tasks.import.bucket"] == ["The bucket field is required."]


def test_the_api_never_shows_the_secret_but_the_worker_uses_it(
    live_engine: str, worker, bucket: Bucket, private_allowed: None, admin_client
) -> None:
    bucket.put("doc.txt", b"hello")
    api = Api(live_engine)
    created = api.post("v2/import/s3", {"key": "doc.txt", "session_token": "the-session-token", **bucket.credentials()})
    task_id = created.json()["data"]["id"]
    wait_task(api, task_id)

    answers = [
        created.text,
        api.get(f"v2/tasks/{task_id}", params={"include": "payload"}).text,
        api.get("v2/tasks", params={"include": "payload"}).text,
        api.get(f"sync/v2/tasks/{task_id}", params={"include": "payload"}).text,
    ]

    assert all(SECRET not in text and "the-session-token" not in text for text in answers)
    shown = api.get(f"v2/tasks/{task_id}", params={"include": "payload"}).json()["data"]
    assert shown["status"] == "finished"
    assert shown["payload"]["access_key_id"] == "AKIAUSERSKEY"
    assert "secret_access_key" not in shown["payload"]
    staff_page = admin_client.get(reverse("admin:engine_task_change", args=[task_id])).content.decode()
    assert "AKIAUSERSKEY" in staff_page and "&lt;hidden&gt;" in staff_page
    assert SECRET not in staff_page and "the-session-token" not in staff_page


def test_an_endpoint_on_a_private_address_is_refused(live_engine: str, worker, bucket: Bucket, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    bucket.put("photo.png", png_bytes())
    api = Api(live_engine)

    task = run(api, "import/s3", {"key": "photo.png", **bucket.credentials()})

    assert (task["status"], task["code"]) == ("error", "IMPORT_FAILED")
    assert "private or local address (127.0.0.1)" in task["message"]
    assert task["message"].startswith("The S3 endpoint was refused.")


def test_the_catalogue_lists_both_operations(live_engine: str) -> None:
    listed = requests.get(f"{live_engine}/v2/operations", timeout=30).json()["data"]

    assert {"import/s3", "export/s3"} <= {item["operation"] for item in listed}


def test_an_endpoint_that_does_not_answer_fails_the_task(live_engine: str, worker, private_allowed: None) -> None:
    api = Api(live_engine)
    closed = {"bucket": "any", "endpoint": "http://127.0.0.1:9", "access_key_id": "AKIA", "secret_access_key": SECRET}

    task = run(api, "import/s3", {"key": "photo.png", **closed})

    assert (task["status"], task["code"]) == ("error", "IMPORT_FAILED")
    assert task["message"].startswith("The S3 endpoint could not be reached: ")
    assert task["message"].endswith("Check the endpoint and region.")
