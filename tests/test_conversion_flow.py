"""One conversion end to end over real HTTP: ccweb creates the job at its engine, the file is
posted through the real upload form, the worker converts, a signed webhook updates ccweb."""

import io
import re
from html.parser import HTMLParser

import pytest
import requests
from django.urls import reverse
from PIL import Image

from conversions.models import ConversionJob, WebhookDelivery
from tests.conftest import wait_for
from tests.files import pdf_bytes, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


class FormParser(HTMLParser):
    """The upload page's form: its action and hidden fields, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "form" and attrs.get("enctype") == "multipart/form-data":
            self.action = attrs["action"]
        if tag == "input" and attrs.get("type") == "hidden" and self.action:
            self.fields[attrs["name"]] = attrs.get("value") or ""


def start_and_upload(client, output_format: str, filename: str, content: bytes, **options: str) -> ConversionJob:
    response = client.post(reverse("conversions:convert"), {"output_format": output_format, **options})
    assert response.status_code == 302, response.content
    job = ConversionJob.objects.get()
    page = client.get(response["Location"])
    form = FormParser()
    form.feed(page.content.decode())
    assert form.action.startswith("http"), "the form posts straight to the API, not to ccweb"
    upload = requests.post(
        form.action, data=form.fields, files={"file": (filename, content)}, allow_redirects=False, timeout=30
    )
    assert upload.status_code == 303
    assert upload.headers["Location"].endswith(job.get_absolute_url())
    return job


def finished(job: ConversionJob) -> ConversionJob | None:
    job.refresh_from_db()
    assert job.status != "error", job.error_message
    return job if job.status == "finished" else None


def test_a_png_becomes_a_jpg_and_the_dashboard_offers_it(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start_and_upload(client, "jpg", "photo.png", png_bytes((64, 48)))
    wait_for(lambda: finished(job))
    assert job.input_filename == "photo.png"
    rows = client.get(reverse("conversions:dashboard_rows")).content.decode()
    assert "photo.png" in rows and "Finished" in rows
    (output,) = job.files.all()
    assert output.filename == "photo.jpg"
    assert output.get_absolute_url() in rows
    download = client.get(output.get_absolute_url())
    content = b"".join(download.streaming_content) if download.status_code == 200 else requests.get(download["Location"], timeout=30).content
    image = Image.open(io.BytesIO(content))
    assert (image.format, image.size) == ("JPEG", (64, 48))


def test_a_three_page_pdf_becomes_three_pngs(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start_and_upload(client, "png", "report.pdf", pdf_bytes(3))
    wait_for(lambda: finished(job))
    files = list(job.files.all())
    assert len(files) == 3
    assert len({f.get_absolute_url() for f in files}) == 3
    page = client.get(job.get_absolute_url()).content.decode()
    for f in files:
        assert f.get_absolute_url() in page
    wait_for(lambda: all(f.file for f in job.files.all()))
    for f in job.files.all():
        image = Image.open(io.BytesIO(b"".join(client.get(f.get_absolute_url()).streaming_content)))
        assert image.format == "PNG"


def test_the_pages_option_reaches_the_converter(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start_and_upload(client, "png", "report.pdf", pdf_bytes(4), option_pages="2-3")
    wait_for(lambda: finished(job))
    assert job.files.count() == 2


def test_a_corrupt_file_fails_with_a_message_the_user_can_act_on(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start_and_upload(client, "jpg", "broken.png", b"\x89PNG\r\n\x1a\nthis is not an image")
    wait_for(lambda: ConversionJob.objects.filter(pk=job.pk, status="error").exists())
    job.refresh_from_db()
    assert re.search(r"try again", job.error_message)
    assert "Traceback" not in job.error_message
    rows = client.get(reverse("conversions:dashboard_rows")).content.decode()
    assert "Failed" in rows


def test_a_job_finishes_by_polling_when_webhooks_cannot_reach_ccweb(client, alice, live_engine, worker, settings):
    client.force_login(alice)
    real_public_url = settings.PUBLIC_URL
    settings.PUBLIC_URL = "http://127.0.0.1:9"  # nothing listens there: every webhook fails
    response = client.post(reverse("conversions:convert"), {"output_format": "jpg"})
    job = ConversionJob.objects.get()
    assert response.status_code == 302
    settings.PUBLIC_URL = real_public_url
    form = job.upload_form
    requests.post(form["url"], data=form["parameters"], files={"file": ("a.png", png_bytes())}, allow_redirects=False, timeout=30)
    wait_for(lambda: finished(job), timeout=60)
    assert not WebhookDelivery.objects.exists(), "no webhook arrived: polling finished the job"
    assert job.files.count() == 1
