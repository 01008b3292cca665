"""Teams share their converted files: members see a shared job and download its files, only the
owner acts on it, outsiders see nothing; staff manage teams in the admin."""

import io
import zipfile

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from playwright.sync_api import expect
from PIL import Image

from conversions.cloudconvert.client import get_client
from conversions.models import ConversionJob, OutputFile, Team
from tests.conftest import log_in, wait_for
from tests.files import pdf_bytes, png_bytes
from tests.test_job_actions import ended, start


def jpeg_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def design(alice, bob) -> Team:
    team = Team.objects.create(name="Design")
    team.members.add(alice, bob)
    return team


@pytest.fixture
def alices_job(alice) -> ConversionJob:
    """A finished job with two converted files in ccweb's storage."""
    job = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="poster.png", status="finished")
    for name in ("poster-1.jpg", "poster-2.jpg"):
        output = OutputFile(job=job, filename=name, size=10)
        output.file.save(name, ContentFile(jpeg_bytes()), save=True)
    return job


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_a_team_mate_sees_a_shared_job_and_downloads_its_files_an_outsider_does_not(client, alices_job, design, bob, charlie):
    alices_job.team = design
    alices_job.save()
    output = alices_job.files.first()
    zip_url = reverse("conversions:job_zip", args=[alices_job.uuid])

    client.force_login(bob)
    page = client.get(alices_job.get_absolute_url())
    assert page.status_code == 200
    assert "Shared by alice with Design." in page.content.decode()
    assert Image.open(io.BytesIO(body(client.get(output.get_absolute_url())))).format == "JPEG"
    assert sorted(zipfile.ZipFile(io.BytesIO(body(client.get(zip_url)))).namelist()) == ["poster-1.jpg", "poster-2.jpg"]

    client.force_login(charlie)
    for url in (alices_job.get_absolute_url(), output.get_absolute_url(), zip_url):
        assert client.get(url).status_code == 404, url


@pytest.mark.django_db
def test_a_job_nobody_shared_stays_private_to_its_owner_even_within_a_team(client, alices_job, design, bob):
    client.force_login(bob)
    assert client.get(alices_job.get_absolute_url()).status_code == 404
    assert client.get(alices_job.files.first().get_absolute_url()).status_code == 404


@pytest.mark.django_db
def test_only_the_owner_acts_on_a_shared_job(client, alices_job, design, bob):
    alices_job.team = design
    alices_job.status = "error"
    alices_job.save()
    client.force_login(bob)
    html = client.get(alices_job.get_absolute_url()).content.decode()
    live = client.get(reverse("conversions:job_status", args=[alices_job.uuid])).content.decode()
    for part in (html, live):
        assert "Download all as ZIP" in part
        assert ">Retry<" not in part and ">Delete<" not in part
    assert "Shared with" not in html  # no share form for a team mate
    for name in ("job_cancel", "job_retry", "job_delete", "job_share"):
        assert client.post(reverse(f"conversions:{name}", args=[alices_job.uuid]), {"team": ""}).status_code == 404, name
    assert client.get(reverse("conversions:job_upload", args=[alices_job.uuid])).status_code == 404
    alices_job.refresh_from_db()
    assert alices_job.team == design and alices_job.status == "error"


@pytest.mark.django_db
def test_the_owner_shares_and_unshares_from_the_job_page(client, alices_job, design, bob):
    client.force_login(alice := alices_job.user)
    html = client.get(alices_job.get_absolute_url()).content.decode()
    assert '<option value="" selected>Only me</option>' in html
    assert f'<option value="{design.uuid}">Design</option>' in html

    share_url = reverse("conversions:job_share", args=[alices_job.uuid])
    shared = client.post(share_url, {"team": str(design.uuid)}, follow=True).content.decode()
    assert "The members of Design now see this conversion and its files." in shared
    assert f'<option value="{design.uuid}" selected>Design</option>' in shared
    alices_job.refresh_from_db()
    assert alices_job.team == design

    unshared = client.post(share_url, {"team": ""}, follow=True).content.decode()
    assert "Only you see this conversion now." in unshared
    client.force_login(bob)
    assert client.get(alices_job.get_absolute_url()).status_code == 404
    assert alice.conversion_jobs.get().team is None


@pytest.mark.django_db
def test_sharing_with_a_team_one_is_not_in_is_refused(client, alices_job, design, charlie):
    others = Team.objects.create(name="Sales")
    others.members.add(charlie)
    client.force_login(alices_job.user)
    response = client.post(reverse("conversions:job_share", args=[alices_job.uuid]), {"team": str(others.uuid)}, follow=True)
    assert "You can only share with a team you belong to." in response.content.decode()
    alices_job.refresh_from_db()
    assert alices_job.team is None


@pytest.mark.django_db
def test_after_leaving_a_team_the_owner_still_sees_and_keeps_what_she_shared_with_it(client, alices_job, design, alice, bob):
    alices_job.team = design
    alices_job.save()
    design.members.remove(alice)
    client.force_login(alice)
    html = client.get(alices_job.get_absolute_url()).content.decode()
    assert f'<option value="{design.uuid}" selected>Design</option>' in html
    response = client.post(reverse("conversions:job_share", args=[alices_job.uuid]), {"team": str(design.uuid)}, follow=True)
    assert "The members of Design now see this conversion and its files." in response.content.decode()
    client.force_login(bob)
    assert client.get(alices_job.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_the_dashboard_has_a_tab_for_what_teams_share(client, alices_job, design, alice, bob, charlie):
    alices_job.team = design
    alices_job.save()
    ConversionJob.objects.create(user=alice, output_format="pdf", input_filename="private.docx", status="finished")
    ConversionJob.objects.create(user=bob, output_format="png", input_filename="bobs-own.pdf", status="finished")
    url = reverse("conversions:dashboard")

    client.force_login(bob)
    mine = client.get(url).content.decode()
    assert "bobs-own.pdf" in mine and "poster.png" not in mine
    assert "Shared with my teams" in mine
    shared = client.get(url, {"shared": "1"}).content.decode()
    assert "Shared with your teams" in shared
    assert "<strong>Design</strong>: alice, bob" in shared  # who sees what is shared there
    assert "poster.png" in shared and "by alice · Design" in shared
    assert "private.docx" not in shared and "bobs-own.pdf" not in shared
    assert '<input type="hidden" name="shared" value="1">' in shared  # a search stays in this tab
    assert "No conversion matches." in client.get(url, {"shared": "1", "q": "invoice"}).content.decode()
    rows = client.get(reverse("conversions:dashboard_rows"), {"shared": "1"}).content.decode()
    assert "poster.png" in rows and "bobs-own.pdf" not in rows

    client.force_login(alice)
    assert "· shared" in client.get(url).content.decode()  # her own list marks what she shared

    client.force_login(charlie)
    assert "Shared with my teams" not in client.get(url).content.decode()  # no team, no tab
    alone = client.get(url, {"shared": "1"}).content.decode()
    assert "Nothing is shared with your teams yet." in alone
    assert "You are in no team yet: <a href=\"/teams/\">make one</a>, or ask a team's owner to invite you." in alone


@pytest.mark.django_db
def test_the_shared_tab_issues_the_same_queries_for_5_and_500_jobs(client, alice, bob, design, settings):
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"
    settings.CLOUDCONVERT_MAX_RETRIES = 0

    def share(count: int) -> None:
        jobs = ConversionJob.objects.bulk_create(
            ConversionJob(user=alice, team=design, output_format="jpg", status="finished", input_filename=f"p-{n}.png")
            for n in range(count)
        )
        OutputFile.objects.bulk_create(OutputFile(job=job, filename=f"{job.pk}.jpg", remote_url="http://127.0.0.1:9/x") for job in jobs)

    def queries(url: str) -> list[int]:
        cache.clear()
        counts = []
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url, {"shared": "1"}).status_code == 200
            counts.append(len(captured))
        return counts

    client.force_login(bob)
    urls = [reverse("conversions:dashboard"), reverse("conversions:dashboard_rows")]
    share(5)
    client.get(urls[0])  # warm the session
    few = [queries(url) for url in urls]
    share(495)
    assert [queries(url) for url in urls] == few


@pytest.mark.django_db(transaction=True)
def test_a_conversion_shared_from_the_start_reaches_the_team(client, alice, bob, design, live_engine, worker):
    client.force_login(alice)
    convert_page = client.get(reverse("conversions:convert")).content.decode()
    assert "Share with" in convert_page and "Only me" in convert_page
    job = start(client, "jpg", "team.png", png_bytes(), team=str(design.uuid))
    assert job.team == design
    wait_for(lambda: ended(job))
    wait_for(lambda: job.files.get().file)

    client.force_login(bob)
    assert "team.png" in client.get(reverse("conversions:dashboard"), {"shared": "1"}).content.decode()
    download = client.get(job.files.get().get_absolute_url())
    assert Image.open(io.BytesIO(body(download))).format == "JPEG"


@pytest.mark.django_db(transaction=True)
def test_a_retried_job_stays_shared(client, alice, design, live_engine, worker):
    client.force_login(alice)
    job = start(client, "png", "short.pdf", pdf_bytes(1), option_pages="2", team=str(design.uuid))
    wait_for(lambda: ended(job))
    assert job.status == "error"

    def original_exported() -> bool:
        tasks = get_client().show_job(job.remote_job_id)["tasks"]
        return next(t for t in tasks if t["name"] == "export-original")["status"] == "finished"

    wait_for(original_exported)
    client.post(reverse("conversions:job_retry", args=[job.uuid]))
    assert ConversionJob.objects.exclude(pk=job.pk).get().team == design


@pytest.mark.django_db
def test_staff_create_a_team_with_its_members_and_their_roles_in_the_admin(admin_client, alice, bob):
    inline = "memberships"
    response = admin_client.post(
        reverse("admin:conversions_team_add"),
        {
            "name": "Marketing",
            f"{inline}-TOTAL_FORMS": "2", f"{inline}-INITIAL_FORMS": "0",
            f"{inline}-MIN_NUM_FORMS": "0", f"{inline}-MAX_NUM_FORMS": "1000",
            f"{inline}-0-user": str(alice.pk), f"{inline}-0-role": "owner",
            f"{inline}-1-user": str(bob.pk), f"{inline}-1-role": "viewer",
        },
        follow=True,
    )
    assert response.status_code == 200
    team = Team.objects.get(name="Marketing")
    assert dict(team.memberships.values_list("user__username", "role")) == {"alice": "owner", "bob": "viewer"}
    listing = admin_client.get(reverse("admin:conversions_team_changelist")).content.decode()
    assert "Marketing" in listing and '<td class="field-member_count">2</td>' in listing


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_team_mate_downloads_what_alice_shared_in_the_browser(page, alices_job, design):
    log_in(page, "alice", "alice-password")
    page.goto(alices_job.get_absolute_url())
    page.get_by_label("Shared with").select_option(label="Design")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("The members of Design now see this conversion")

    page.get_by_role("button", name="Log out alice").click()
    log_in(page, "bob", "bob-password")
    page.get_by_role("link", name="Shared with my teams").click()
    row = page.locator("#job-rows tr", has_text="poster.png")
    expect(row).to_contain_text("by alice · Design")
    row.get_by_role("link", name="poster.png").click()
    expect(page.locator("#shared-by")).to_have_text("Shared by alice with Design.")
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="poster-1.jpg").click()
    assert Image.open(download_info.value.path()).format == "JPEG"
