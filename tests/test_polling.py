"""The poller that finishes jobs when webhooks cannot arrive."""

import pytest
from django_tasks_db.models import DBTaskResult

from conversions.models import ConversionJob
from conversions.tasks import poll_delay, poll_job

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
