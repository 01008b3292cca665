"""The poller that finishes jobs when webhooks cannot arrive."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversions.models import ConversionJob
from conversions.tasks import poll_delay, poll_job
from tests.factories import job_payload
from tests.stub_api import Reply, api, reply_json  # noqa: F401  (api is a fixture)

pytestmark = pytest.mark.django_db


def queued_polls() -> list[list]:
    return [r.args_kwargs["args"] for r in DBTaskResult.objects.filter(task_path="conversions.tasks.poll_job")]


def test_the_next_poll_is_queued_before_the_api_is_asked(alice, settings):
    """So a worker killed while polling, or an API that is down, never ends the chain."""
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"  # nothing answers there
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="remote-1")
    assert poll_job.call(job.id, 3) == "waiting"
    assert queued_polls() == [[job.id, 4]]


def test_polling_stops_once_the_job_has_ended(alice):
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="remote-2", status="finished")
    assert poll_job.call(job.id, 0) == "done"
    assert queued_polls() == []


def test_polls_back_off_up_to_the_configured_maximum(settings):
    settings.CONVERSIONS_POLL_MAX_INTERVAL = 60
    assert [poll_delay(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]


@pytest.mark.parametrize("status", [429, 503])
def test_no_poll_asks_the_api_before_the_wait_it_asked_for(alice, settings, api, status):
    """CloudConvert says "come back in 300 s": the poll already queued for 2 s later moves itself there."""
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="remote-3")
    api.script(Reply(status, headers={"Retry-After": "300"}))
    asked_at = timezone.now()
    assert poll_job.call(job.id, 0) == "waiting"
    [early] = DBTaskResult.objects.filter(task_path="conversions.tasks.poll_job")
    assert early.run_after < asked_at + timedelta(seconds=300)

    assert poll_job.call(job.id, 1) == "later"  # what the worker runs when the early poll is due
    assert len(api.seen) == 1
    [_, moved] = DBTaskResult.objects.filter(task_path="conversions.tasks.poll_job").order_by("enqueued_at")
    assert moved.args_kwargs["args"] == [job.id, 1]
    assert moved.run_after >= asked_at + timedelta(seconds=300)


def test_polling_resumes_once_the_wait_is_over(alice, settings, api):
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    job = ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="remote-4", poll_after=timezone.now() - timedelta(seconds=1)
    )
    api.script(reply_json(200, {"data": job_payload("remote-4", "finished")}))
    assert poll_job.call(job.id, 1) == "finished"
    assert [seen.path for seen in api.seen] == ["/v2/jobs/remote-4"]


def test_an_absurd_retry_after_does_not_break_the_poller(alice, settings, api):
    settings.CLOUDCONVERT_API_KEY = "a-cloudconvert-key"
    settings.CLOUDCONVERT_API_URL = f"{api.url}/v2"
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="remote-5")
    api.script(Reply(429, headers={"Retry-After": "1" + "0" * 30}))
    assert poll_job.call(job.id, 0) == "waiting"
    job.refresh_from_db()
    assert job.poll_after <= timezone.now() + timedelta(hours=24)
