"""Share links: the owner makes one for a file or a whole job from the job page; anyone holding it
downloads without an account, within its limits (expiry, password, download count); a link that
is unknown, revoked, expired or used up answers 404 and tells nothing."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from conversions import sharing
from conversions.models import ConversionJob, Membership, OutputFile, ShareLink, Team
from tests.conftest import wait_for
from tests.files import png_bytes
from tests.test_job_actions import ended, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_job(alice) -> ConversionJob:
    """A finished job with two converted files in ccweb's storage."""
    job = ConversionJob.objects.create(user=alice, output_format="txt", input_filename="notes.pdf", status="finished")
    for n in (1, 2):
        output = OutputFile(job=job, filename=f"notes-{n}.txt", size=len(f"page {n}"))
        output.file.save(output.filename, ContentFile(f"page {n}".encode()), save=True)
    return job


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def create_link(client, job: ConversionJob, **fields) -> ShareLink:
    response = client.post(reverse("conversions:share_link_create", args=[job.uuid]), fields, follow=True)
    assert response.status_code == 200, response.content
    link = ShareLink.objects.latest("created_at")
    assert "Anyone with this link can download without an account: http://testserver" + link.get_absolute_url() in (
        response.content.decode()
    )
    return link


def test_the_owner_shares_one_file_and_anyone_downloads_it_without_an_account(client, alice, alices_job):
    second = alices_job.files.get(filename="notes-2.txt")
    client.force_login(alice)
    link = create_link(client, alices_job, output=str(second.uuid))
    assert len(link.token) >= 22 and len(set(ShareLink.objects.values_list("token", flat=True))) == 1  # ≥128 bits

    visitor = Client()
    page = visitor.get(link.get_absolute_url())
    html = page.content.decode()
    assert page.status_code == 200
    assert '<h1 class="name">notes-2.txt</h1>' in html and "6\xa0bytes" in html
    assert "notes.pdf" not in html and "alice" not in html and "notes-1.txt" not in html  # only name and size
    assert page["Cache-Control"] == "private, no-store" and page["Referrer-Policy"] == "no-referrer"
    download = visitor.get(reverse("conversions:share_link_download", args=[link.token]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="notes-2.txt"'
    assert body(download) == b"page 2"
    link.refresh_from_db()
    assert link.download_count == 1 and link.last_downloaded_at is not None

    job_page = client.get(alices_job.get_absolute_url()).content.decode()
    section = job_page[job_page.index('id="share-links"') :]
    assert f'value="http://testserver{link.get_absolute_url()}"' in section
    assert ">notes-2.txt<" in section and '<td data-label="Downloads">1</td>' in section


def test_a_link_to_a_whole_job_downloads_its_files_as_one_zip(client, alice, alices_job):
    client.force_login(alice)
    link = create_link(client, alices_job, output="")
    visitor = Client()
    html = visitor.get(link.get_absolute_url()).content.decode()
    assert '<h1 class="name">notes-txt.zip</h1>' in html and "12\xa0bytes" in html
    download = visitor.get(reverse("conversions:share_link_download", args=[link.token]))
    archive = zipfile.ZipFile(io.BytesIO(body(download)))
    assert {name: archive.read(name) for name in archive.namelist()} == {
        "notes-1.txt": b"page 1",
        "notes-2.txt": b"page 2",
    }


def test_a_password_protected_link_asks_for_its_password_first(client, alice, alices_job):
    client.force_login(alice)
    link = create_link(client, alices_job, password="open sesame")
    assert link.password != "open sesame" and identify_hasher(link.password)  # Django's hash, not the password
    visitor = Client()
    download = reverse("conversions:share_link_download", args=[link.token])
    page = visitor.get(link.get_absolute_url()).content.decode()
    assert "This file is protected by a password." in page and download not in page
    assert visitor.get(download).status_code == 302  # back to the page, nothing counted
    wrong = visitor.post(link.get_absolute_url(), {"password": "open says me"})
    assert wrong.status_code == 400
    assert "That password is not the link&#x27;s password. Check it and try again." in wrong.content.decode()
    assert visitor.post(link.get_absolute_url(), {"password": "open sesame"}).status_code == 302
    assert download in visitor.get(link.get_absolute_url()).content.decode()
    assert zipfile.ZipFile(io.BytesIO(body(visitor.get(download)))).namelist() == ["notes-1.txt", "notes-2.txt"]
    assert Client().get(download).status_code == 302  # another browser has not typed it
    link.refresh_from_db()
    assert link.download_count == 1


def test_guessing_a_links_password_stops_after_ten_tries(client, alice, alices_job):
    link = sharing.share_link_create(job=alices_job, user=alice, password="right")
    visitor = Client()
    for n in range(sharing.PASSWORD_ATTEMPTS):
        visitor.post(link.get_absolute_url(), {"password": f"wrong-{n}"})
    refused = visitor.post(link.get_absolute_url(), {"password": "right"})
    assert "Too many wrong passwords were tried on this link. Try again in 15 minutes." in refused.content.decode()
    assert visitor.get(reverse("conversions:share_link_download", args=[link.token])).status_code == 302


def test_a_download_limit_is_counted_and_then_the_link_is_gone(client, alice, alices_job):
    client.force_login(alice)
    link = create_link(client, alices_job, max_downloads="2")
    download = reverse("conversions:share_link_download", args=[link.token])
    visitor = Client()
    assert [visitor.get(download).status_code for _ in range(3)] == [200, 200, 404]
    assert visitor.get(link.get_absolute_url()).status_code == 404
    link.refresh_from_db()
    assert link.download_count == 2
    section = client.get(alices_job.get_absolute_url()).content.decode()
    assert '<td data-label="Downloads">2 of 2</td>' in section and "Used up" in section


def not_found_body(response) -> str:
    """The 404 page without the parts that differ per request (the CSRF token, nonces)."""
    return re.sub(r'value="[^"]+"', "", response.content.decode())


@pytest.mark.parametrize("fate", ["revoked", "expired", "used up", "unknown"])
def test_a_link_that_no_longer_works_is_404_and_tells_nothing(client, alice, alices_job, fate):
    link = sharing.share_link_create(job=alices_job, user=alice, max_downloads=1)
    token = link.token
    if fate == "revoked":
        client.force_login(alice)
        client.post(reverse("conversions:share_link_revoke", args=[link.uuid]))
        client.logout()
    elif fate == "expired":
        ShareLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    elif fate == "used up":
        assert client.get(reverse("conversions:share_link_download", args=[token])).status_code == 200
    else:
        token = sharing.secrets.token_urlsafe(sharing.TOKEN_BYTES)
    never = client.get(reverse("conversions:share_link_public", args=["never-existed"]))
    for response in (
        client.get(reverse("conversions:share_link_public", args=[token])),
        client.post(reverse("conversions:share_link_public", args=[token]), {"password": "x"}),
        client.get(reverse("conversions:share_link_download", args=[token])),
    ):
        assert response.status_code == 404
        assert not_found_body(response) == not_found_body(never)
        assert b"notes" not in response.content


def test_a_link_valid_until_a_day_works_through_that_day(client, alice, alices_job):
    client.force_login(alice)
    today = timezone.localdate()
    link = create_link(client, alices_job, expires_on=today.isoformat())
    assert timezone.localtime(link.expires_at).date() == today + timedelta(days=1)
    assert Client().get(link.get_absolute_url()).status_code == 200
    past = client.post(
        reverse("conversions:share_link_create", args=[alices_job.uuid]),
        {"expires_on": (today - timedelta(days=1)).isoformat()},
    )
    assert past.status_code == 400 and "Choose today or a later day." in past.content.decode()
    assert ShareLink.objects.count() == 1


def test_links_are_made_only_for_a_finished_job_and_only_by_its_owner(client, alice, bob, alices_job):
    running = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="later.png")
    client.force_login(alice)
    refused = client.post(reverse("conversions:share_link_create", args=[running.uuid]), {})
    assert "Share links can be made once the conversion has finished with files." in refused.content.decode()
    assert (
        "Share links can be made once the conversion has finished."
        in client.get(running.get_absolute_url()).content.decode()
    )

    team = Team.objects.create(name="Design")
    team.members.add(alice, bob)
    alices_job.team = team
    alices_job.save()
    client.force_login(bob)
    assert client.post(reverse("conversions:share_link_create", args=[alices_job.uuid]), {}).status_code == 404
    assert 'id="share-links"' not in client.get(alices_job.get_absolute_url()).content.decode()
    assert not ShareLink.objects.exists()


def test_a_file_of_another_job_cannot_be_shared_through_this_one(client, alice, alices_job):
    other = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="x.png", status="finished")
    foreign = OutputFile.objects.create(job=other, filename="x.jpg", size=1)
    client.force_login(alice)
    response = client.post(
        reverse("conversions:share_link_create", args=[alices_job.uuid]), {"output": str(foreign.uuid)}
    )
    assert response.status_code == 400 and "Select a valid choice." in response.content.decode()
    assert not ShareLink.objects.exists()


def test_the_teams_owners_and_admins_revoke_links_of_its_jobs_members_and_outsiders_get_404(
    client, alice, bob, charlie, alices_job
):
    team = Team.objects.create(name="Design")
    Membership.objects.create(team=team, user=alice, role="member")
    Membership.objects.create(team=team, user=bob, role="member")
    alices_job.team = team
    alices_job.save()
    link = sharing.share_link_create(job=alices_job, user=alice)
    revoke = reverse("conversions:share_link_revoke", args=[link.uuid])
    for user in (bob, charlie):
        client.force_login(user)
        assert client.post(revoke).status_code == 404
    assert ShareLink.objects.get().revoked_at is None

    Membership.objects.filter(user=bob).update(role="admin")
    client.force_login(bob)
    page = client.get(alices_job.get_absolute_url()).content.decode()
    assert revoke in page and "New share link" not in page  # admins revoke, only the owner makes links
    response = client.post(revoke, follow=True)
    assert "The link was revoked: it no longer opens anything." in response.content.decode()
    assert ShareLink.objects.get().state == "revoked"
    assert Client().get(link.get_absolute_url()).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_file_not_copied_yet_streams_from_the_api_through_ccweb(client, alice, live_engine, worker):
    client.force_login(alice)
    job = start(client, "jpg", "sunrise.png", png_bytes())
    wait_for(lambda: ended(job))
    wait_for(lambda: job.files.get().file)
    output = job.files.get()
    OutputFile.objects.filter(pk=output.pk).update(file="")  # as just after the job ends
    link = sharing.share_link_create(job=job, user=alice, output=output)
    download = Client().get(reverse("conversions:share_link_download", args=[link.token]))
    assert download.status_code == 200  # not a redirect to the API's own address
    assert Image.open(io.BytesIO(body(download))).format == "JPEG"
