from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversions.models import ConversionJob, OutputFile, Preset
from tests.factories import job_payload, task_payload
from tests.stub_api import api, reply_json  # noqa: F401  (api is a fixture)


@pytest.fixture
def alices_job(alice) -> ConversionJob:
    job = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="holiday.png", status="finished")
    OutputFile.objects.create(job=job, filename="holiday.jpg", size=10, remote_url="http://127.0.0.1:9/x")
    return job


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["conversions:dashboard", "conversions:dashboard_rows", "conversions:convert"])
def test_it_requires_a_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db
def test_an_outsider_gets_404_for_someone_elses_job_and_file(client, charlie, alices_job):
    client.force_login(charlie)
    output = alices_job.files.get()
    for url in (
        alices_job.get_absolute_url(),
        reverse("conversions:job_status", args=[alices_job.uuid]),
        reverse("conversions:job_upload", args=[alices_job.uuid]),
        output.get_absolute_url(),
    ):
        assert client.get(url).status_code == 404, url
    assert "holiday.png" not in client.get(reverse("conversions:dashboard")).content.decode()


@pytest.mark.django_db
def test_the_dashboard_lists_newest_first_with_downloads(client, alice, alices_job):
    newer = ConversionJob.objects.create(user=alice, output_format="png", input_filename="scan.pdf", status="processing", percent=40)
    client.force_login(alice)
    html = client.get(reverse("conversions:dashboard")).content.decode()
    assert html.index("scan.pdf") < html.index("holiday.png")
    assert alices_job.files.get().get_absolute_url() in html
    assert "Processing 40%" in html
    assert f'id="job-{newer.uuid}" data-running' in html


@pytest.mark.django_db
def test_a_file_not_copied_yet_redirects_to_the_apis_link(client, alice, alices_job):
    client.force_login(alice)
    response = client.get(alices_job.files.get().get_absolute_url())
    assert response.status_code == 302
    assert response["Location"] == "http://127.0.0.1:9/x"


@pytest.mark.django_db
def test_the_convert_page_explains_when_the_api_cannot_be_reached(client, alice, settings):
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    client.force_login(alice)
    html = client.get(reverse("conversions:convert")).content.decode()
    assert "cannot be reached" in html


@pytest.mark.django_db
@pytest.mark.parametrize("preset", ["not-a-uuid", "00000000-0000-4000-8000-000000000000", "bobs"])
def test_a_preset_that_is_malformed_unknown_or_someone_elses_is_404(client, alice, bob, settings, preset):
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    if preset == "bobs":
        preset = Preset.objects.create(user=bob, name="Bob's", output_format="jpg").uuid
    client.force_login(alice)
    assert client.get(reverse("conversions:convert"), {"preset": preset}).status_code == 404


@pytest.mark.django_db
def test_pages_carry_the_policy_in_development_naming_the_engine_configured_now(client, alice, settings):
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    client.force_login(alice)
    header = client.get(reverse("conversions:dashboard"))["Content-Security-Policy"]
    # Directives in any order: {name: sources}.
    policy = {name: rest for name, _, rest in (d.strip().partition(" ") for d in header.split(";") if d.strip())}
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self' http://127.0.0.1:9"
    assert "unsafe-inline" not in header


def test_the_demo_user_command_is_refused_in_production(settings):
    from django.core.management import CommandError, call_command

    settings.PRODUCTION = True
    with pytest.raises(CommandError):
        call_command("ccweb_demo_user")


def failed_job(user, *, imported: bool, ended_ago: timedelta = timedelta(minutes=5)) -> ConversionJob:
    """A failed job whose file did (or did not) reach the API, with ccweb's export of the original."""
    payload = job_payload("remote-9", "error", error=("INVALID_FILE", "The file is not a valid PNG image."))
    upload, convert, export = payload["tasks"]
    if not imported:
        upload.update(status="error", code="CANCELLED", result=None)
        convert.update(code="INPUT_TASK_FAILED")
    original = task_payload(ConversionJob.ORIGINAL_EXPORT, "export/url", "finished" if imported else "error")
    payload["tasks"].append(original)
    return ConversionJob.objects.create(
        user=user, output_format="jpg", input_filename="photo.png" if imported else "", status="error",
        remote_job_id="remote-9", payload=payload, error_message="It failed.",
        finished_at=timezone.now() - ended_ago,
    )


@pytest.mark.django_db
def test_retry_is_offered_only_where_the_file_can_be_had_again(client, alice):
    client.force_login(alice)
    retry = "Retry with the same file"
    assert retry in client.get(failed_job(alice, imported=True).get_absolute_url()).content.decode()
    ConversionJob.objects.all().delete()
    html = client.get(failed_job(alice, imported=False).get_absolute_url()).content.decode()
    assert retry not in html
    assert "Convert another file" in html
    ConversionJob.objects.all().delete()
    # The API keeps files a day: after that the original is gone.
    expired = failed_job(alice, imported=True, ended_ago=timedelta(days=2))
    assert retry not in client.get(expired.get_absolute_url()).content.decode()


@pytest.mark.django_db
def test_the_job_page_hides_the_export_ccweb_adds_for_retries(client, alice):
    job = failed_job(alice, imported=True)
    client.force_login(alice)
    html = client.get(job.get_absolute_url()).content.decode()
    assert "<td data-label=\"Task\">convert</td>" in html
    assert ConversionJob.ORIGINAL_EXPORT not in html


@pytest.mark.django_db
def test_a_job_page_loaded_after_the_upload_shows_the_file_and_what_the_api_does_now(client, alice, settings, api):
    """Back from a plain upload form, the stored job still waits for its file: the page asks the
    API, so it shows the file's name, "Processing" and no stale "Choose the file"."""
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    job = ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="remote-5", payload=job_payload("remote-5", "waiting")
    )
    api.script(reply_json(200, {"data": job_payload("remote-5", "processing")}))
    client.force_login(alice)
    html = client.get(job.get_absolute_url()).content.decode()
    assert '<h1 id="job-heading" class="name">photo.png → JPG</h1>' in html
    assert "Processing 40%" in html
    assert "Choose the file" not in html
    assert [seen.path for seen in api.seen] == ["/v2/jobs/remote-5"]


@pytest.mark.django_db
def test_a_url_import_is_named_after_its_url_until_the_file_is_known(client, alice):
    source = "https://downloads.example.com/get?id=7"
    job = ConversionJob.objects.create(user=alice, output_format="png", source_url=source)
    client.force_login(alice)
    assert f"File from {source} → PNG" in client.get(job.get_absolute_url()).content.decode()
