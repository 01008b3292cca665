"""Retention: stored files go CONVERSIONS_RETENTION_DAYS after their conversion ended, or after the
days the team they are shared with chose; the job page and the dashboard say when, and warn a few
days ahead; a self-re-enqueuing background task does the deleting and trims the logs."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django_tasks_db.models import DBTaskResult

from conversions import retention
from conversions.models import ActivityEvent, ConversionJob, Membership, OutputFile, Team, WebhookDelivery
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def a_month(settings) -> None:
    settings.CONVERSIONS_RETENTION_DAYS = 30
    settings.CONVERSIONS_RETENTION_WARNING_DAYS = 3


@pytest.fixture
def design(alice, bob) -> Team:
    team = Team.objects.create(name="Design")
    Membership.objects.create(team=team, user=alice, role="owner")
    Membership.objects.create(team=team, user=bob, role="member")
    return team


def ended_days_ago(days: float, user, name: str = "poster.png", team: Team | None = None) -> ConversionJob:
    """A finished job with a stored file and thumbnail, ended `days` ago."""
    job = ConversionJob.objects.create(
        user=user, team=team, output_format="jpg", input_filename=name, status="finished",
        finished_at=timezone.now() - timedelta(days=days),
    )
    output = OutputFile(job=job, filename=name.rsplit(".", 1)[0] + ".jpg", size=5, remote_url="https://api.example/x")
    output.file.save(output.filename, ContentFile(b"bytes"), save=False)
    output.thumbnail.save(f"{output.uuid}.png", ContentFile(b"png"), save=False)
    output.save()
    return job


def stored(job: ConversionJob) -> bool:
    """Whether the job's file is still in storage and its row still points at it."""
    output = OutputFile.objects.get(job=job)
    return bool(output.file) and output.file.storage.exists(output.file.name)


def test_the_sweep_deletes_files_past_the_default_and_keeps_the_job_and_newer_files(alice):
    old = ended_days_ago(31, alice, name="old.png")
    new = ended_days_ago(29, alice, name="new.png")
    old_output = OutputFile.objects.get(job=old)

    assert retention.sweep()["jobs_expired"] == 1

    assert not stored(old) and stored(new)
    assert not old_output.file.storage.exists(old_output.file.name)
    assert not old_output.thumbnail.storage.exists(old_output.thumbnail.name)
    old_output.refresh_from_db()
    assert (old_output.file.name, old_output.thumbnail.name, old_output.remote_url) == ("", "", "")
    assert ConversionJob.objects.filter(pk=old.pk).exists()
    event = ActivityEvent.objects.get()
    assert (event.verb, event.owner, event.job, event.actor_label) == ("expired", alice, old, "system")
    assert retention.sweep()["jobs_expired"] == 0  # nothing twice


def test_a_team_keeps_shared_files_as_long_as_it_chose(alice, design):
    shorter = Team.objects.create(name="Short", retention_days=7)
    Membership.objects.create(team=shorter, user=alice, role="owner")
    forever = Team.objects.create(name="Forever", retention_days=0)
    Membership.objects.create(team=forever, user=alice, role="owner")
    shared_short = ended_days_ago(8, alice, name="short.png", team=shorter)
    personal = ended_days_ago(8, alice, name="personal.png")
    shared_default = ended_days_ago(31, alice, name="default.png", team=design)
    shared_forever = ended_days_ago(400, alice, name="forever.png", team=forever)

    retention.sweep()

    assert not stored(shared_short) and not stored(shared_default)
    assert stored(personal) and stored(shared_forever)


def test_no_retention_keeps_everything(alice, settings):
    settings.CONVERSIONS_RETENTION_DAYS = 0
    job = ended_days_ago(3650, alice)

    assert retention.sweep()["jobs_expired"] == 0
    assert stored(job)


def test_the_job_page_says_when_the_files_go_warns_ahead_and_says_when_they_went(client, alice):
    client.force_login(alice)
    calm = ended_days_ago(10, alice, name="calm.png")
    soon = ended_days_ago(28, alice, name="soon.png")

    page = client.get(calm.get_absolute_url()).content.decode()
    day = date_format(timezone.localtime(calm.finished_at + timedelta(days=30)), "j M Y")
    assert "The converted files are kept until" in page and day in page
    page = client.get(soon.get_absolute_url()).content.decode()
    assert "The converted files will be deleted on" in page and "Download them before then." in page

    ConversionJob.objects.filter(pk=soon.pk).update(finished_at=timezone.now() - timedelta(days=31))
    retention.sweep()
    page = client.get(soon.get_absolute_url()).content.decode()
    today = date_format(timezone.localtime(), "j M Y")
    assert "The stored files were deleted on" in page and today in page and "30 days after the conversion ended" in page
    assert "soon.jpg" in page  # the job and its file's name stay
    download = client.get(OutputFile.objects.get(job=soon).get_absolute_url(), follow=True)
    assert "This file is no longer available." in download.content.decode()


def test_the_dashboard_rows_say_it_in_a_constant_number_of_queries(client, alice, django_assert_max_num_queries):
    client.force_login(alice)
    ended_days_ago(10, alice, name="calm.png")
    ended_days_ago(28, alice, name="soon.png")
    gone = ended_days_ago(31, alice, name="gone.png")
    retention.sweep()
    ConversionJob.objects.filter(pk=gone.pk).update(finished_at=timezone.now() - timedelta(days=40))

    rows = client.get(reverse("conversions:dashboard_rows")).content.decode()

    assert rows.count("Kept until") == 1
    assert rows.count("download before then") == 1
    assert rows.count("Files deleted on") == 1
    for n in range(20):
        ended_days_ago(n, alice, name=f"more-{n}.png")
    with django_assert_max_num_queries(12):
        client.get(reverse("conversions:dashboard_rows"))


def test_a_teams_owner_sets_its_retention_and_it_is_logged(client, alice, bob, design, django_user_model):
    client.force_login(alice)
    url = reverse("conversions:team_activity", args=[design.uuid])
    page = client.get(url).content.decode()
    assert "Files shared with Design are deleted 30 days after their conversion ended (this site&#x27;s default)" in (
        page
    )

    refused = client.post(url, {"days": "-1"})
    assert refused.status_code == 400
    response = client.post(url, {"days": "7"}, follow=True)

    design.refresh_from_db()
    assert design.retention_days == 7
    assert "Files shared with Design are deleted 7 days after their conversion ended (Design&#x27;s choice)" in (
        response.content.decode()
    )
    assert "alice changed how long Design keeps files." in response.content.decode()
    event = ActivityEvent.objects.get()
    assert (event.verb, event.detail) == ("retention_changed", {"from": None, "to": 7})
    client.post(url, {"days": ""})
    design.refresh_from_db()
    assert design.retention_days is None


def test_the_sweep_trims_the_webhook_log_and_the_activity_log(alice, settings):
    settings.CONVERSIONS_WEBHOOK_LOG_DAYS = 30
    settings.CONVERSIONS_ACTIVITY_LOG_DAYS = 365
    long_ago = timezone.now() - timedelta(days=31)
    old_accepted = WebhookDelivery.objects.create(body_sha256="a" * 64, event="job.finished", body=b"{}")
    old_rejected = WebhookDelivery.objects.create(rejected_because="bad_signature", body=b"{")
    new_accepted = WebhookDelivery.objects.create(body_sha256="b" * 64, event="job.finished", body=b"{}")
    new_rejected = WebhookDelivery.objects.create(rejected_because="malformed", body=b"{")
    WebhookDelivery.objects.filter(pk__in=[old_accepted.pk, old_rejected.pk]).update(received_at=long_ago)
    old_line = ActivityEvent.objects.create(verb="downloaded", created_at=timezone.now() - timedelta(days=366))
    new_line = ActivityEvent.objects.create(verb="downloaded")

    retention.sweep()

    kept = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert kept == {old_accepted.pk, new_accepted.pk, new_rejected.pk}
    old_accepted.refresh_from_db()
    assert old_accepted.body is None and old_accepted.body_sha256 == "a" * 64  # still recognises a duplicate
    new_accepted.refresh_from_db()
    assert bytes(new_accepted.body) == b"{}"
    assert list(ActivityEvent.objects.values_list("pk", flat=True)) == [new_line.pk]
    assert not ActivityEvent.objects.filter(pk=old_line.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_sweep_and_it_books_its_own_next_run_once(alice, worker, settings):
    settings.CONVERSIONS_RETENTION_INTERVAL = 3600
    job = ended_days_ago(31, alice)

    with transaction.atomic():
        retention.ensure_scheduled()
    with transaction.atomic():
        retention.ensure_scheduled()  # the chain lives: no second one

    wait_for(lambda: not stored(job), timeout=30)
    sweeps = DBTaskResult.objects.filter(task_path="conversions.tasks.retention_sweep")
    wait_for(lambda: sweeps.filter(status="SUCCESSFUL").exists() and sweeps.filter(status="READY").exists())
    assert sweeps.count() == 2
    assert sweeps.get(status="SUCCESSFUL").return_value == {
        "jobs_expired": 1, "rejected_deliveries_deleted": 0, "delivery_bodies_dropped": 0, "activity_pruned": 0,
    }
    next_run = sweeps.get(status="READY").run_after
    assert timezone.now() + timedelta(minutes=55) < next_run < timezone.now() + timedelta(minutes=65)
