"""The engine's chores: tasks whose worker died, timeouts, retention, and their self-scheduling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from engine import maintenance, processes, workers
from engine.models import Chore, File, Job, Task, Worker
from engine.tasks import run_task
from tests.conftest import wait_for
from tests.test_engine_helpers import CONVERT_TO_JPG, Api, png_bytes, task_named, upload

pytestmark = pytest.mark.django_db(transaction=True)


def _processing_since(task_id: str, seconds: int) -> None:
    long_ago = timezone.now() - timedelta(seconds=seconds)
    Task.objects.filter(pk=task_id).update(status="processing", started_at=long_ago, heartbeat_at=long_ago)


def test_a_task_whose_worker_died_is_run_again_once(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")
    api.wait_job(job["id"])
    export = Task.objects.get(pk=task_named(job, "export")["id"])
    # The export "was running" when its worker vanished ten minutes ago.
    Task.objects.filter(pk=export.pk).update(status="waiting")
    _processing_since(str(export.pk), 600)

    assert maintenance.recover_stuck_tasks() == 1

    wait_for(lambda: Task.objects.get(pk=export.pk).status == "finished")
    assert Task.objects.get(pk=export.pk).recoveries == 1


def test_a_task_lost_twice_fails_with_a_sentence(live_engine: str) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    convert = task_named(job, "convert")["id"]
    _processing_since(convert, 600)
    Task.objects.filter(pk=convert).update(recoveries=1)

    maintenance.recover_stuck_tasks()

    job = api.job(job["id"])
    assert task_named(job, "convert")["code"] == "WORKER_LOST"
    assert task_named(job, "export")["code"] == "INPUT_TASK_FAILED"
    assert job["status"] == "error"


def test_a_task_with_a_fresh_heartbeat_is_left_alone(live_engine: str) -> None:
    job = Api(live_engine).create_job(CONVERT_TO_JPG)
    convert = task_named(job, "convert")["id"]
    Task.objects.filter(pk=convert).update(
        status="processing", started_at=timezone.now() - timedelta(hours=1), heartbeat_at=timezone.now()
    )
    assert maintenance.recover_stuck_tasks() == 0
    assert Task.objects.get(pk=convert).status == "processing"


def test_a_task_past_its_timeout_fails(live_engine: str) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "upload": {"operation": "import/upload"},
            "convert": {"operation": "convert", "input": "upload", "output_format": "jpg", "timeout": 30},
        }
    )
    convert = task_named(job, "convert")["id"]
    Task.objects.filter(pk=convert).update(
        status="processing", started_at=timezone.now() - timedelta(seconds=31)
    )

    assert maintenance.enforce_timeouts() == 1

    task = api.get(f"v2/tasks/{convert}").json()["data"]
    assert task["code"] == "TIMEOUT"
    assert "30 seconds" in task["message"]


def test_jobs_past_retention_are_deleted_with_their_files(live_engine: str, worker, tmp_path: Path) -> None:
    api = Api(live_engine)
    old = api.create_job(CONVERT_TO_JPG)
    upload(task_named(old, "upload"), png_bytes(), "photo.png")
    api.wait_job(old["id"])
    recent = api.create_job(CONVERT_TO_JPG)
    Job.objects.filter(pk=old["id"]).update(ended_at=timezone.now() - timedelta(hours=25))

    call_command("engine_maintenance")

    assert list(Job.objects.values_list("id", flat=True)) == [Job.objects.get(pk=recent["id"]).pk]
    assert not File.objects.exists()
    assert not any(p.is_file() for p in (tmp_path / "engine").rglob("*"))


def test_the_chores_schedule_themselves_once(live_engine: str) -> None:
    api = Api(live_engine)
    api.create_job(CONVERT_TO_JPG)
    api.create_job(CONVERT_TO_JPG)

    queued = DBTaskResult.objects.filter(task_path="engine.tasks.maintenance")
    assert queued.count() == 1
    assert Chore.objects.get(name="maintenance").next_run_at <= timezone.now()


def _export_waiting_on(api: Api, input_id: str, *, input_status: str) -> str:
    """A standalone export created while its input ran, whose input then ended without starting
    it (the lost wake-up a worker and an API request racing could once cause), an hour ago."""
    Task.objects.filter(pk=input_id).update(status="processing")
    export = api.post("v2/export/url", {"input": input_id}).json()["data"]["id"]
    assert Task.objects.get(pk=export).status == "waiting"
    Task.objects.filter(pk=input_id).update(status=input_status)
    Task.objects.filter(pk=export).update(created_at=timezone.now() - timedelta(hours=1))
    return export


def test_a_waiting_task_whose_inputs_ended_unnoticed_is_run_by_the_chores(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")
    api.wait_job(job["id"])
    finished = _export_waiting_on(api, task_named(job, "convert")["id"], input_status="finished")
    failed_input = task_named(api.create_job(CONVERT_TO_JPG), "convert")["id"]
    Task.objects.filter(pk=failed_input).update(code="INVALID_FILE")
    failed = _export_waiting_on(api, failed_input, input_status="error")

    # The worker's own chores may get there first; either way both end as they should have.
    maintenance.requeue_forgotten_tasks()

    wait_for(lambda: Task.objects.get(pk=finished).status == "finished")
    (file,) = api.get(f"v2/tasks/{finished}").json()["data"]["result"]["files"]
    assert file["filename"] == "photo.jpg"
    ended = Task.objects.get(pk=failed)
    assert (ended.status, ended.code) == ("error", "INPUT_TASK_FAILED")


def test_a_new_task_locks_its_inputs_where_the_database_can(live_engine: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from engine import services

    job = Api(live_engine).create_job(CONVERT_TO_JPG)
    with CaptureQueriesContext(connection) as captured:
        services.task_create(operation="export/url", payload={"input": task_named(job, "convert")["id"]})

    locked = any("FOR UPDATE" in query["sql"] for query in captured)
    assert locked == connection.features.has_select_for_update  # PostgreSQL locks; SQLite serialises writers


# --- What dead workers left -------------------------------------------------------------------------


def _worker(worker_id: str, *, seen_ago: float, hostname: str = "elsewhere", owner: str = "1:1") -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        worker_id=worker_id, hostname=hostname, pid=1, owner=owner, queues="default,engine",
        started_at=now - timedelta(hours=1), last_seen_at=now - timedelta(seconds=seen_ago),
    )


def _running(*worker_ids: str) -> DBTaskResult:
    """A django-tasks row as a worker leaves it while running (the task itself does nothing here).
    Queued as due later, so that a live worker cannot claim it before it is made RUNNING."""
    result = run_task.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(str(uuid.uuid4()))
    DBTaskResult.objects.filter(pk=result.id).update(
        status="RUNNING", started_at=timezone.now(), worker_ids=list(worker_ids), run_after=get_date_max()
    )
    return DBTaskResult.objects.get(pk=result.id)


def test_workers_are_dead_when_silent_or_when_their_process_is_gone_here(settings) -> None:
    settings.WORKER_DEAD_AFTER = 120
    _worker("silent", seen_ago=600)
    _worker("busy-elsewhere", seen_ago=5)
    _worker("killed-here", seen_ago=1, hostname=socket.gethostname(), owner="999999999:1")
    _worker("alive-here", seen_ago=1, hostname=socket.gethostname(), owner=processes.owner_token())

    assert workers.dead_worker_ids() == {"silent", "killed-here"}
    assert {w.worker_id for w in workers.live_workers()} == {"busy-elsewhere", "alive-here"}


def test_the_chores_run_again_once_then_fail_what_a_dead_worker_was_running(worker) -> None:
    _worker("dead", seen_ago=600)
    _worker("alive", seen_ago=1)
    first_run = _running("dead")
    second_run = _running("dead-before", "dead")
    of_a_live_worker = _running("alive")
    of_an_unknown_worker = _running("db-worker-without-heartbeat")

    assert maintenance.run_chores()["lost_results"] == 2

    # Queued again, a live worker takes it; the second loss gives it up with a sentence.
    wait_for(lambda: DBTaskResult.objects.get(pk=first_run.pk).status == "SUCCESSFUL")
    assert DBTaskResult.objects.get(pk=first_run.pk).worker_ids == ["dead", "test-worker"]
    given_up = DBTaskResult.objects.get(pk=second_run.pk)
    assert (given_up.status, given_up.exception_class_path) == ("FAILED", "engine.workers.WorkerLost")
    assert "Each of the 2 workers that ran this task stopped" in given_up.traceback
    assert DBTaskResult.objects.get(pk=of_a_live_worker.pk).status == "RUNNING"
    assert DBTaskResult.objects.get(pk=of_an_unknown_worker.pk).status == "RUNNING"


def test_the_chores_kill_the_tools_and_delete_the_folders_a_killed_worker_left(tmp_path: Path) -> None:
    # A worker process (unsandboxed, as ENGINE_SANDBOX=off runs tools) starts a tool in its folder, then is killed.
    script = (
        "import django; django.setup()\n"
        "from engine import processes\n"
        "from engine.converters.sandbox import Sandbox\n"
        "from engine.converters.tools import popen\n"
        "folder = processes.temp_folder('engine-test')\n"
        "tool = popen(['sleep', '300'], sandbox=Sandbox.of(folder), cwd=folder)\n"
        "print(tool.pid, folder, flush=True)\n"
        "input()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=django_settings.BASE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ccweb.settings", "ENGINE_SANDBOX": "off"}, text=True,
    )
    tool_pid, folder = owner.stdout.readline().split()
    tool_token = processes.owner_token(int(tool_pid))
    owner.kill()
    owner.wait()
    assert processes.owner_alive(tool_token) and Path(folder).is_dir(), "left behind: an orphan and its folder"
    mine = processes.temp_folder("engine-test")  # a live worker's folder stays

    done = maintenance.run_chores()

    assert done["orphans"] >= 1 and done["temp_folders"] >= 1
    wait_for(lambda: not processes.owner_alive(tool_token), timeout=5)
    assert not Path(folder).exists()
    assert mine.is_dir()
    mine.rmdir()
