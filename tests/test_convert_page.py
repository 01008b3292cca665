"""The new-conversion page: formats and options from the API, server-side validation, limits."""

import pytest
from django.urls import reverse

from conversions.models import ConversionJob
from tests.stub_api import api, reply_json  # noqa: F401  (api is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
URL = reverse("conversions:convert")
JSON = {"HTTP_ACCEPT": "application/json"}


def test_the_picker_groups_the_apis_outputs_by_category(client, alice, live_engine):
    client.force_login(alice)
    html = client.get(URL).content.decode()
    assert '<optgroup label="Images">' in html
    assert '<optgroup label="Documents">' in html
    assert '<option value="jpg">JPG</option>' in html


def test_the_options_form_comes_from_the_options_the_api_declares(client, alice, live_engine):
    client.force_login(alice)
    html = client.get(URL).content.decode()
    for name in ("pages", "pixel_density", "quality", "width", "height", "fit"):
        assert f'data-option-field="{name}"' in html
    assert '<option value="max">max</option>' in html  # fit's possible values


def test_the_browser_gets_the_outputs_valid_for_each_input(client, alice, live_engine):
    client.force_login(alice)
    catalogue = client.get(URL).context["catalogue"]
    assert "jpg" in catalogue["pairs"]["png"]
    assert "pages" in catalogue["pairs"]["pdf"]["png"]
    assert "pages" not in catalogue["pairs"]["png"]["jpg"]


def test_it_creates_a_job_and_returns_its_upload_form_as_json(client, alice, live_engine):
    client.force_login(alice)
    response = client.post(URL, {"output_format": "jpg", "filename": "cat.png", "option_quality": "70"}, **JSON)
    assert response.status_code == 201
    data = response.json()
    assert data["upload"]["url"].startswith(live_engine)
    job = ConversionJob.objects.get(uuid=data["job"])
    assert (job.input_filename, job.options) == ("cat.png", {"quality": 70})


def test_options_not_declared_for_the_conversion_are_not_sent(client, alice, live_engine):
    client.force_login(alice)
    response = client.post(URL, {"output_format": "jpg", "filename": "cat.png", "option_pages": "1-2"}, **JSON)
    assert response.status_code == 201
    assert ConversionJob.objects.get().options == {}


def test_it_refuses_an_impossible_conversion_in_words(client, alice, live_engine):
    client.force_login(alice)
    response = client.post(URL, {"output_format": "xlsx", "filename": "cat.png"}, **JSON)
    assert response.status_code == 400
    assert "PNG files cannot be converted to XLSX" in str(response.json())
    assert not ConversionJob.objects.exists()


def test_it_validates_option_values_on_the_server(client, alice, live_engine):
    client.force_login(alice)
    response = client.post(URL, {"output_format": "png", "filename": "a.pdf", "option_pixel_density": "lots"})
    assert response.status_code == 200
    assert "Enter a whole number." in response.content.decode()
    assert not ConversionJob.objects.exists()


def test_the_daily_quota_is_explained_and_enforced(client, alice, live_engine, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 2
    client.force_login(alice)
    for _ in range(2):
        assert client.post(URL, {"output_format": "jpg", "filename": "a.png"}, **JSON).status_code == 201
    assert "You have started 2 of your 2 conversions today." in client.get(URL).content.decode()
    refused = client.post(URL, {"output_format": "jpg", "filename": "a.png"}, **JSON)
    assert refused.status_code == 429
    assert "today's limit of 2 conversions" in refused.json()["error"]
    assert ConversionJob.objects.count() == 2


def test_the_upload_size_limit_is_shown_before_the_upload(client, alice, live_engine, settings):
    settings.CONVERSIONS_MAX_UPLOAD_SIZE = 5 * 1024 * 1024
    client.force_login(alice)
    html = client.get(URL).content.decode()
    assert "Files up to 5.0\xa0MB each." in html
    assert 'data-max-size="5242880"' in html


def test_options_the_api_refuses_show_under_their_field_and_leave_no_failed_job(client, alice, live_engine):
    client.force_login(alice)
    response = client.post(URL, {"output_format": "png", "filename": "a.pdf", "option_pixel_density": "5000"}, **JSON)
    assert response.status_code == 400
    assert response.json()["errors"]["option_pixel_density"][0]["message"] == (
        "Resolution (DPI) must be between 10 and 1200."
    )
    assert not ConversionJob.objects.exists()
    assert "You have started 0 of" in client.get(URL).content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("option_quality", "500", "Quality must be at most 100."),
        ("option_width", "-5", "Width (pixels) must be at least 1."),
    ],
)
def test_options_no_conversion_accepts_are_refused_on_the_form(client, alice, live_engine, field, value, message):
    """Without JavaScript the file comes after the job is created, so the API could only refuse
    these once the file has arrived, as a failed job: the form refuses them first."""
    client.force_login(alice)
    response = client.post(URL, {"output_format": "jpg", field: value})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'role="alert">' + message in html
    assert not ConversionJob.objects.exists()


def test_a_rate_limited_api_gets_a_sentence_not_an_error_page(client, alice, settings, api):
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    formats = {"data": [{"operation": "convert", "input_format": "png", "output_format": "jpg", "engine": "imagemagick",
                         "credits": 1, "meta": {"group": "image"}}]}
    too_many = reply_json(429, {"message": "Too Many Requests", "code": "TOO_MANY_REQUESTS"}, {"Retry-After": "600"})
    api.script(reply_json(200, formats), too_many)
    client.force_login(alice)
    response = client.post(URL, {"output_format": "jpg"}, follow=True)
    assert response.status_code == 200
    assert "The conversion service is busy or cannot be reached right now." in response.content.decode()
    assert [seen.path for seen in api.seen] == ["/v2/convert/formats", "/v2/jobs"]
    assert ConversionJob.objects.get().status == "error"


def test_a_url_whatever_its_ending_is_accepted_with_its_options(client, alice, live_engine):
    client.force_login(alice)
    source = "https://downloads.example.com/report.php?id=7"
    response = client.post(URL, {"output_format": "png", "source_url": source, "option_pixel_density": "96"})
    job = ConversionJob.objects.get()
    assert response["Location"] == job.get_absolute_url()
    assert (job.source_url, job.options) == (source, {"pixel_density": 96})
