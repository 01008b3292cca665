import pytest
from django.urls import reverse

from conversions.models import ConversionJob, OutputFile, Preset


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
    assert response["Location"].startswith(reverse("login"))


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
    policy = client.get(reverse("conversions:dashboard"))["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "connect-src 'self' http://127.0.0.1:9;" in policy
    assert "unsafe-inline" not in policy


def test_the_demo_user_command_is_refused_in_production(settings):
    from django.core.management import CommandError, call_command

    settings.PRODUCTION = True
    with pytest.raises(CommandError):
        call_command("ccweb_demo_user")
