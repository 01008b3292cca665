"""The dashboard: search, filters, pages, thumbnails, credits, and a constant number of queries."""

import io

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversions.models import ConversionJob, OutputFile
from PIL import Image

from tests.conftest import wait_for
from tests.factories import job_payload
from tests.files import png_bytes
from tests.stub_api import api, reply_json  # noqa: F401  (api is a fixture)
from tests.test_job_actions import ended, start

pytestmark = pytest.mark.django_db


def make_jobs(user, count: int, **fields) -> None:
    jobs = ConversionJob.objects.bulk_create(
        ConversionJob(user=user, output_format=fields.get("output_format", "jpg"), status=fields.get("status", "finished"),
                      input_filename=f"{fields.get('stem', 'photo')}-{n}.png")
        for n in range(count)
    )
    OutputFile.objects.bulk_create(
        OutputFile(job=job, filename=f"{job.input_filename}.{n}.jpg", remote_url="http://127.0.0.1:9/x") for job in jobs for n in range(2)
    )


def queries_for(client, url: str) -> tuple[int, int]:
    """Queries of a first render (rows not cached yet) and of the next one (rows cached)."""
    cache.clear()
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        counts.append(len(captured))
    return counts[0], counts[1]


@pytest.mark.parametrize("name", ["conversions:dashboard", "conversions:dashboard_rows"])
def test_the_number_of_queries_does_not_grow_with_the_jobs(client, alice, name, settings):
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"  # credits: the API is not asked more than once a minute
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    client.force_login(alice)
    make_jobs(alice, 5)
    client.get(reverse(name))  # warm the caches (session, credits)
    few = queries_for(client, reverse(name))
    make_jobs(alice, 495)
    many = queries_for(client, reverse(name))
    assert few == many


def test_search_and_filters_narrow_the_list(client, alice):
    make_jobs(alice, 2, stem="invoice", output_format="pdf")
    make_jobs(alice, 2, stem="holiday", status="error")
    client.force_login(alice)
    url = reverse("conversions:dashboard")
    html = client.get(url, {"q": "invoice"}).content.decode()
    assert "invoice-0.png" in html and "holiday-0.png" not in html
    html = client.get(url, {"status": "error"}).content.decode()
    assert "holiday-1.png" in html and "invoice-1.png" not in html
    html = client.get(url, {"output_format": "pdf", "q": "holiday"}).content.decode()
    assert "No conversion matches." in html


def test_pages_keep_the_filters_and_hold_25_jobs(client, alice):
    make_jobs(alice, 30, stem="scan", output_format="png")
    client.force_login(alice)
    response = client.get(reverse("conversions:dashboard"), {"output_format": "png"})
    assert len(response.context["page"]) == 25
    assert "?output_format=png&amp;page=2" in response.content.decode()
    second = client.get(reverse("conversions:dashboard"), {"output_format": "png", "page": 2})
    assert len(second.context["page"]) == 5


def test_the_list_never_shows_another_users_jobs(client, alice, charlie):
    make_jobs(alice, 3, stem="secret")
    client.force_login(charlie)
    assert "secret-0.png" not in client.get(reverse("conversions:dashboard"), {"q": "secret"}).content.decode()


def test_it_shows_the_accounts_credits_when_the_api_reports_them(client, alice, settings, api):
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    formats = {"data": [{"operation": "convert", "input_format": "docx", "output_format": "pdf", "engine": "office",
                         "credits": 1, "meta": {"group": "document"}}]}
    api.script(reply_json(200, formats), reply_json(200, {"data": {"id": 37116784, "username": "alice", "email": "a@example.com",
                                         "credits": 1000, "links": {"self": f"{api.url}/v2/users/37116784"}}}))
    client.force_login(alice)
    html = client.get(reverse("conversions:dashboard")).content.decode()
    assert "Credits left on the conversion account: 1000" in html
    assert [seen.path for seen in api.seen] == ["/v2/convert/formats", "/v2/users/me"]
    assert api.seen[1].headers["Authorization"] == "Bearer a-cloudconvert-key"
    assert '<option value="pdf">PDF</option>' in html  # the format filter lists the API's outputs


def test_it_says_nothing_of_credits_when_the_api_does_not_count_them(client, alice, live_engine):
    client.force_login(alice)
    assert "Credits left" not in client.get(reverse("conversions:dashboard")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_finished_images_get_a_thumbnail(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "pic.png", png_bytes((300, 200)))
    wait_for(lambda: ended(job))
    wait_for(lambda: job.files.get().thumbnail)
    output = job.files.get()
    html = client.get(reverse("conversions:dashboard")).content.decode()
    thumb_url = reverse("conversions:file_thumbnail", args=[output.uuid])
    assert thumb_url in html
    response = client.get(thumb_url)
    assert response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert max(image.size) == 96


@pytest.mark.parametrize(("filename", "pillow_format"), [("photo.heic", "HEIF"), ("photo.avif", "AVIF"), ("photo.webp", "WEBP")])
def test_thumbnails_are_made_of_modern_photo_formats_too(filename, pillow_format):
    from conversions.thumbnails import thumbnail_png

    source = io.BytesIO()
    Image.new("RGB", (400, 200), (30, 160, 60)).save(source, pillow_format)
    source.seek(0)
    thumbnail = Image.open(io.BytesIO(thumbnail_png(source, filename)))
    assert (thumbnail.format, thumbnail.size) == ("PNG", (96, 48))
    assert thumbnail.getpixel((48, 24))[:3] == pytest.approx((30, 160, 60), abs=12)


def cloudconvert(settings, api) -> None:
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"


FORMATS = {"data": [{"operation": "convert", "input_format": "png", "output_format": "jpg", "engine": "imagemagick",
                     "credits": 1, "meta": {"group": "image"}}]}


def test_a_watched_running_job_shows_the_apis_percent_without_waiting_for_the_poller(client, alice, settings, api):
    """The API only calls back when a job ends: the polled rows ask it about a running job
    whose news is a few seconds old, once per interval however often they are polled."""
    cloudconvert(settings, api)
    ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="film.png", remote_job_id="r-1")
    api.script(reply_json(200, FORMATS), reply_json(200, {"data": job_payload("r-1", "processing")}))
    client.force_login(alice)
    rows = client.get(reverse("conversions:dashboard_rows")).content.decode()
    assert "Processing 40%" in rows
    for _ in range(3):  # polled again at once: the API is not asked again
        assert "Processing 40%" in client.get(reverse("conversions:dashboard_rows")).content.decode()
    assert [seen.path for seen in api.seen] == ["/v2/convert/formats", "/v2/jobs/r-1"]


def test_one_request_asks_about_at_most_a_few_running_jobs(client, alice, settings, api):
    cloudconvert(settings, api)
    jobs = [
        ConversionJob.objects.create(user=alice, output_format="jpg", input_filename=f"{n}.png", remote_job_id=f"r-{n}")
        for n in range(6)
    ]
    api.script(reply_json(200, FORMATS))
    api.script(*[reply_json(200, {"data": job_payload(j.remote_job_id, "processing")}) for j in jobs])
    client.force_login(alice)
    client.get(reverse("conversions:dashboard_rows"))
    asked = [seen.path for seen in api.seen if seen.path.startswith("/v2/jobs/")]
    assert len(asked) == 3
    assert ConversionJob.objects.filter(status="processing").count() == 3


def test_an_idle_dashboard_asks_the_api_nothing(client, alice, settings, api):
    cloudconvert(settings, api)
    make_jobs(alice, 3)
    api.script(reply_json(200, FORMATS))
    client.force_login(alice)
    for _ in range(3):
        assert client.get(reverse("conversions:dashboard_rows")).status_code == 200
    assert [seen.path for seen in api.seen] == ["/v2/convert/formats"]


def test_long_file_names_keep_their_full_name_in_a_title(client, alice):
    name = "x" * 200 + ".png"
    ConversionJob.objects.create(user=alice, output_format="jpg", input_filename=name, status="finished")
    client.force_login(alice)
    rows = client.get(reverse("conversions:dashboard_rows")).content.decode()
    assert f'title="{name}">{name}</a>' in rows
