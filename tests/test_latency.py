"""Small jobs without waiting: an idle worker is woken when work is queued (a Unix-socket doorbell on
SQLite, LISTEN/NOTIFY on PostgreSQL), runs a job's next task itself right away, and delivers the
job's webhook itself; the requests and tasks on a job's path stay within a few SQL statements.

The workers here are real `manage.py ccweb_worker` processes whose poll interval is 5 s: a task
they start well within half of that was not found by a poll.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django_tasks_db.models import DBTaskResult

from conversions.cloudconvert.webhooks import sign
from conversions.models import ConversionJob, OutputFile
from engine import runner
from engine.models import Task
from engine.storage import store_file
from tests.conftest import wait_for
from tests.factories import post_signed_webhook
from tests.test_cancel import ended, ran_on
from tests.test_engine_helpers import (  # noqa: F401 - receiver is a fixture
    CONVERT_TO_JPG,
    Api,
    Receiver,
    png_bytes,
    receiver,
    task_named,
    upload,
)
from tests.test_engine_recovery import database_url, kill, worker_row

pytestmark = pytest.mark.django_db(transaction=True)

POLL_INTERVAL = 5.0
WELL_WITHIN = POLL_INTERVAL / 2


@pytest.fixture
def slow_polling_worker(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts `manage.py ccweb_worker --interval 5` on the test database; kills it at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ccweb.settings",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(tmp_path),  # the engine files land where this test's storage looks
        }
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ccweb_worker", "--queue-name", "engine",
             "--interval", str(POLL_INTERVAL), "--no-startup-delay"],
            cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker-{len(started)}.log").open("wb"), start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        kill(process)


def import_picture(api: Api, name: str) -> str:
    picture = base64.b64encode(png_bytes()).decode()
    return api.post("v2/import/base64", {"file": picture, "filename": name}).json()["data"]["id"]


def idle(api: Api, slow_polling_worker: Callable[[], subprocess.Popen], count: int = 1) -> list[str]:
    """Workers that have found the queue empty and started their 5 s wait (one of them just after
    running a task)."""
    workers = [worker_row(slow_polling_worker()) for _ in range(count)]
    first = import_picture(api, "first.png")
    wait_for(lambda: ended(api, first), timeout=30, interval=0.05)
    time.sleep(0.3)
    return [worker.worker_id for worker in workers]


def test_an_idle_worker_is_woken_when_a_task_is_queued(live_engine: str, slow_polling_worker) -> None:
    api = Api(live_engine)
    [worker_id] = idle(api, slow_polling_worker)

    queued = time.monotonic()
    task_id = import_picture(api, "second.png")
    done = wait_for(lambda: ended(api, task_id), timeout=30, interval=0.02)
    took = time.monotonic() - queued

    print(f"{connection.vendor}: queued to finished in {took:.3f} s (poll interval {POLL_INTERVAL} s)")
    assert done["status"] == "finished"
    assert ran_on(task_id) == worker_id
    assert took < WELL_WITHIN


def test_a_job_runs_from_upload_to_webhook_in_one_worker_without_waiting(
    live_engine: str, slow_polling_worker, receiver: Receiver
) -> None:
    api = Api(live_engine)
    workers = idle(api, slow_polling_worker, count=2)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url)

    uploaded = time.monotonic()
    assert upload(task_named(job, "upload"), png_bytes((800, 600)), "photo.png").status_code == 201
    wait_for(lambda: receiver.deliveries, timeout=30, interval=0.02)
    took = time.monotonic() - uploaded

    print(f"{connection.vendor}: upload done to webhook received in {took:.3f} s")
    assert took < WELL_WITHIN
    [delivery] = receiver.deliveries
    assert delivery.json["event"] == "job.finished"
    assert delivery.headers["CloudConvert-Signature"] == sign(django_settings.ENGINE_WEBHOOK_SECRET, delivery.body)
    # The export that the convert made ready ran right after it in the same run of the same worker
    # (of the two): it was never queued, and neither was the delivery, that worker's next step.
    convert_id, export_id = task_named(job, "convert")["id"], task_named(job, "export")["id"]
    assert ran_on(convert_id) in workers
    runs = [r.args_kwargs["args"] for r in DBTaskResult.objects.filter(task_path="engine.tasks.run_task")]
    assert [convert_id] in runs and [export_id] not in runs
    convert, export = Task.objects.get(pk=convert_id), Task.objects.get(pk=export_id)
    assert convert.ended_at <= export.started_at
    assert not DBTaskResult.objects.filter(task_path="engine.tasks.deliver_webhook").exists()


def test_a_webhook_the_worker_could_not_deliver_itself_is_retried_from_the_queue(
    live_engine: str, worker, receiver: Receiver, settings
) -> None:
    settings.ENGINE_WEBHOOK_RETRY_DELAYS = [0]
    receiver.statuses = [503]
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url)

    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    wait_for(lambda: receiver.deliveries, timeout=30)
    assert receiver.attempts == 2
    [retry] = DBTaskResult.objects.filter(task_path="engine.tasks.deliver_webhook")
    assert retry.args_kwargs["args"][3] == 1  # the first retry; the first attempt was made inline


# --- SQL statements on a job's path -------------------------------------------------------------


def test_an_upload_takes_a_few_statements(live_engine: str, django_assert_max_num_queries) -> None:
    job = Api(live_engine).create_job(CONVERT_TO_JPG)
    form = task_named(job, "upload")["result"]["form"]
    path = form["url"].removeprefix(live_engine.removesuffix("/engine"))
    content = png_bytes()

    # The task, its update and file, who reads it, the job and its tasks, the convert queued (and on
    # PostgreSQL the workers notified), with BEGIN and COMMIT: 11. It was 15.
    with django_assert_max_num_queries(11):
        response = Client().post(
            path, {**form["parameters"], "file": SimpleUploadedFile("photo.png", content, content_type="image/png")}
        )

    assert response.status_code == 201, response.content
    assert Task.objects.get(pk=task_named(job, "upload")["id"]).status == "finished"
    assert DBTaskResult.objects.filter(task_path="engine.tasks.run_task").count() == 1  # the convert


def test_claiming_and_finishing_a_task_takes_a_few_statements(
    live_engine: str, tmp_path: Path, django_assert_max_num_queries
) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")
    convert_id = task_named(job, "convert")["id"]
    output = tmp_path / "photo.jpg"
    output.write_bytes(b"a jpeg")

    with django_assert_max_num_queries(2):  # its job is processing already: nothing to settle (it was 6)
        task = runner.claim(convert_id)
    file = store_file(task, "photo.jpg", output)
    with django_assert_max_num_queries(9):  # it was 12
        assert runner.task_finish(task, files=[file])

    assert Task.objects.get(pk=convert_id).status == "finished"
    export_id = task_named(job, "export")["id"]
    assert Task.objects.get(pk=export_id).status == "waiting"
    queued = DBTaskResult.objects.filter(task_path="engine.tasks.run_task", status="READY")
    assert [r.args_kwargs["args"] for r in queued].count([export_id]) == 1


@pytest.mark.parametrize("status", ["processing", "finished"])
def test_a_webhook_takes_a_few_statements(alice, settings, status: str, django_assert_max_num_queries) -> None:
    job = ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="6b4ea3ea-0000-4000-8000-0000000000aa"
    )

    # The connection's first delivery on SQLite makes the view its statement inserts into.
    assert post_signed_webhook("another-job", status).json() == {"result": "unknown job"}
    # PostgreSQL: one statement, whatever follows. SQLite: a read (a replay?), one statement that
    # records the delivery, updates the job and, when it finished, writes its output files and
    # queues the copy of them; a read of what it did. It was 9 and 12, then 5 and 7.
    most = 1 if connection.vendor == "postgresql" else 3
    with django_assert_max_num_queries(most):
        response = post_signed_webhook(job.remote_job_id, status)

    assert response.json() == {"result": "applied"}
    job.refresh_from_db()
    assert job.status == status
    assert OutputFile.objects.filter(job=job).count() == (1 if status == "finished" else 0)



def test_deliveries_reuse_their_connection_and_carry_no_cookies(settings) -> None:
    """A worker posts a webhook after every job: over one kept-alive connection, and a cookie one
    receiver sets never travels to the next delivery."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from engine import webhooks

    seen: list[tuple[int, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.client_address[1], self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=of-this-receiver; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        for n in range(3):
            webhooks.deliver(url=url, body=json.dumps({"event": "job.finished", "n": n}), webhook_id=None, attempt=0)
    finally:
        server.shutdown()
        server.server_close()

    assert [cookie for _, cookie in seen] == [None, None, None]
    assert len({port for port, _ in seen}) == 1


def test_a_starting_worker_removes_the_doorbells_of_dead_ones(tmp_path: Path) -> None:
    """Killed workers cannot remove their sockets; the next one to start does, and their empty folders."""
    import socket as sockets

    from engine.wakeup import sweep

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    live = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    live.bind(str(tmp_path / "a" / "live.sock"))
    dead = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    dead.bind(str(tmp_path / "b" / "dead.sock"))
    dead.close()  # as a SIGKILL leaves it: the file stays, nobody listens
    try:
        sweep(tmp_path)
        assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == ["a", "a/live.sock"]
    finally:
        live.close()
