"""A real worker process killed in the middle of a task: the task runs again once, then fails.

`manage.py ccweb_worker` runs as a subprocess on the test database (SQLite file or PostgreSQL) and
claims an import/url task whose download never ends; the test SIGKILLs it, as an OOM killer or a
crash would, and the stuck-task chore must notice the silent heartbeat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django_tasks_db.models import DBTaskResult

from engine import maintenance
from engine.models import Job, Task, Worker
from tests.conftest import wait_for
from tests.test_engine_helpers import Api, task_named, upload

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = b"finally, the file" * 100


@dataclass
class StallingSite:
    """Serves /file.bin only once `release` is set; until then every download hangs."""

    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    hits: int = 0


@pytest.fixture
def stalling_site() -> Iterator[StallingSite]:
    site = StallingSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.hits += 1
            if not site.release.wait(timeout=60):
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self.wfile.write(CONTENT)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}/file.bin"
    yield site
    site.release.set()
    server.shutdown()
    server.server_close()


def database_url(user: str | None = None) -> str:
    """DATABASE_URL of the database this test runs on (the test database, not the configured one),
    optionally as another PostgreSQL role."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if user is not None:
        credentials = quote(user)
    else:
        credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{quote(db['NAME'])}"


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts `manage.py ccweb_worker` processes on the test database; kills what is left at the end.
    Keyword arguments become its environment (settings), e.g. DATABASE_URL=..., ENGINE_SANDBOX="off"."""
    started: list[subprocess.Popen] = []

    def start(*, queues: str = "engine", **environment: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ccweb.settings",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(tmp_path),  # the engine files land where this test's storage looks
            "ENGINE_IMPORT_ALLOW_PRIVATE": "true",
            "ENGINE_HEARTBEAT_INTERVAL": "1",
            "WORKER_HEARTBEAT_INTERVAL": "1",
            **environment,
        }
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ccweb_worker", "--queue-name", queues, "--interval", "0.1",
             "--no-startup-delay"],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker-{len(started)}.log").open("wb"),
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        kill(process)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no handler, no cleanup, no last heartbeat (what the OOM killer does)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def worker_row(process: subprocess.Popen) -> Worker:
    """The heartbeat row of a worker process, once it has written it."""
    return wait_for(lambda: Worker.objects.filter(pid=process.pid).first(), timeout=30)  # type: ignore[return-value]


def status(task_id: str) -> Task:
    return Task.objects.get(pk=task_id)


def kill_mid_task(start_worker, site: StallingSite, task_id: str) -> None:
    """A fresh worker claims the task and hangs inside its download; then it is killed."""
    hits = site.hits
    worker = start_worker()
    wait_for(lambda: site.hits > hits, timeout=20)
    assert status(task_id).status == "processing"
    kill(worker)


def test_a_task_whose_worker_was_killed_runs_again_and_finishes(
    live_engine: str, stalling_site: StallingSite, start_worker, settings
) -> None:
    settings.ENGINE_STUCK_AFTER = 2
    api = Api(live_engine)
    task_id = api.post("v2/import/url", {"url": stalling_site.url}).json()["data"]["id"]

    kill_mid_task(start_worker, stalling_site, task_id)
    assert status(task_id).status == "processing"  # nobody will ever finish it by itself

    wait_for(maintenance.recover_stuck_tasks, timeout=15)
    assert (status(task_id).status, status(task_id).recoveries) == ("waiting", 1)
    stalling_site.release.set()
    start_worker()

    task = wait_for(lambda: status(task_id) if status(task_id).is_terminal else None, timeout=20)
    assert task.status == "finished", (task.code, task.message)
    shown = api.get(f"v2/tasks/{task_id}").json()["data"]
    assert shown["result"]["files"] == [{"filename": "file.bin", "size": len(CONTENT)}]


def test_a_task_whose_worker_was_killed_twice_fails_its_job_with_a_sentence(
    live_engine: str, stalling_site: StallingSite, start_worker, settings
) -> None:
    settings.ENGINE_STUCK_AFTER = 2
    api = Api(live_engine)
    job = api.create_job(
        {
            "fetch": {"operation": "import/url", "url": stalling_site.url},
            "export": {"operation": "export/url", "input": "fetch"},
        }
    )
    task_id = task_named(job, "fetch")["id"]

    kill_mid_task(start_worker, stalling_site, task_id)
    wait_for(maintenance.recover_stuck_tasks, timeout=15)
    kill_mid_task(start_worker, stalling_site, task_id)
    wait_for(maintenance.recover_stuck_tasks, timeout=15)

    job = api.job(job["id"])
    fetch = task_named(job, "fetch")
    assert (job["status"], fetch["status"], fetch["code"]) == ("error", "error", "WORKER_LOST")
    assert "stopped twice" in fetch["message"]
    assert task_named(job, "export")["code"] == "INPUT_TASK_FAILED"
    assert Job.objects.get(pk=job["id"]).ended_at is not None


# --- A worker killed in the middle of a real ffmpeg conversion -------------------------------------

VIDEO_TO_WEBM = {
    "upload": {"operation": "import/upload"},
    # VP9 at high quality: several seconds of encoding for a 25 s clip, time enough to act mid-way.
    "convert": {"operation": "convert", "input": "upload", "input_format": "mp4", "output_format": "webm",
                "video_codec": "vp9", "crf": 10},
}


def long_video(folder: Path) -> bytes:
    """A 25-second 640×360 clip (made fast with x264 ultrafast; slow to turn into VP9)."""
    path = folder / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=25:size=640x360:rate=25",
         "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True, timeout=120,
    )
    return path.read_bytes()


def tool_pids(tool: str, task_id: str) -> list[int]:
    """Live processes of this task running `tool`: the sandbox and the tool inside it both name the
    task's folder (ccweb-engine-<task id>-...) on their command line. Other tests' tools do not."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()  # empty for a zombie: it is dead
        except OSError:
            continue
        if tool.encode() in cmdline and task_id.encode() in cmdline:
            found.append(int(entry.name))
    return found


def owner_folders(owner: str) -> list[Path]:
    """Temp folders created by the worker process with this owner token (pid:start-time)."""
    return list(Path(tempfile.gettempdir()).glob(f"ccweb-*-{owner.replace(':', '_')}-*"))


def running_results(worker_id: str) -> list[DBTaskResult]:
    return [r for r in DBTaskResult.objects.filter(status="RUNNING") if r.worker_ids[-1:] == [worker_id]]


@pytest.mark.parametrize("sandbox", ["bwrap", "off"])
def test_a_worker_killed_mid_conversion_leaves_no_tool_folder_or_running_row(
    live_engine: str, start_worker, tmp_path: Path, sandbox: str
) -> None:
    api = Api(live_engine)
    job = api.create_job(VIDEO_TO_WEBM)
    convert_id = task_named(job, "convert")["id"]
    worker = start_worker(ENGINE_SANDBOX=sandbox)
    dead = worker_row(worker)
    upload(task_named(job, "upload"), long_video(tmp_path), "clip.mp4")
    wait_for(lambda: tool_pids("ffmpeg", convert_id), timeout=60)
    assert owner_folders(dead.owner), "the task's folder is named after its worker"
    assert running_results(dead.worker_id), "the worker's django-tasks row is RUNNING"

    kill(worker)
    start_worker(ENGINE_SANDBOX=sandbox)  # a new worker settles, at start, what the dead one left

    wait_for(
        lambda: not tool_pids("ffmpeg", convert_id) and not owner_folders(dead.owner)
        and not running_results(dead.worker_id),
        timeout=30,
    )
    assert Worker.objects.filter(worker_id=dead.worker_id).exists(), "kept for the admin until retention"
