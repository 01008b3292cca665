"""What a user does with a job on its page: cancel, retry, delete, download everything as a zip."""

import functools
import io
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core import mail
from django.urls import reverse
from PIL import Image

from conversions.cloudconvert.client import get_client
from conversions.cloudconvert.errors import NotFound
from conversions.models import ConversionJob
from tests.conftest import wait_for
from tests.files import pdf_bytes, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)
JSON = {"HTTP_ACCEPT": "application/json"}


def start(client, output_format: str, filename: str, content: bytes | None, **fields: str) -> ConversionJob:
    response = client.post(
        reverse("conversions:convert"), {"output_format": output_format, "filename": filename, **fields}, **JSON
    )
    assert response.status_code == 201, response.content
    job = ConversionJob.objects.get(uuid=response.json()["job"])
    if content is not None:
        form = response.json()["upload"]
        upload = requests.post(form["url"], data=form["parameters"], files={"file": (filename, content)}, timeout=30)
        assert upload.status_code == 201
    return job


def ended(job: ConversionJob) -> ConversionJob | None:
    job.refresh_from_db()
    return None if job.is_running else job


def test_a_waiting_job_can_be_cancelled(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "later.png", None)
    response = client.post(reverse("conversions:job_cancel", args=[job.uuid]), follow=True)
    job.refresh_from_db()
    assert job.status == "error"
    assert job.error_message == "The conversion was cancelled."
    assert "The conversion was cancelled." in response.content.decode()
    assert get_client().show_job(job.remote_job_id)["status"] == "error"


def test_delete_asks_first_then_removes_the_job_here_and_at_the_api(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "gone.png", png_bytes())
    wait_for(lambda: ended(job))
    confirm = client.get(reverse("conversions:job_delete", args=[job.uuid]))
    assert "cannot be undone" in confirm.content.decode()
    assert ConversionJob.objects.filter(pk=job.pk).exists()
    response = client.post(reverse("conversions:job_delete", args=[job.uuid]))
    assert response.status_code == 302
    assert not ConversionJob.objects.filter(pk=job.pk).exists()
    with pytest.raises(NotFound):
        get_client().show_job(job.remote_job_id)


def test_all_files_download_as_one_zip(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "png", "book.pdf", pdf_bytes(3))
    wait_for(lambda: ended(job))
    response = client.get(reverse("conversions:job_zip", args=[job.uuid]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="book-png.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["book-1.png", "book-2.png", "book-3.png"]
    assert Image.open(io.BytesIO(archive.read("book-2.png"))).format == "PNG"


def test_a_failed_job_is_retried_with_the_same_file_and_options(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "png", "short.pdf", pdf_bytes(2), option_pages="3")
    wait_for(lambda: ended(job))
    assert job.status == "error"
    assert "page 3" in job.error_message

    def original_exported() -> bool:
        tasks = get_client().show_job(job.remote_job_id)["tasks"]
        return next(t for t in tasks if t["name"] == "export-original")["status"] == "finished"

    wait_for(original_exported)  # the user reads the message before pressing Retry
    response = client.post(reverse("conversions:job_retry", args=[job.uuid]))
    retry = ConversionJob.objects.exclude(pk=job.pk).get()
    assert response["Location"] == retry.get_absolute_url()
    assert (retry.input_filename, retry.options) == ("short.pdf", {"pages": "3"})
    wait_for(lambda: ended(retry))
    imported = next(t for t in retry.tasks if t["name"] == "import")
    assert (imported["operation"], imported["status"]) == ("import/url", "finished")
    assert "page 3" in retry.error_message


def test_the_owner_is_emailed_when_a_job_ends_if_asked(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "mail.png", png_bytes(), notify_by_email="on")
    quiet = start(client, "jpg", "quiet.png", png_bytes())
    wait_for(lambda: ended(job) and ended(quiet))
    wait_for(lambda: len(mail.outbox) == 1)
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "Converted: mail.png → JPG"
    assert job.get_absolute_url() in message.body


@pytest.fixture
def file_server(tmp_path):
    """A plain web server on this machine offering files from a folder."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_file_is_imported_from_a_url(client, alice, live_engine, worker, settings, file_server):
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True  # the source is served on this machine
    folder, base = file_server
    (folder / "remote.png").write_bytes(png_bytes((30, 20)))
    client.force_login(alice)
    source = f"{base}/remote.png"
    response = client.post(reverse("conversions:convert"), {"output_format": "webp", "source_url": source})
    job = ConversionJob.objects.get()
    assert response["Location"] == job.get_absolute_url()
    assert job.source_url == source
    wait_for(lambda: ended(job))
    assert job.status == "finished", job.error_message
    assert job.input_filename == "remote.png"
    (output,) = job.files.all()
    assert output.filename == "remote.webp"


def test_the_upload_url_itself_refuses_files_over_the_size_limit(client, alice, live_engine, worker, settings):
    settings.CONVERSIONS_MAX_UPLOAD_SIZE = 2000
    client.force_login(alice)
    job = start(client, "jpg", "huge.png", None)
    form = job.upload_form
    too_big = png_bytes((400, 400), color=(1, 2, 3, 4)) + b"\0" * 5000
    refused = requests.post(form["url"], data=form["parameters"], files={"file": ("huge.png", too_big)}, timeout=30)
    assert refused.status_code == 413
    assert refused.json()["code"] == "FILE_TOO_LARGE"
    # Nothing is lost: the job still waits for a file that fits.
    small = requests.post(form["url"], data=form["parameters"], files={"file": ("small.png", png_bytes())}, timeout=30)
    assert small.status_code == 201
    wait_for(lambda: ended(job))
    assert job.status == "finished"


def test_another_users_preset_is_not_found(client, alice, charlie):
    from conversions.services import preset_save

    preset = preset_save(user=alice, name="Mine", output_format="jpg", options={"quality": 50})
    client.force_login(charlie)
    assert client.get(reverse("conversions:convert"), {"preset": str(preset.uuid)}).status_code == 404
    assert client.post(reverse("conversions:preset_delete", args=[preset.uuid])).status_code == 404
