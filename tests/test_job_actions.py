"""What a user does with a job on its page: cancel, retry, delete, download everything as a zip."""

import functools
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

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


def test_cancel_on_a_finished_job_changes_nothing(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "done.png", png_bytes())
    wait_for(lambda: ended(job))
    assert job.status == "finished"
    response = client.post(reverse("conversions:job_cancel", args=[job.uuid]), follow=True)
    html = response.content.decode()
    assert "already ended, so there was nothing to cancel" in html
    assert "The conversion was cancelled." not in html
    assert 'class="message error"' not in html
    assert "Cancel conversion" not in html  # the page does not offer it
    job.refresh_from_db()
    assert (job.status, job.error_code, job.files.count()) == ("finished", "", 1)


def plain_upload(client, filename: str, content: bytes) -> tuple[ConversionJob, requests.Response]:
    """Without JavaScript: the form creates the job, then the file is posted to the API's upload URL."""
    response = client.post(reverse("conversions:convert"), {"output_format": "jpg"})
    assert response.status_code == 302
    job = ConversionJob.objects.get()
    form = job.upload_form
    upload = requests.post(
        form["url"], data=form["parameters"], files={"file": (filename, content)}, allow_redirects=False, timeout=30
    )
    return job, upload


def test_a_refused_plain_upload_comes_back_in_words_and_gives_its_start_back(client, alice, live_engine, settings):
    settings.CONVERSIONS_MAX_UPLOAD_SIZE = 2000
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 5
    client.force_login(alice)
    job, refused = plain_upload(client, "huge.png", png_bytes() + b"\0" * 5000)
    # The engine sends the browser back to the job page, saying why, instead of a JSON body.
    assert refused.status_code == 303
    ccweb = live_engine.removesuffix("/engine")
    assert refused.headers["Location"] == f"{ccweb}{job.get_absolute_url()}?upload_error=FILE_TOO_LARGE"
    page = client.get(refused.headers["Location"], follow=True)
    html = page.content.decode()
    assert "The file was not accepted: it is larger than 2.0\xa0KB" in html
    assert "Choose the file" not in html and "Retry" not in html
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("error", "FILE_TOO_LARGE")
    convert_page = client.get(reverse("conversions:convert")).content.decode()
    assert "You have started 0 of your 5 conversions today." in convert_page
    # Its tasks at the API are ended too: the old form takes nothing any more.
    assert get_client().show_job(job.remote_job_id)["status"] == "error"


def test_a_stale_refusal_does_not_end_a_job_that_has_its_file(client, alice, live_engine, worker):
    client.force_login(alice)
    job, upload = plain_upload(client, "fine.png", png_bytes())
    assert upload.status_code == 303
    # The same form posted again (the browser's Back, then Upload): the task no longer waits.
    form = job.upload_form
    again = requests.post(
        form["url"], data=form["parameters"], files={"file": ("fine.png", png_bytes())},
        allow_redirects=False, timeout=30,
    )
    assert again.headers["Location"].endswith("?upload_error=INVALID_DATA")
    client.get(again.headers["Location"])
    wait_for(lambda: ended(job))
    assert job.status == "finished"


def test_api_clients_without_a_redirect_still_get_json_refusals(client, alice, live_engine, settings):
    settings.CONVERSIONS_MAX_UPLOAD_SIZE = 2000
    client.force_login(alice)
    job = start(client, "jpg", "huge.png", None)
    form = job.upload_form
    refused = requests.post(
        form["url"], data=form["parameters"], files={"file": ("huge.png", b"\0" * 5000)}, timeout=30
    )
    assert (refused.status_code, refused.json()["code"]) == (413, "FILE_TOO_LARGE")


@pytest.fixture
def named_download(tmp_path):
    """A server whose download URL says nothing of the file's name; its response names it."""
    content = png_bytes((30, 20))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Disposition", 'attachment; filename="Holiday snap.png"')
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/download?id=7"
    server.shutdown()


def test_a_url_import_is_named_after_the_file_it_brought(client, alice, live_engine, worker, settings, named_download):
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True  # the source is served on this machine
    client.force_login(alice)
    client.post(reverse("conversions:convert"), {"output_format": "webp", "source_url": named_download})
    job = ConversionJob.objects.get()
    wait_for(lambda: ended(job))
    assert job.status == "finished", job.error_message
    assert job.input_filename == "Holiday snap.png"
    assert [f.filename for f in job.files.all()] == ["Holiday snap.webp"]
    html = client.get(job.get_absolute_url()).content.decode()
    assert "Holiday snap.png → WEBP</h1>" in html
