"""/healthz, /readyz and /metrics (ops/): what a load balancer, an orchestrator and Prometheus see.

Readiness is checked against real workers (`manage.py ccweb_worker`), a storage that cannot be
written and a database that does not answer; metrics against real conversions, real signed and
forged webhooks, and `manage.py ccweb_serve`'s several gunicorn processes.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from conversions.cloudconvert.webhooks import sign
from conversions.models import ConversionJob, WebhookDelivery
from engine.models import Job, Task, Webhook
from engine.tasks import deliver_webhook
from ops import metrics
from tests.conftest import wait_for
from tests.factories import job_payload
from tests.served import free_port, serve, web_processes
from tests.test_engine_helpers import Api, png_bytes, task_named
from tests.test_engine_recovery import kill, start_worker, worker_row  # noqa: F401 - a fixture

WEBHOOK = "/webhooks/cloudconvert/"
BASE64_TO_JPG = {
    "import": {"operation": "import/base64", "file": base64.b64encode(png_bytes((32, 24))).decode(),
               "filename": "dot.png"},
    "convert": {"operation": "convert", "input": "import", "output_format": "jpg"},
    "export": {"operation": "export/url", "input": "convert"},
}


def scrape(client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def signed_webhook(settings, event: str, payload: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": event, "job": payload}, separators=(",", ":")).encode()
    return body, {"HTTP_CLOUDCONVERT_SIGNATURE": sign(settings.ENGINE_WEBHOOK_SECRET, body)}


# --- /healthz --------------------------------------------------------------------------------------


def test_healthz_answers_without_asking_the_database(client) -> None:
    # No django_db mark: any query would fail this test.
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")
    assert response["Content-Type"].startswith("text/plain")


# --- /readyz ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_readyz_is_not_ready_once_the_only_worker_died(client, start_worker) -> None:
    process = start_worker()
    worker_row(process)
    kill(process)  # SIGKILL: its heartbeat row stays behind

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["error"] == (
        "Not ready. No task worker has reported in the last 120 seconds, so conversions would wait: "
        "start one with `manage.py ccweb_worker` (bin/run starts them)."
    )
    assert [check["name"] for check in body["checks"] if not check["ok"]] == ["workers"]


@pytest.mark.django_db
def test_readyz_names_the_storage_it_cannot_write(client, settings, tmp_path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    settings.STORAGES = {
        **settings.STORAGES,
        "engine": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                   "OPTIONS": {"location": str(not_a_folder / "engine")}},
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = {check["name"]: check for check in response.json()["checks"]}
    assert checks["storage:default"]["ok"] is True
    assert checks["storage:engine"] == {
        "name": "storage:engine", "ok": False,
        "detail": "Could not write a file to the engine's file storage and read it back.",
    }
    assert "Could not write a file to the engine's file storage and read it back." in response.json()["error"]


def test_readyz_names_the_database_when_it_does_not_answer_while_healthz_still_answers(tmp_path: Path) -> None:
    if connection.vendor == "postgresql":
        unreachable = f"postgres://postgres@127.0.0.1:{free_port()}/ccweb"  # nothing listens there
    else:
        unreachable = f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite3'}"
    served = serve("--web-processes", "1", "--web-threads", "2", "--workers", "0", database_url=unreachable,
                   log=tmp_path / "serve.log", MEDIA_ROOT=str(tmp_path))
    try:
        assert requests.get(f"{served.url}/healthz", timeout=30).status_code == 200
        response = requests.get(f"{served.url}/readyz", timeout=30)
    finally:
        served.stop()

    assert response.status_code == 503
    body = response.json()
    failed = {check["name"]: check["detail"] for check in body["checks"] if not check["ok"]}
    assert failed == {
        "database": "The database did not answer.",
        "workers": "Could not ask the database which task workers are alive.",
    }
    assert body["error"].startswith("Not ready. The database did not answer.")
    assert "OperationalError" not in response.text, "the raw error goes to the log, not to the probe"


# --- /metrics --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_metrics_show_jobs_task_time_and_webhooks_after_real_work(client, live_engine, worker, alice, settings) -> None:
    before = scrape(client)
    api = Api(live_engine)
    job = api.wait_job(api.create_job(BASE64_TO_JPG)["id"])
    assert job["status"] == "finished", task_named(job, "convert")["message"]
    failed = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="11111111-aaaa")
    running = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="22222222-bbbb")
    ConversionJob.objects.create(user=alice, output_format="pdf")
    for event, payload in [
        ("job.failed", job_payload(failed.remote_job_id, "error", error=("INVALID_FILE", "Not a PNG image."))),
        ("job.created", job_payload(running.remote_job_id, "processing")),
    ]:
        body, headers = signed_webhook(settings, event, payload)
        assert client.post(WEBHOOK, body, content_type="application/json", **headers).status_code == 200
    body, _ = signed_webhook(settings, "job.finished", job_payload(running.remote_job_id, "finished"))
    for forged in ("", "0" * 64, "not-hex"):
        response = client.post(WEBHOOK, body, content_type="application/json", HTTP_CLOUDCONVERT_SIGNATURE=forged)
        assert response.status_code == 400

    after = scrape(client)

    assert [value(after, "ccweb_conversion_jobs", status=s) for s in ("waiting", "processing", "finished", "error")] \
        == [1, 1, 0, 1]
    assert value(after, "ccweb_engine_jobs", status="finished") == 1
    convert = {"operation": "convert", "engine": "pillow", "status": "finished"}
    assert value(after, "ccweb_engine_task_duration_seconds_gcount", **convert) == 1
    assert value(after, "ccweb_engine_task_duration_seconds_bucket", **convert, le="+Inf") == 1
    assert 0 < value(after, "ccweb_engine_task_duration_seconds_gsum", **convert) < 60
    assert value(after, "ccweb_engine_task_duration_seconds_gcount", operation="export/url", engine="",
                 status="finished") == 1
    assert value(after, "ccweb_webhook_deliveries_total", event="job.failed") == 1
    assert value(after, "ccweb_webhook_deliveries_total", event="job.created") == 1
    assert value(after, "ccweb_webhook_rejections_recent", reason="bad_signature") == 3
    assert value(after, "ccweb_webhook_rejections_recent", reason="malformed") == 0
    rejected = {"code": "400", "outcome": "rejected"}
    accepted = {"code": "200", "outcome": "accepted"}
    assert value(after, "ccweb_webhook_responses_total", **rejected) \
        - value(before, "ccweb_webhook_responses_total", **rejected) == 3
    assert value(after, "ccweb_webhook_responses_total", **accepted) \
        - value(before, "ccweb_webhook_responses_total", **accepted) == 2


@pytest.mark.django_db
def test_task_time_sorts_each_ended_task_into_its_bucket_and_forgets_old_ones(client, settings) -> None:
    settings.METRICS_WINDOW = 600
    now = timezone.now()
    job = Job.objects.create(status="finished")
    for name, seconds, ended_ago, status in [("a", 0.03, 1, "finished"), ("b", 0.7, 2, "finished"),
                                             ("c", 40, 3, "error"), ("d", 0.2, 900, "finished")]:
        ended = now - timedelta(seconds=ended_ago)
        Task.objects.create(job=job, name=name, operation="convert", engine="pillow", status=status,
                            started_at=ended - timedelta(seconds=seconds), ended_at=ended)

    samples = scrape(client)

    finished = {"operation": "convert", "engine": "pillow", "status": "finished"}
    buckets = {le: value(samples, "ccweb_engine_task_duration_seconds_bucket", **finished, le=le)
               for le in ("0.05", "0.1", "0.5", "1", "+Inf")}
    assert buckets == {"0.05": 1, "0.1": 1, "0.5": 1, "1": 2, "+Inf": 2}, "the 900 s old task is left out"
    assert value(samples, "ccweb_engine_task_duration_seconds_gsum", **finished) == pytest.approx(0.73)
    failed = {**finished, "status": "error"}
    assert value(samples, "ccweb_engine_task_duration_seconds_bucket", **failed, le="30") == 0
    assert value(samples, "ccweb_engine_task_duration_seconds_bucket", **failed, le="60") == 1


@pytest.mark.django_db(transaction=True)
def test_queue_depth_counts_tasks_waiting_for_a_worker_and_those_due_later(client, live_engine) -> None:
    api = Api(live_engine)  # no worker: what the job queues stays queued
    for _ in range(2):
        api.create_job(BASE64_TO_JPG)
    later = timezone.now() + timedelta(hours=1)
    deliver_webhook.using(run_after=later).enqueue("http://127.0.0.1:9/hook", "{}", None, 1)

    samples = scrape(client)

    run_task = {"queue": "engine", "task": "engine.tasks.run_task"}
    assert value(samples, "ccweb_task_queue_depth", **run_task) >= 2  # each job's import, at least
    assert value(samples, "ccweb_task_queue_scheduled", **run_task) == 0
    delivery = {"queue": "engine", "task": "engine.tasks.deliver_webhook"}
    assert value(samples, "ccweb_task_queue_depth", **delivery) == 0
    assert value(samples, "ccweb_task_queue_scheduled", **delivery) == 1


@pytest.mark.django_db
def test_a_scrape_costs_the_same_few_queries_however_many_rows_there_are(
    client, alice, django_assert_max_num_queries
) -> None:
    with CaptureQueriesContext(connection) as empty:
        scrape(client)
    now = timezone.now()
    for n in range(20):
        ConversionJob.objects.create(user=alice, output_format="jpg", status=["waiting", "finished", "error"][n % 3])
        job = Job.objects.create(status=["processing", "finished"][n % 2])
        for operation in ("import/upload", "convert", "export/url"):
            Task.objects.create(job=job, name=operation, operation=operation, engine=f"engine-{n % 4}",
                                status="finished", started_at=now - timedelta(seconds=n), ended_at=now)
        WebhookDelivery.objects.create(body_sha256=f"{n:064x}", event=["job.finished", "job.failed"][n % 2])
        WebhookDelivery.objects.create(rejected_because=["bad_signature", "malformed", "too_large"][n % 3])
        Webhook.objects.create(url=f"https://example.com/{n}", events=["job.finished"], signing_secret="s",
                               failing=n % 3 == 0, disabled=n % 5 == 0)
        deliver_webhook.using(queue_name=["engine", "default"][n % 2]).enqueue(f"https://example.com/{n}", "{}")
    long_ago = WebhookDelivery.objects.create(rejected_because="malformed")
    WebhookDelivery.objects.filter(pk=long_ago.pk).update(received_at=now - timedelta(hours=1))

    with django_assert_max_num_queries(metrics.QUERIES) as full:
        samples = scrape(client)

    assert len(full.captured_queries) == len(empty.captured_queries) == metrics.QUERIES
    assert value(samples, "ccweb_webhook_deliveries_total", event="job.failed") == 10
    assert value(samples, "ccweb_webhook_rejections_recent", reason="malformed") == 7, "not the one of an hour ago"
    assert value(samples, "ccweb_engine_account_webhooks", state="disabled") == 4
    assert value(samples, "ccweb_task_queue_depth", queue="default", task="engine.tasks.deliver_webhook") == 10


def test_metrics_want_the_token_when_one_is_set(client, settings) -> None:
    settings.METRICS_TOKEN = "s3cret-metrics-token"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert response.content == b"Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.\n"
    with pytest.raises(RuntimeError, match="Database access not allowed"):
        # The right token gets as far as the database (which this test does not open).
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")


def test_metrics_are_off_in_production_without_a_token(client, settings) -> None:
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics")

    assert response.status_code == 403
    assert response.content == (
        b"Metrics are off in production until METRICS_TOKEN is set; then send it as a Bearer token.\n"
    )


# --- The production shape: gunicorn's processes, supervised workers -----------------------------


@pytest.mark.django_db(transaction=True)
def test_the_served_site_is_ready_once_its_workers_report(production_site) -> None:
    def both_workers_reported() -> dict | None:
        response = requests.get(f"{production_site.url}/readyz", timeout=30)
        body = response.json()
        return body if body["checks"][3]["detail"] == "2 task worker(s) alive." else None

    body = wait_for(both_workers_reported, timeout=30)

    assert body["ready"] is True and "error" not in body
    assert [(check["name"], check["ok"]) for check in body["checks"]] == [
        ("database", True), ("storage:default", True), ("storage:engine", True), ("workers", True),
    ]
    served_files = production_site.log.parent
    assert not [path for path in served_files.rglob("*") if "readiness-probes" in str(path) and path.is_file()]


@pytest.mark.django_db(transaction=True)
def test_webhook_rejections_are_summed_over_every_web_process_even_after_a_restart(production_site) -> None:
    def rejected() -> float:
        text = requests.get(f"{production_site.url}/metrics", timeout=30).text
        return value(parse(text), "ccweb_webhook_responses_total", code="400", outcome="rejected")

    before = rejected()
    for n in range(12):
        response = requests.post(f"{production_site.url}{WEBHOOK}", data=b'{"event":"job.finished"}',
                                 headers={"CloudConvert-Signature": f"{n:064x}"}, timeout=30)
        assert response.status_code == 400
    old = web_processes(production_site)
    assert len(old) == 2
    for pid in old:
        os.kill(pid, signal.SIGKILL)  # gunicorn starts new ones: their memory held no count
    wait_for(lambda: len(set(web_processes(production_site)) - set(old)) == 2 and production_site.answers(), timeout=30)

    assert [rejected() - before for _ in range(4)] == [12] * 4
