"""`manage.py ccweb_worker` outlives a database that stops answering, then runs what comes next.

The outage is real: on PostgreSQL the worker connects as a role of its own whose connections are
terminated (pg_terminate_backend) and refused (CONNECTION LIMIT 0, "too many connections for role")
for a while; on SQLite another connection holds the write lock past the worker's busy timeout
("database is locked"). django-tasks-db's own worker dies of the first error of either kind.
"""

from __future__ import annotations

import base64
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from engine import processes
from engine.models import Worker
from tests.conftest import wait_for
from tests.test_cancel import ended, ran_on
from tests.test_engine_helpers import Api, png_bytes, task_named, upload
from tests.test_engine_recovery import (  # noqa: F401 - start_worker is a fixture
    VIDEO_TO_WEBM,
    database_url,
    long_video,
    start_worker,
    tool_pids,
    worker_row,
)

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Outage:
    """Makes the test database refuse the worker (connecting with `database_url`) between begin and end."""

    database_url: str
    begin: Callable[[], None]
    end: Callable[[], None]
    settings: dict[str, str] = field(default_factory=dict)


def _sql(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _postgresql_outage() -> Iterator[Outage]:
    role = f"ccweb_outage_{os.getpid()}"
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    _sql(
        f"CREATE ROLE {role} LOGIN",
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}",
    )
    try:
        yield Outage(
            database_url=database_url(user=role),
            begin=lambda: _sql(f"ALTER ROLE {role} CONNECTION LIMIT 0", terminate),
            end=lambda: _sql(f"ALTER ROLE {role} CONNECTION LIMIT -1"),
        )
    finally:
        _sql(terminate, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def _sqlite_outage() -> Iterator[Outage]:
    holder: list[sqlite3.Connection] = []

    def begin() -> None:
        lock = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        holder.append(lock)

    def end() -> None:
        lock = holder.pop()
        lock.execute("COMMIT")
        lock.close()

    try:
        # The busy timeout is shortened so the outage outlasts it in seconds, not minutes.
        yield Outage(database_url=database_url(), begin=begin, end=end, settings={"SQLITE_TIMEOUT": "0.5"})
    finally:
        while holder:
            end()


@pytest.fixture
def outage(transactional_db) -> Iterator[Outage]:
    if connection.vendor == "postgresql":
        yield from _postgresql_outage()
    else:
        yield from _sqlite_outage()


def failures_logged(log: Path) -> int:
    return log.read_text().count("the database failed")


def run_of(task_id: str) -> DBTaskResult:
    """The django-tasks row that runs an engine task."""
    return next(
        r for r in DBTaskResult.objects.filter(task_path="engine.tasks.run_task") if r.args_kwargs["args"] == [task_id]
    )


def test_it_outlives_a_database_outage_and_then_runs_new_tasks(
    live_engine: str, outage: Outage, start_worker, tmp_path: Path
) -> None:
    process = start_worker(DATABASE_URL=outage.database_url, WORKER_RETRY_MAX_DELAY="2", **outage.settings)
    worker = worker_row(process)
    log = tmp_path / "worker-0.log"

    began = time.monotonic()
    outage.begin()
    try:
        wait_for(lambda: failures_logged(log) >= 3, timeout=60)
    finally:
        outage.end()
    back = timezone.now()
    print(f"outage of {time.monotonic() - began:.1f} s, {failures_logged(log)} failures logged")
    assert process.poll() is None, log.read_text()

    api = Api(live_engine)
    picture = base64.b64encode(png_bytes()).decode()
    task = api.post("v2/import/base64", {"file": picture, "filename": "after.png"}).json()["data"]
    done = wait_for(lambda: ended(api, task["id"]), timeout=60)
    assert done["status"] == "finished", done
    assert ran_on(task["id"]) == worker.worker_id
    # Its heartbeat goes on too: the same worker's row, seen again after the outage.
    wait_for(lambda: Worker.objects.get(worker_id=worker.worker_id).last_seen_at > back, timeout=30)
    assert process.poll() is None


def test_staff_see_each_worker_and_whether_it_lives(admin_client) -> None:
    now = timezone.now()
    common = {"pid": 1, "queues": "default,engine", "started_at": now - timedelta(hours=2)}
    Worker.objects.create(worker_id="this-one", hostname=socket.gethostname(), owner=processes.owner_token(),
                          last_seen_at=now, **common)
    Worker.objects.create(worker_id="gone-quiet", hostname="elsewhere", owner="1:1",
                          last_seen_at=now - timedelta(hours=1), **common)

    page = admin_client.get(reverse("admin:engine_worker_changelist")).content.decode()

    assert "this-one" in page and "gone-quiet" in page
    assert (page.count('alt="True"'), page.count('alt="False"')) == (1, 1)


def test_a_task_whose_outcome_could_not_be_written_is_recorded_once_the_database_answers(
    live_engine: str, outage: Outage, start_worker, tmp_path: Path
) -> None:
    process = start_worker(DATABASE_URL=outage.database_url, WORKER_RETRY_MAX_DELAY="2", **outage.settings)
    worker_row(process)
    api = Api(live_engine)
    job = api.create_job(VIDEO_TO_WEBM)
    convert_id = task_named(job, "convert")["id"]
    upload(task_named(job, "upload"), long_video(tmp_path), "clip.mp4")
    wait_for(lambda: tool_pids("ffmpeg", convert_id), timeout=60)
    log = tmp_path / "worker-0.log"

    # The database goes away mid-conversion: the task fails on it, and so does writing that down.
    outage.begin()
    try:
        wait_for(lambda: failures_logged(log) >= 2, timeout=60)
        assert run_of(convert_id).status == "RUNNING"
    finally:
        outage.end()

    wait_for(lambda: run_of(convert_id).status != "RUNNING", timeout=60)
    assert run_of(convert_id).status == "FAILED"
    assert "OperationalError" in run_of(convert_id).traceback
    assert "late" in log.read_text()
    assert process.poll() is None
