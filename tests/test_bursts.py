"""Bursts against the production shape (`manage.py ccweb_serve`: gunicorn, two task workers): 100 job
creations through the engine's API, 100 conversions started through ccweb and uploaded, 200 signed
webhooks, each burst fired at once. Not one connection may fail, not one answer may be a 5xx, and
every job must finish, also when the two workers end a job's two inputs at the same moment."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max
from requests.adapters import HTTPAdapter

from conversions.cloudconvert.webhooks import sign
from conversions.models import ConversionJob, WebhookDelivery
from engine.models import Job, Task
from tests.conftest import wait_for
from tests.factories import job_payload
from tests.test_engine_helpers import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 100
TWO_INPUT_JOBS = 100
WEBHOOKS = 200
# Every job must end within this; two workers take about a fifth of it here (2 cores).
FINISH_WITHIN = 120


@dataclass
class Burst:
    """What `count` clients fired at the same moment got back."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # refused, reset, timed out

    @property
    def server_errors(self) -> list[str]:
        return [body[:300] for status, body in zip(self.statuses, self.bodies, strict=True) if status >= 500]


def fire(count: int, call: Callable[[int], requests.Response]) -> Burst:
    """`count` threads, released together by a barrier, each making one call."""
    barrier = threading.Barrier(count)
    lock = threading.Lock()
    burst = Burst()

    def one(index: int) -> requests.Response | None:
        barrier.wait()
        try:
            return call(index)
        except requests.RequestException as error:
            with lock:
                burst.errors.append(f"{type(error).__name__}: {error}")
            return None

    with ThreadPoolExecutor(max_workers=count) as clients:
        responses = list(clients.map(one, range(count)))
    for response in responses:
        if response is not None:
            burst.statuses.append(response.status_code)
            burst.bodies.append(response.text)
    return burst


def test_100_job_creations_at_once_all_answer_and_every_job_finishes(production_site) -> None:
    png = base64.b64encode(png_bytes((80, 60))).decode()
    session_headers = {"Authorization": f"Bearer {settings.ENGINE_API_KEY}"}

    def create(index: int) -> requests.Response:
        tasks = {
            "import": {"operation": "import/base64", "file": png, "filename": f"burst-{index}.png"},
            "convert": {"operation": "convert", "input": "import", "output_format": "jpg"},
            "export": {"operation": "export/url", "input": "convert"},
        }
        return requests.post(f"{production_site.url}/engine/v2/jobs", json={"tasks": tasks}, headers=session_headers,
                             timeout=60)

    burst = fire(JOBS, create)

    assert burst.errors == [], f"{len(burst.errors)} connection errors, e.g. {burst.errors[:3]}"
    assert burst.server_errors == [], burst.server_errors[:3]
    assert burst.statuses == [201] * JOBS, sorted(set(burst.statuses))
    ids = [json.loads(body)["data"]["id"] for body in burst.bodies]
    wait_for(lambda: Job.objects.filter(pk__in=ids, status__in=["finished", "error"]).count() == JOBS,
             timeout=FINISH_WITHIN, interval=0.5)
    assert Job.objects.filter(pk__in=ids, status="finished").count() == JOBS, production_site.log_tail()


def test_jobs_whose_last_task_waits_for_two_inputs_ended_at_once_all_finish(production_site) -> None:
    """One job after the other, so that the two workers take a job's two imports together and end them at
    the same moment; the task waiting for both must start (on PostgreSQL each worker's transaction could
    see the other import still processing)."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {settings.ENGINE_API_KEY}"
    ids = []
    for index in range(TWO_INPUT_JOBS):
        tasks = {
            "first": {"operation": "import/raw", "file": f"first {index}", "filename": "first.txt"},
            "second": {"operation": "import/raw", "file": f"second {index}", "filename": "second.txt"},
            "both": {"operation": "archive", "input": ["first", "second"], "output_format": "zip"},
        }
        response = api.post(f"{production_site.url}/engine/v2/jobs", json={"tasks": tasks}, timeout=60)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["id"])

    jobs = Job.objects.filter(pk__in=ids)
    wait_for(lambda: all_ended(jobs) or nothing_left_to_run(jobs), timeout=FINISH_WITHIN, interval=0.5)
    stuck = Task.objects.filter(job__in=jobs, name="both", status="waiting").count()
    assert stuck == 0, f"{stuck} archive tasks wait forever although both their inputs finished"
    assert jobs.filter(status="finished").count() == TWO_INPUT_JOBS


def all_ended(jobs: QuerySet[Job]) -> bool:
    return not jobs.exclude(status__in=["finished", "error"]).exists()


def nothing_left_to_run(jobs: QuerySet[Job]) -> bool:
    """Every import ended, no task runs and no worker has anything to take: what still waits, waits forever."""
    imports_ended = not Task.objects.filter(job__in=jobs, operation="import/raw").exclude(
        status__in=["finished", "error"]).exists()
    running = Task.objects.filter(job__in=jobs, status="processing").exists()
    due = Q(status="READY", run_after__lte=timezone.now()) | Q(status="READY", run_after=get_date_max())
    return imports_ended and not running and not DBTaskResult.objects.filter(due | Q(status="RUNNING")).exists()


def test_100_conversions_started_through_ccweb_at_once_all_finish(production_site, client, alice) -> None:
    client.force_login(alice)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=JOBS))  # one connection per client thread
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    convert = f"{production_site.url}{reverse('conversions:convert')}"
    assert session.get(convert, timeout=30).status_code == 200
    session.headers.update({"Accept": "application/json", "X-CSRFToken": session.cookies["csrftoken"]})
    photo = png_bytes((80, 60))

    started = fire(JOBS, lambda n: session.post(convert, data={"output_format": "jpg", "filename": f"p{n}.png"},
                                                timeout=60))

    assert started.errors == [], f"{len(started.errors)} connection errors, e.g. {started.errors[:3]}"
    assert started.server_errors == [], started.server_errors[:3]
    assert started.statuses == [201] * JOBS, [
        body for status, body in zip(started.statuses, started.bodies, strict=True) if status != 201][:3]
    forms = [json.loads(body)["upload"] for body in started.bodies]
    # ccweb created them through its engine server; the forms it hands out still post to the public address.
    assert {form["url"].startswith(f"{production_site.url}/engine/storage/upload/") for form in forms} == {True}

    uploaded = fire(JOBS, lambda n: requests.post(forms[n]["url"], data=forms[n]["parameters"],
                                                  files={"file": (f"p{n}.png", photo)}, timeout=60))

    assert uploaded.errors == [] and uploaded.server_errors == [], (uploaded.errors[:3], uploaded.server_errors[:3])
    assert uploaded.statuses == [201] * JOBS, sorted(set(uploaded.statuses))
    jobs = ConversionJob.objects.filter(user=alice)
    wait_for(lambda: jobs.filter(status__in=ConversionJob.TERMINAL).count() == JOBS, timeout=FINISH_WITHIN,
             interval=0.5)
    assert jobs.filter(status="finished").count() == JOBS, list(jobs.exclude(status="finished")
                                                                 .values_list("error_message", flat=True))[:3]
    wait_for(lambda: jobs.filter(files__file="").count() == 0, timeout=FINISH_WITHIN, interval=0.5)


def test_200_signed_webhooks_at_once_are_all_applied(production_site, alice) -> None:
    jobs = [ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id=f"burst-{n:04d}")
            for n in range(WEBHOOKS // 4)]
    deliveries = []
    for n in range(WEBHOOKS):  # four distinct deliveries per job, each a step further
        payload = job_payload(jobs[n % len(jobs)].remote_job_id, "processing")
        payload["tasks"][1]["percent"] = 20 * (n // len(jobs) + 1)
        deliveries.append(json.dumps({"event": "job.created", "job": payload}, separators=(",", ":")).encode())
    secret = settings.ENGINE_WEBHOOK_SECRET
    url = f"{production_site.url}{reverse('conversions:webhook')}"

    burst = fire(WEBHOOKS, lambda n: requests.post(
        url, data=deliveries[n], timeout=60,
        headers={"Content-Type": "application/json", "CloudConvert-Signature": sign(secret, deliveries[n])},
    ))

    assert burst.errors == [], f"{len(burst.errors)} connection errors, e.g. {burst.errors[:3]}"
    assert burst.server_errors == [], burst.server_errors[:3]
    assert burst.statuses == [200] * WEBHOOKS, sorted(set(burst.statuses))
    assert {json.loads(body)["result"] for body in burst.bodies} == {"applied"}
    assert WebhookDelivery.objects.count() == WEBHOOKS, "no delivery lost"
    assert set(ConversionJob.objects.values_list("status", flat=True)) == {"processing"}
