"""The engine and ccweb keep their files in S3 when configured: a whole conversion with both
storages on an S3-compatible server (moto's, on this machine)."""

import io

import boto3
import pytest
from django.core.files.storage import storages
from moto.server import ThreadedMotoServer
from PIL import Image

from conversions.models import ConversionJob
from tests.conftest import wait_for
from tests.files import png_bytes
from tests.test_job_actions import ended, start

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "ccweb-test"


@pytest.fixture
def s3(settings):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"  # noqa: SLF001  (moto keeps the bound port there)
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **credentials).create_bucket(Bucket=BUCKET)
    options = {"bucket_name": BUCKET, "endpoint_url": endpoint, "access_key": "test", "secret_key": "test",
               "region_name": "us-east-1", "default_acl": None}
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "ccweb"}},
        "engine": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "engine"}},
    }
    storages._storages.clear()  # noqa: SLF001  (storages are built once per alias and cached)
    yield boto3.client("s3", endpoint_url=endpoint, **credentials)
    storages._storages.clear()  # noqa: SLF001
    server.stop()


def test_a_conversion_keeps_every_file_in_the_bucket(client, alice, live_engine, worker, s3):
    client.force_login(alice)
    job = start(client, "jpg", "cloud.png", png_bytes((50, 40)))
    wait_for(lambda: ended(job))
    assert job.status == "finished", job.error_message
    wait_for(lambda: job.files.get().file)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("engine/") and k.endswith("cloud.png") for k in keys), keys
    assert any(k.startswith("engine/") and k.endswith("cloud.jpg") for k in keys), keys
    assert any(k.startswith("ccweb/outputs/") and k.endswith(".jpg") for k in keys), keys
    download = client.get(job.files.get().get_absolute_url())
    image = Image.open(io.BytesIO(b"".join(download.streaming_content)))
    assert (image.format, image.size) == ("JPEG", (50, 40))
    assert ConversionJob.objects.get().status == "finished"
