import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from conversions import services
from conversions.cloudconvert.webhooks import sign
from conversions.models import ConversionJob, OutputFile, WebhookDelivery
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
def test_a_processing_job_takes_a_later_percent_but_keeps_its_first_file_name(client, settings, job):
    for percent, filename in ((40, "photo.png"), (80, "renamed.png")):
        payload = job_payload(job.remote_job_id, "processing")
        payload["tasks"][1]["percent"] = percent
        payload["tasks"][0]["result"]["files"][0]["filename"] = filename
        body, signature = delivery(settings, "job.updated", payload)
        assert post(client, body, signature).json() == {"result": "applied"}
    job.refresh_from_db()
    assert (job.status, job.percent, job.input_filename) == ("processing", 80, "photo.png")


@pytest.mark.django_db
def test_a_delivery_costs_the_webhook_one_statement_that_writes(client, settings, job):
    """PostgreSQL records, applies and queues what follows in one statement (bench/webhooks.py).
    SQLite reads whether the body is a replay (no write lock for one), then does the same in one
    INSERT into a temporary view, whose trigger the connection makes at its first delivery, and
    reads what it did."""

    def statements(status: str, remote_job_id: str) -> list[str]:
        body, signature = delivery(settings, f"job.{status}", job_payload(remote_job_id, status))
        with CaptureQueriesContext(connection) as captured:
            post(client, body, signature)
        return [q["sql"].split()[0] for q in captured.captured_queries
                if q["sql"].split()[0] not in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}]

    postgresql = connection.vendor == "postgresql"
    first = statements("processing", "another-job")
    assert first == (["WITH"] if postgresql else ["SELECT", "INSERT", *["CREATE"] * 3, "INSERT", "SELECT"])
    assert statements("processing", job.remote_job_id) == (["WITH"] if postgresql else ["SELECT", "INSERT", "SELECT"])
    assert statements("finished", job.remote_job_id) == (["WITH"] if postgresql else ["SELECT", "INSERT", "SELECT"])
    job.refresh_from_db()
    assert job.status == "finished"
    assert [f.filename for f in job.files.all()] == ["photo.jpg"]
    assert [task.task_path for task in DBTaskResult.objects.all()] == ["conversions.tasks.store_outputs"]


@pytest.mark.django_db
def test_a_replayed_update_is_a_duplicate_and_changes_nothing(client, settings, job):
    payload = job_payload(job.remote_job_id, "processing")
    body, signature = delivery(settings, "job.updated", payload)
    assert post(client, body, signature).json() == {"result": "applied"}
    job.refresh_from_db()
    updated_at = job.updated_at

    assert post(client, body, signature).json() == {"result": "duplicate"}
    job.refresh_from_db()
    assert job.updated_at == updated_at
    assert WebhookDelivery.objects.filter(remote_job_id=job.remote_job_id).count() == 1


@pytest.mark.django_db
def test_an_update_for_an_unknown_job_is_recorded_for_a_replay(client, settings):
    body, signature = delivery(settings, "job.updated", job_payload("not-here-yet", "processing"))
    assert post(client, body, signature).json() == {"result": "unknown job"}
    assert WebhookDelivery.objects.get(remote_job_id="not-here-yet").body == body


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


# --- Reliability: one transaction, big bodies, malformed bodies (issue 7) -------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failure_while_applying_lets_the_senders_retry_apply_it(settings, job, monkeypatch):
    """The delivery is recorded with the update it carries: if applying fails, the retry is no "duplicate".
    It fails where the files' rows are written, in the one statement that does it all: the first
    time, a row the database refuses (a file without a name)."""
    body, signature = delivery(settings, "job.finished", job_payload(job.remote_job_id, "finished"))
    calls = []
    output_rows = services._output_rows

    def fails_the_first_time(*args, **kwargs):
        calls.append(args)
        rows = output_rows(*args, **kwargs)
        if len(calls) == 1:
            rows[0][services.OUTPUT_FIELDS.index("filename")] = None
        return rows

    monkeypatch.setattr(services, "_output_rows", fails_the_first_time)
    client = Client(raise_request_exception=False)
    assert post(client, body, signature).status_code == 500  # the sender will retry
    job.refresh_from_db()
    assert job.status == "waiting"
    assert not WebhookDelivery.objects.exists()

    retry = post(client, body, signature)
    assert retry.json() == {"result": "applied"}
    job.refresh_from_db()
    assert job.status == "finished"
    assert [f.filename for f in job.files.all()] == ["photo.jpg"]
    assert [task.task_path for task in DBTaskResult.objects.all()] == ["conversions.tasks.store_outputs"]
    assert post(client, body, signature).json() == {"result": "duplicate"}


def many_files(count: int) -> list[dict]:
    """The export result of a job converting a long PDF page by page, URLs signed as CloudConvert's are."""
    task = "0f6f4f5e-3c1a-4b8e-9a51-6c1d2e3f4a5b"
    query = "AWSAccessKeyId=cloudconvert-production&Expires=1766570400&Signature=" + "x" * 28
    return [
        {
            "filename": f"page-{n:05}.png",
            "size": 48_000 + n,
            "url": f"https://storage.cloudconvert.com/tasks/{task}/page-{n:05}.png?{query}",
        }
        for n in range(1, count + 1)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_signed_body_of_3_mb_is_accepted_over_http(live_engine, live_server, settings, job):
    payload = job_payload(job.remote_job_id, "finished", files=many_files(16_000))
    body, signature = delivery(settings, "job.finished", payload)
    assert len(body) > 3 * 1024 * 1024
    response = requests.post(
        live_server.url + URL,
        data=body,
        headers={"Content-Type": "application/json", "CloudConvert-Signature": signature},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "applied"}
    job.refresh_from_db()
    assert job.status == "finished"
    assert job.files.count() == 16_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signed", [True, False])
def test_a_body_over_the_limit_is_refused_in_words(live_engine, live_server, settings, job, signed):
    settings.CONVERSIONS_WEBHOOK_MAX_BODY = 1024 * 1024
    payload = job_payload(job.remote_job_id, "finished", files=many_files(6000))
    body, signature = delivery(settings, "job.finished", payload)
    assert len(body) > 1024 * 1024
    headers = {"Content-Type": "application/json", "CloudConvert-Signature": signature if signed else "0" * 64}
    response = requests.post(live_server.url + URL, data=body, headers=headers, timeout=60)
    assert response.status_code == 413
    assert response.json() == {"error": "The body is larger than the 1.0\xa0MB this webhook accepts."}
    job.refresh_from_db()
    assert job.status == "waiting"


def _with(path: str, value: object) -> Callable[[dict], dict]:
    """A change to a valid delivery: set the value at a dotted path (numbers index lists)."""

    def change(data: dict) -> dict:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return data

    return change


def _without(key: str) -> Callable[[dict], dict]:
    def change(data: dict) -> dict:
        del data[key]
        return data

    return change


MALFORMED = {
    "not JSON": b"event=job.finished",
    "not UTF-8": b'{"event": "job.finished", "job": "\xff\xfe"}',
    "NaN": b'{"event": "job.finished", "job": {"id": "6b4ea3ea-0000-4000-8000-000000000001", "status": NaN}}',
    "nested too deep to parse": (
        b'{"event": "job.finished", "job": {"id": "x", "tasks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    ),
    "nested too deep to store": (
        b'{"event": "job.finished", "job": {"id": "6b4ea3ea-0000-4000-8000-000000000001", "metadata": '
        + b"[" * 500 + b"]" * 500 + b"}}"
    ),
    "a list": b"[]",
    "a string": b'"job.finished"',
    "null": b"null",
}
MALFORMED_CHANGES = {
    "job missing": _without("job"),
    "event missing": _without("event"),
    "event not a string": _with("event", 5),
    "job not an object": _with("job", ["x"]),
    "job.id missing": lambda data: {**data, "job": {k: v for k, v in data["job"].items() if k != "id"}},
    "job.id not a string": _with("job.id", 6),
    "job.status not a string": _with("job.status", {"finished": True}),
    "tasks not a list": _with("job.tasks", "import,convert"),
    "task not an object": _with("job.tasks.0", "upload"),
    "task operation not a string": _with("job.tasks.2.operation", ["export/url"]),
    "task percent not a number": _with("job.tasks.1.percent", "forty"),
    "task result not an object": _with("job.tasks.2.result", "files"),
    "files not a list": _with("job.tasks.2.result.files", {"photo.jpg": 999}),
    "file not an object": _with("job.tasks.2.result.files.0", "photo.jpg"),
    "filename not a string": _with("job.tasks.2.result.files.0.filename", 7),
    "url not a string": _with("job.tasks.2.result.files.0.url", {"href": "x"}),
    "size not a number": _with("job.tasks.2.result.files.0.size", "999"),
    "size negative": _with("job.tasks.2.result.files.0.size", -1),
    "size too big for the database": _with("job.tasks.2.result.files.0.size", 2**64),
    "upload form not an object": _with("job.tasks.0.result", {"form": "https://storage.cloudconvert.com/tasks"}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*MALFORMED, *MALFORMED_CHANGES])
def test_a_signed_malformed_body_is_400_and_changes_nothing(client, settings, job, name):
    if name in MALFORMED:
        body = MALFORMED[name]
    else:
        data = {"event": "job.finished", "job": job_payload(job.remote_job_id, "finished")}
        body = json.dumps(MALFORMED_CHANGES[name](data)).encode()
    response = post(client, body, sign(settings.ENGINE_WEBHOOK_SECRET, body))
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith("malformed body")
    job.refresh_from_db()
    assert job.status == "waiting"
    assert not OutputFile.objects.exists()
    # Logged as a rejection for the admin, not as a delivery received (its retry is not a duplicate).
    assert list(WebhookDelivery.objects.values_list("rejected_because", "body_sha256")) == [("malformed", None)]


@pytest.mark.django_db
@pytest.mark.parametrize("escaped", [True, False], ids=["as \\u escapes", "as UTF-8 bytes"])
def test_nul_characters_and_lone_surrogates_are_taken_out_of_the_text(client, settings, job, escaped):
    """PostgreSQL stores neither; they are dropped, not turned into a 500 that the sender retries forever.
    Written as JSON escapes or (the surrogate) as raw bytes, which json.loads lets through too."""
    nul = "\u0000" if escaped else ""  # a NUL can only be written as an escape
    payload = job_payload(job.remote_job_id, "finished")
    payload["tasks"][0]["result"]["files"][0]["filename"] = f"pho{nul}to\ud800.png"
    payload["tasks"][1]["message"] = f"done{nul}"
    body = json.dumps({"event": f"job.finished{nul}", "job": payload}, ensure_ascii=escaped).encode(
        "utf-8", "surrogatepass"
    )
    if not escaped:
        assert b"\xed\xa0\x80" in body and b"\\u" not in body
    response = post(client, body, sign(settings.ENGINE_WEBHOOK_SECRET, body))
    assert response.json() == {"result": "applied"}
    job.refresh_from_db()
    assert (job.status, job.input_filename) == ("finished", "photo?.png")
