import json
from pathlib import Path

import pytest
from django.urls import reverse

from conversions.cloudconvert.webhooks import sign
from conversions.models import ConversionJob, OutputFile
from tests.factories import job_payload

FIXTURES = Path(__file__).parent / "fixtures"
URL = reverse("conversions:webhook")


@pytest.fixture
def job(alice) -> ConversionJob:
    return ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="6b4ea3ea-0000-4000-8000-000000000001", tag="t"
    )


def post(client, body: bytes, signature: str | None):
    headers = {"HTTP_CLOUDCONVERT_SIGNATURE": signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", **headers)


def delivery(settings, event: str, payload: dict) -> tuple[bytes, str]:
    body = json.dumps({"event": event, "job": payload}, separators=(",", ":")).encode()
    return body, sign(settings.ENGINE_WEBHOOK_SECRET, body)


@pytest.mark.django_db
def test_it_finishes_the_job_and_lists_its_files(client, settings, job):
    body, signature = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    response = post(client, body, signature)
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "finished"
    assert job.input_filename == "photo.png"
    assert [f.filename for f in job.files.all()] == ["photo.jpg"]


@pytest.mark.django_db
def test_it_explains_a_failure_in_words(client, settings, job):
    payload = job_payload(job.remote_job_id, "error", error=("INVALID_FILE", "The file is not a valid PNG image."))
    body, signature = delivery(settings, "job.failed", payload)
    assert post(client, body, signature).status_code == 200
    job.refresh_from_db()
    assert job.status == "error"
    assert job.error_message.startswith("The file is not a valid PNG image.")
    assert "INPUT_TASK_FAILED" not in job.error_message


@pytest.mark.django_db
@pytest.mark.parametrize("signature", [None, "", "0" * 64, "not-hex"])
def test_it_rejects_a_missing_or_forged_signature_and_changes_nothing(client, settings, job, signature):
    body, _ = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    assert post(client, body, signature).status_code == 400
    job.refresh_from_db()
    assert job.status == "waiting"
    assert not OutputFile.objects.exists()


@pytest.mark.django_db
def test_it_rejects_a_signature_replayed_onto_another_body(client, settings, job):
    """A captured (body, signature) pair cannot be reused to push a different job state."""
    _, old_signature = delivery(settings, "job.failed", job_payload(job.remote_job_id, "processing"))
    forged_body, _ = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    assert post(client, forged_body, old_signature).status_code == 400
    job.refresh_from_db()
    assert job.status == "waiting"


@pytest.mark.django_db
def test_it_accepts_an_exact_replay_without_applying_it_twice(client, settings, job):
    body, signature = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    assert post(client, body, signature).json() == {"result": "applied"}
    OutputFile.objects.all().delete()
    again = post(client, body, signature)
    assert again.status_code == 200
    assert again.json() == {"result": "duplicate"}
    assert not OutputFile.objects.exists()


@pytest.mark.django_db
def test_a_late_event_never_moves_a_finished_job_backwards(client, settings, job):
    body, signature = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    post(client, body, signature)
    for status in ("processing", "waiting", "error"):
        late, late_signature = delivery(settings, "job.failed", job_payload(job.remote_job_id, status))
        assert post(client, late, late_signature).status_code == 200
    job.refresh_from_db()
    assert job.status == "finished"
    assert job.files.count() == 1


@pytest.mark.django_db
def test_it_answers_2xx_for_an_unknown_job_so_the_sender_stops(client, settings):
    body, signature = delivery(settings, "job.finished", job_payload("unknown-id", "finished"))
    response = post(client, body, signature)
    assert response.status_code == 200
    assert response.json() == {"result": "unknown job"}


@pytest.mark.django_db
def test_it_needs_no_login_but_only_accepts_post(client):
    assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_it_applies_a_recorded_cloudconvert_delivery(client, settings, alice):
    """The job.finished body from CloudConvert's SDK fixtures, signed with secret 'secret'."""
    body = (FIXTURES / "webhook_job_finished_payload.json").read_bytes()
    settings.CLOUDCONVERT_API_KEY = "a-key"
    settings.CLOUDCONVERT_WEBHOOK_SECRET = "secret"
    recorded = json.loads(body)["job"]
    job = ConversionJob.objects.create(user=alice, output_format="png", remote_job_id=recorded["id"])
    signature = "576b653f726c85265a389532988f483b5c7d7d5f40cede5f5ddf9c3f02934f35"
    assert post(client, body, signature).status_code == 200
    job.refresh_from_db()
    assert job.status == "finished"
    assert job.files.exists()
