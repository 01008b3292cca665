"""`manage.py ccweb_serve` (what bin/run starts): gunicorn and a task worker, supervised, on the test database.

The worker is SIGKILLed as an OOM killer would; the supervisor must start a new one while the web
server goes on answering, and SIGTERM must leave no process behind. On PostgreSQL a burst of
requests must stay within the connection bound the pool settings promise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection

from engine import processes
from engine.models import Worker
from tests.conftest import wait_for
from tests.served import descendants, free_port
from tests.test_engine_recovery import database_url

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    log: Path

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/accounts/login/", timeout=10).status_code == 200
        except requests.RequestException:  # refused, or accepted while gunicorn's processes still boot
            return False


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Starts `manage.py ccweb_serve` on a free port; whatever is left at the end is killed."""
    started: list[Served] = []

    def start(*args: str, **environment: str) -> Served:
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ccweb_serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=django_settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "ccweb.settings",
                "DATABASE_URL": database_url(),
                "MEDIA_ROOT": str(tmp_path),
                "WORKER_HEARTBEAT_INTERVAL": "1",
                **environment,
            },
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        served = Served(process, f"http://127.0.0.1:{port}", log)
        started.append(served)
        wait_for(served.answers, timeout=60)
        return served

    yield start
    for served in started:
        left = descendants(served.process.pid)
        served.process.kill()
        served.process.wait(timeout=10)
        for pid, token in left.items():
            if processes.owner_alive(token):
                os.kill(pid, signal.SIGKILL)


def worker_below(served: Served, *, other_than: int | None = None) -> Worker | None:
    """The heartbeat row of a live task worker started by this supervisor."""
    below = descendants(served.process.pid)
    return Worker.objects.filter(pid__in=[pid for pid in below if pid != other_than]).first()


def test_it_starts_a_new_worker_when_one_is_killed_and_keeps_serving(serve) -> None:
    served = serve("--web-processes", "1", "--web-threads", "4", "--workers", "1")
    first = wait_for(lambda: worker_below(served), timeout=30)

    os.kill(first.pid, signal.SIGKILL)

    def replaced() -> Worker | None:
        assert served.answers(), "the web server must go on while the worker is down"
        return worker_below(served, other_than=first.pid)

    second = wait_for(replaced, timeout=30)
    assert second.pid != first.pid and second.worker_id != first.worker_id
    assert served.process.poll() is None
    assert "exited with status -9" in served.log.read_text()


def test_sigterm_stops_the_web_server_and_the_workers_leaving_no_process(serve) -> None:
    served = serve("--web-processes", "2", "--web-threads", "2", "--workers", "2")
    wait_for(lambda: len(Worker.objects.filter(pid__in=list(descendants(served.process.pid)))) == 2, timeout=30)
    children = descendants(served.process.pid)
    assert len(children) >= 5  # gunicorn and its 2 processes, 2 task workers

    served.process.send_signal(signal.SIGTERM)

    assert served.process.wait(timeout=30) == 0
    assert [pid for pid, token in children.items() if processes.owner_alive(token)] == []
    assert not served.answers()
    assert Worker.objects.count() == 0, "workers that stop cleanly remove their row"


def test_a_burst_of_requests_stays_within_the_connection_bound(serve) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("connection bounds are PostgreSQL's (pg_stat_activity); SQLite has no server connections")
    web_processes, threads, workers = 2, 4, 1
    # A connection per thread that uses the database, kept: gunicorn's threads, a worker's few.
    bound = (web_processes + workers) * threads
    served = serve(
        "--web-processes", str(web_processes), "--web-threads", str(threads), "--workers", str(workers),
        DATABASE_URL=f"{database_url()}?application_name=ccweb-burst",
    )
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        db = connection.settings_dict
        with psycopg.connect(host=db["HOST"] or "localhost", port=db["PORT"] or 5432, user=db["USER"],
                             password=db["PASSWORD"] or None, dbname="postgres", autocommit=True) as watcher:
            while not done.is_set():
                seen.append(watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'ccweb-burst'",
                    [db["NAME"]],
                ).fetchone()[0])
                done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    session_headers = {"Authorization": f"Bearer {django_settings.ENGINE_API_KEY}"}

    def call(_: int) -> int:
        return requests.get(f"{served.url}/engine/v2/jobs", headers=session_headers, timeout=60).status_code

    try:
        with ThreadPoolExecutor(max_workers=40) as pool_of_clients:
            statuses = list(pool_of_clients.map(call, range(400)))
    finally:
        done.set()
        sampler.join()
    print(f"burst: {len(statuses)} requests by 40 clients, at most {max(seen)} connections (bound {bound})")
    assert statuses == [200] * 400
    assert 0 < max(seen) <= bound
