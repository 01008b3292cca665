"""The admin as the operations console: actions through the app's services, reported per object and
allowed only with the permissions each declares; the webhook's log with its rejections and replays;
the overview and usage pages; quota overrides."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversions.cloudconvert.client import get_client
from conversions.cloudconvert.errors import NotFound
from conversions.cloudconvert.webhooks import sign
from conversions.models import (
    ActivityEvent,
    ConversionJob,
    Membership,
    OutputFile,
    QuotaOverride,
    Team,
    WebhookDelivery,
)
from tests.conftest import wait_for
from tests.factories import job_payload
from tests.files import png_bytes
from tests.test_job_actions import JSON, ended, start

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = reverse("admin:conversions_conversionjob_changelist")
DELIVERIES = reverse("admin:conversions_webhookdelivery_changelist")
OVERVIEW = reverse("admin:conversions_overview")
USAGE = reverse("admin:conversions_usage")
WEBHOOK = reverse("conversions:webhook")
ACTIONS = ["cancel_jobs", "retry_jobs", "refresh_from_api", "copy_outputs_again", "delete_jobs"]


def staff(django_user_model, name: str, *codenames: str) -> User:
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "password", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="conversions", codename__in=codenames))
    return user


def act(client, action: str, objects: list, url: str = CHANGELIST, **fields: str):
    return client.post(url, {"action": action, "_selected_action": [o.pk for o in objects], **fields}, follow=True)


def report(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def lost_job(alice) -> ConversionJob:
    """A running job the engine does not know: refreshing it marks it failed."""
    return ConversionJob.objects.create(
        user=alice, output_format="jpg", input_filename="lost.png", remote_job_id="00000000-0000-4000-8000-0000000000aa"
    )


def finished_here(user, name: str, **fields) -> ConversionJob:
    """A finished job with a stored file whose export URL the API no longer has."""
    job = ConversionJob.objects.create(
        user=user, output_format="jpg", input_filename=name, status="finished", finished_at=timezone.now(), **fields
    )
    output = OutputFile(job=job, filename=name.replace(".png", ".jpg"), size=2048)
    output.file.save(output.filename, ContentFile(b"x" * 2048), save=True)
    return job


# --- Permissions ----------------------------------------------------------------------------------


def test_staff_who_may_only_view_jobs_get_no_action_and_posting_one_changes_nothing(
    client, django_user_model, live_engine, alice, lost_job
):
    client.force_login(staff(django_user_model, "viewer", "view_conversionjob"))
    page = client.get(CHANGELIST).content.decode()
    assert str(lost_job.uuid) in page
    for action in [*ACTIONS, "delete_selected"]:
        assert f'value="{action}"' not in page
        act(client, action, [lost_job], confirmed="yes")
    lost_job.refresh_from_db()
    assert (lost_job.status, ConversionJob.objects.count(), ActivityEvent.objects.count()) == ("waiting", 1, 0)


def test_each_action_is_offered_only_with_its_permission(client, django_user_model, lost_job):
    offered = {
        "change_conversionjob": {"cancel_jobs", "refresh_from_api", "copy_outputs_again"},
        "add_conversionjob": {"retry_jobs"},
        "delete_conversionjob": {"delete_jobs"},
    }
    for codename, actions in offered.items():
        client.force_login(staff(django_user_model, codename, "view_conversionjob", codename))
        page = client.get(CHANGELIST).content.decode()
        assert {a for a in ACTIONS if f'value="{a}"' in page} == actions
        assert 'value="delete_selected"' not in page  # Django's would leave the job at the API


def test_the_console_pages_are_404_to_staff_who_may_not_view_jobs(client, django_user_model):
    client.force_login(staff(django_user_model, "teams-only", "view_team"))
    assert client.get(OVERVIEW).status_code == 404
    assert client.get(USAGE).status_code == 404
    client.force_login(staff(django_user_model, "looker", "view_conversionjob"))
    assert client.get(OVERVIEW).status_code == 200
    assert client.get(USAGE).status_code == 200


# --- Actions on jobs ------------------------------------------------------------------------------


def test_staff_who_may_change_jobs_refresh_them_from_the_api(client, django_user_model, live_engine, lost_job):
    operator = staff(django_user_model, "operator", "view_conversionjob", "change_conversionjob")
    client.force_login(operator)
    response = act(client, "refresh_from_api", [lost_job])
    assert report(response) == ["1 refreshed."]
    lost_job.refresh_from_db()
    assert (lost_job.status, lost_job.error_code) == ("error", "NOT_FOUND")
    event = ActivityEvent.objects.get()
    assert (event.actor, event.verb, event.job, event.detail) == (
        operator, "admin_action", lost_job, {"action": "refresh from the API"}
    )


def test_cancel_reports_what_it_cancelled_and_why_it_could_not(client, alice, django_user_model, live_engine):
    client.force_login(alice)
    waiting = [start(client, "jpg", f"later-{n}.png", None) for n in range(2)]
    done = finished_here(alice, "done.png")
    client.force_login(staff(django_user_model, "operator", "view_conversionjob", "change_conversionjob"))

    response = act(client, "cancel_jobs", [*waiting, done])

    assert report(response) == ["2 cancelled, 1 could not be: done.png → jpg (finished): it had already ended."]
    for job in waiting:
        job.refresh_from_db()
        assert (job.status, job.error_message) == ("error", "The conversion was cancelled.")
        assert get_client().show_job(job.remote_job_id)["status"] == "error"
    assert ActivityEvent.objects.filter(verb="admin_action", detail={"action": "cancel"}).count() == 2


def test_retry_starts_the_same_conversion_again_for_its_owner(client, alice, django_user_model, live_engine):
    failed = ConversionJob.objects.create(
        user=alice, output_format="jpg", input_filename="photo.png", status="error",
        source_url="https://files.example/photo.png",
    )
    running = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="busy.png")
    client.force_login(staff(django_user_model, "operator", "view_conversionjob", "add_conversionjob"))

    response = act(client, "retry_jobs", [failed, running])

    assert report(response) == [
        "1 retried, 1 could not be: busy.png → jpg (waiting): This conversion is still running."
    ]
    again = ConversionJob.objects.exclude(pk__in=[failed.pk, running.pk]).get()
    assert (again.user, again.source_url, again.output_format) == (alice, failed.source_url, "jpg")
    assert get_client().show_job(again.remote_job_id)["tag"] == str(again.uuid)


def test_delete_asks_first_then_deletes_here_and_at_the_api(client, alice, django_user_model, live_engine):
    client.force_login(alice)
    job = start(client, "jpg", "gone.png", None)
    operator = staff(django_user_model, "operator", "view_conversionjob", "delete_conversionjob")
    client.force_login(operator)

    confirm = act(client, "delete_jobs", [job])
    assert "Delete these jobs here and at the API?" in confirm.content.decode()
    assert "gone.png → jpg (waiting)" in confirm.content.decode()
    assert ConversionJob.objects.filter(pk=job.pk).exists()

    response = act(client, "delete_jobs", [job], confirmed="yes")

    assert report(response) == ["1 deleted."]
    assert not ConversionJob.objects.exists()
    with pytest.raises(NotFound):
        get_client().show_job(job.remote_job_id)
    event = ActivityEvent.objects.get()
    assert (event.actor, event.verb, event.owner, event.detail) == (operator, "deleted", alice, {"via": "admin"})


def test_deleting_one_job_from_its_page_deletes_it_at_the_api_too(client, alice, django_user_model, live_engine):
    client.force_login(alice)
    job = start(client, "jpg", "single.png", None)
    client.force_login(staff(django_user_model, "operator", "view_conversionjob", "delete_conversionjob"))

    confirm = client.get(reverse("admin:conversions_conversionjob_delete", args=[job.pk]))
    assert "Are you sure" in confirm.content.decode()
    response = client.post(
        reverse("admin:conversions_conversionjob_delete", args=[job.pk]), {"post": "yes"}, follow=True
    )

    assert report(response) == ["1 deleted."]
    assert not ConversionJob.objects.exists()
    with pytest.raises(NotFound):
        get_client().show_job(job.remote_job_id)


def test_copy_again_restores_a_lost_stored_file_and_says_which_it_could_not(
    client, alice, django_user_model, live_engine, worker
):
    client.force_login(alice)
    job = start(client, "jpg", "photo.png", png_bytes((64, 48)))
    wait_for(lambda: ended(job))
    output = wait_for(lambda: OutputFile.objects.filter(job=job).exclude(file="").first())
    output.file.storage.delete(output.file.name)  # the copy is lost (a disk, a bucket)
    gone = finished_here(alice, "old.png")
    client.force_login(staff(django_user_model, "operator", "view_conversionjob", "change_conversionjob"))

    response = act(client, "copy_outputs_again", [job, gone])

    assert report(response) == [
        "1 copied again, 1 could not be: old.png → jpg (finished): The conversion service offers none of its "
        "files any more; the stored copies were kept."
    ]
    output.refresh_from_db()
    with output.file.open("rb") as copy:
        assert copy.read(3) == b"\xff\xd8\xff"  # a JPEG again
    assert OutputFile.objects.get(job=gone).file.storage.exists(OutputFile.objects.get(job=gone).file.name)


# --- The webhook's log ----------------------------------------------------------------------------


def post_webhook(body: bytes, signature: str | None):
    headers = {"HTTP_CLOUDCONVERT_SIGNATURE": signature} if signature is not None else {}
    return Client().post(WEBHOOK, data=body, content_type="application/json", **headers)


def test_rejected_deliveries_are_logged_with_why_and_only_the_start_of_their_body(settings, alice):
    settings.CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES = 100
    settings.CONVERSIONS_WEBHOOK_MAX_BODY = 4096
    remote_id = "6b4ea3ea-0000-4000-8000-00000000abcd"
    forged = json.dumps({"event": "job.finished", "job": job_payload(remote_id, "finished")}).encode()
    garbage = b"{not json"

    assert post_webhook(forged, "0" * 64).status_code == 400
    assert post_webhook(garbage, sign(settings.ENGINE_WEBHOOK_SECRET, garbage)).status_code == 400
    assert post_webhook(b"x" * 5000, "0" * 64).status_code == 413

    rows = list(WebhookDelivery.objects.order_by("id"))
    assert [(d.rejected_because, d.body_sha256, d.body_size) for d in rows] == [
        ("bad_signature", None, len(forged)), ("malformed", None, len(garbage)), ("too_large", None, 5000),
    ]
    assert (rows[0].event, rows[0].remote_job_id, bytes(rows[0].body)) == ("job.finished", remote_id, forged[:100])
    assert rows[0].detail == "the signature does not match the body"
    assert rows[1].detail.startswith("Expecting property name")
    assert rows[2].body is None and rows[2].detail == "larger than 4096 bytes"


def test_a_rejection_costs_the_webhook_one_statement(settings, django_assert_num_queries):
    body = b'{"event": "job.finished"}'
    with django_assert_num_queries(1):
        assert post_webhook(body, None).status_code == 400


def test_accepted_bodies_are_kept_up_to_the_limit(settings, alice):
    settings.CONVERSIONS_WEBHOOK_LOG_BODY_MAX = 3000
    small = json.dumps({"event": "job.created", "job": job_payload("11111111-0000-4000-8000-000000000001", "waiting")})
    files = [{"filename": f"page-{n}.jpg", "size": 1, "url": f"https://x/{n}"} for n in range(40)]
    big_job = job_payload("11111111-0000-4000-8000-000000000002", "finished", files=files)
    big = json.dumps({"event": "job.finished", "job": big_job})
    for body in (small.encode(), big.encode()):
        assert post_webhook(body, sign(settings.ENGINE_WEBHOOK_SECRET, body)).json() == {"result": "unknown job"}

    kept, too_big = WebhookDelivery.objects.order_by("id")
    assert (bytes(kept.body), kept.body_size, kept.rejected_because) == (small.encode(), len(small), "")
    assert (too_big.body, too_big.body_size) == (None, len(big))


def test_the_log_lists_accepted_and_rejected_deliveries_for_staff(client, settings, django_user_model):
    payload = job_payload("22222222-0000-4000-8000-000000000001", "finished")
    body = json.dumps({"event": "job.finished", "job": payload}).encode()
    post_webhook(body, sign(settings.ENGINE_WEBHOOK_SECRET, body))
    post_webhook(body, "0" * 64)
    client.force_login(staff(django_user_model, "looker", "view_webhookdelivery"))

    page = client.get(DELIVERIES).content.decode()
    rejected = client.get(DELIVERIES, {"outcome": "rejected"}).content.decode()

    assert "Accepted" in page and "Rejected: Missing or bad signature" in page
    assert "22222222-0000-4000-8000-000000000001" in rejected and "Accepted</td>" not in rejected
    accepted = WebhookDelivery.objects.get(rejected_because="")
    detail = client.get(reverse("admin:conversions_webhookdelivery_change", args=[accepted.pk])).content.decode()
    assert "&quot;event&quot;: &quot;job.finished&quot;" in detail
    assert 'value="replay"' not in page  # no replay permission


def test_replaying_a_delivery_that_came_before_its_job_applies_it(client, settings, alice, django_user_model):
    remote_id = "33333333-0000-4000-8000-000000000001"
    body = json.dumps({"event": "job.finished", "job": job_payload(remote_id, "finished")}).encode()
    signature = sign(settings.ENGINE_WEBHOOK_SECRET, body)
    assert post_webhook(body, signature).json() == {"result": "unknown job"}
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id=remote_id)
    assert post_webhook(body, signature).json() == {"result": "duplicate"}  # the sender's retry changes nothing
    rejected = WebhookDelivery.objects.create(rejected_because="bad_signature", body=body[:10])
    delivery = WebhookDelivery.objects.get(rejected_because="")

    client.force_login(staff(django_user_model, "looker", "view_webhookdelivery"))
    act(client, "replay", [delivery], url=DELIVERIES)
    job.refresh_from_db()
    assert job.status == "waiting"

    replayer = staff(django_user_model, "replayer", "view_webhookdelivery", "replay_webhookdelivery")
    client.force_login(replayer)
    response = act(client, "replay", [delivery, rejected], url=DELIVERIES)

    assert report(response) == [
        "1 applied again, 1 could not be: Missing or bad signature: It was rejected, so its body was neither "
        "trusted nor kept whole."
    ]
    job.refresh_from_db()
    assert (job.status, [f.filename for f in job.files.all()]) == ("finished", ["photo.jpg"])
    event = ActivityEvent.objects.get()
    assert (event.actor, event.job, event.detail) == (replayer, job, {"action": "replay webhook delivery"})


# --- Overview, usage, quotas ----------------------------------------------------------------------


def busy_day(alice, bob, jobs: int) -> None:
    statuses = ["waiting", "processing", "finished", "error"]
    now = timezone.now()
    created = ConversionJob.objects.bulk_create(
        ConversionJob(
            user=[alice, bob][n % 2], output_format="pdf", input_filename=f"file-{n}.docx", status=statuses[n % 4],
            error_code="INVALID_FILE" if n % 4 == 3 else "",
            error_message="The file is not a document." if n % 4 == 3 else "",
            finished_at=now if n % 4 >= 2 else None,
        )
        for n in range(jobs)
    )
    OutputFile.objects.bulk_create(
        OutputFile(job=job, filename="out.pdf", size=1000, file=f"outputs/out-{job.pk}.pdf")
        for job in created if job.status == "finished"
    )
    WebhookDelivery.objects.create(body_sha256="a" * 64, event="job.finished")
    WebhookDelivery.objects.create(rejected_because="bad_signature")


@pytest.mark.parametrize("jobs", [5, 500])
def test_the_overview_costs_the_same_queries_for_5_and_500_jobs(
    client, alice, bob, django_user_model, django_assert_max_num_queries, jobs
):
    busy_day(alice, bob, jobs)
    client.force_login(staff(django_user_model, "looker", "view_conversionjob"))

    with django_assert_max_num_queries(10):
        page = client.get(OVERVIEW).content.decode()

    finished, failed = (jobs + 1) // 4 + (jobs % 4 > 2), jobs // 4
    assert f"Started today: {jobs}" in page
    assert f"Failures in the last 24 hours: {failed}" in page
    assert "The file is not a document." in page and "INVALID_FILE" in page
    assert f"{finished} stored file" in page
    assert "1 accepted; 1 rejected: missing or bad signature." in page


def test_usage_shows_jobs_failures_bytes_and_quotas_per_user_and_team(client, alice, bob, django_user_model, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 100
    design = Team.objects.create(name="Design")
    Membership.objects.create(team=design, user=bob, role="member")
    busy_day(alice, bob, 8)
    ConversionJob.objects.filter(user=bob).update(team=design)
    old = finished_here(alice, "old.png")
    ConversionJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    QuotaOverride.objects.create(team=design, daily_jobs=500)
    client.force_login(staff(django_user_model, "looker", "view_conversionjob"))

    page = client.get(USAGE).content.decode()

    users = page[page.index('id="usage-users"'):page.index('id="usage-teams"')]
    teams = page[page.index('id="usage-teams"'):]
    # alice: jobs 0, 2, 4, 6 (2 finished with 1000 bytes each, none failed); bob: 1, 3, 5, 7 (2 failed).
    assert "<td>alice</td><td>4</td><td>0</td><td>2.0\xa0KB</td>" in users and "<td>100" in users
    assert "<td>bob</td><td>4</td><td>2</td><td>0\xa0bytes</td>" in users and "<td>500" in users
    assert "<td>Design</td><td>1</td><td>4</td><td>2</td>" in teams and ">500</a>" in teams


def test_a_quota_override_changes_the_limit_for_a_user_or_a_teams_members(client, alice, bob, live_engine, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 1
    design = Team.objects.create(name="Design")
    Membership.objects.create(team=design, user=bob, role="viewer")
    QuotaOverride.objects.create(team=design, daily_jobs=2)
    QuotaOverride.objects.create(user=alice, daily_jobs=3)

    def starts(user) -> list[int]:
        client.force_login(user)
        convert = reverse("conversions:convert")
        return [
            client.post(convert, {"output_format": "jpg", "filename": f"{n}.png"}, **JSON).status_code for n in range(4)
        ]

    assert starts(alice) == [201, 201, 201, 429]
    assert starts(bob) == [201, 201, 429, 429]
    refused = client.post(reverse("conversions:convert"), {"output_format": "jpg", "filename": "x.png"}, **JSON)
    assert "today's limit of 2 conversions" in refused.json()["error"]
    page = client.get(reverse("conversions:convert")).content.decode()
    assert "You have started 2 of your 2 conversions today." in page
