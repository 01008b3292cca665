"""Serving ccweb from one command: gunicorn for the web, task workers beside it, all kept running.

gunicorn (gthread: a few processes, a bounded number of threads each) is what serves requests:
bounded threads keep bursts from opening a database connection per request, and a slow upload or a
sync-API wait holds one thread, not a process. The supervisor starts it and WORKER_PROCESSES
`manage.py ccweb_worker` processes, restarts whichever dies (with backoff, so a worker that dies at
start does not spin), never stops the web server because a worker died, and on SIGINT/SIGTERM stops
them all (SIGTERM, then SIGKILL after a grace period). Each child runs in a process group of its
own, so Ctrl+C reaches only the supervisor, which stops them in order, and dies with it.

ccweb calls its embedded engine's API over HTTP from inside its own requests (a conversion started at
/convert/ creates the job at /engine/v2/jobs). Served by one bounded pool, a burst of such requests
takes every thread, and their calls to the engine queue behind them until they time out. So ccweb's
own client gets an engine server of its own (`engine_server`: gunicorn on a loopback port, named to
every child as ENGINE_INTERNAL_URL): a request to the site then waits on another pool, never on its
own. The engine's links (upload forms, downloads) keep ENGINE_URL, the public server.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from engine import processes

logger = logging.getLogger(__name__)

TICK = 0.2
STOP_GRACE = 15.0  # seconds children get to finish after SIGTERM
STABLE_AFTER = 60.0  # a child that lived this long starts its backoff over when it dies
MAX_RESTART_DELAY = 30.0
PR_SET_PDEATHSIG = 1
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
INTERNAL_URL_ENV = "ENGINE_INTERNAL_URL"


@dataclass
class Child:
    name: str
    args: list[str]
    # Descriptors the child inherits (an engine server's listening socket, kept open here across restarts).
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float = 0.0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def restart_delay(failures: int) -> float:
    """1 s after a quick death, then 2, 4... up to MAX_RESTART_DELAY."""
    return min(MAX_RESTART_DELAY, 2.0 ** (failures - 1))


def _die_with_supervisor() -> None:
    # A supervisor killed outright (SIGKILL, OOM) takes its children along instead of orphaning them.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def gunicorn_args(*, bind: str, processes: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "ccweb.wsgi:application",
        "--bind", bind,
        "--worker-class", "gthread", "--workers", str(processes), "--threads", str(threads),
        "--graceful-timeout", str(int(STOP_GRACE) - 5),
        "--access-logfile", "-",
        # Several servers on one machine (tests, a second checkout) must not share ~/.gunicorn's socket.
        "--no-control-socket",
    ]


def worker_args(base_dir: Path) -> list[str]:
    return [sys.executable, str(base_dir / "manage.py"), "ccweb_worker", "--interval", "0.5", "-v", "0"]


class Supervisor:
    def __init__(self, children: list[Child], *, cwd: Path, ready: Callable[[], bool], on_ready: Callable[[], None]):
        self.children = children
        self.cwd = cwd
        self.ready = ready
        self.on_ready = on_ready
        self.stopping = False

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.args, cwd=self.cwd, process_group=0, pass_fds=child.pass_fds,
            preexec_fn=_die_with_supervisor,  # noqa: PLW1509 - the supervisor runs no threads
        )
        child.started_at = time.monotonic()
        logger.info("Started %s (pid %s).", child.name, child.process.pid)

    def ask_to_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.ask_to_stop)
        for child in self.children:
            self.start(child)
        announced = False
        while not self.stopping:
            self.tend()
            if not announced and self.ready():
                announced = True
                self.on_ready()
            time.sleep(TICK)
        self.stop()

    def tend(self) -> None:
        """Notice dead children and start them again once their backoff has passed."""
        now = time.monotonic()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                lived = now - child.started_at
                child.failures = 1 if lived >= STABLE_AFTER else child.failures + 1
                delay = restart_delay(child.failures)
                logger.warning(
                    "%s (pid %s) exited with status %s after %.0f s; starting it again in %.0f s.",
                    child.name, child.process.pid, child.process.returncode, lived, delay,
                )
                child.process = None
                child.restart_at = now + delay
            if child.process is None and now >= child.restart_at and not self.stopping:
                self.start(child)

    def stop(self) -> None:
        """SIGTERM to every child; SIGKILL to the process group of any still there after STOP_GRACE."""
        running = [child for child in self.children if child.alive()]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %s) did not stop in time; killing it.", child.name, child.process.pid)
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
        logger.info("Stopped.")


@contextmanager
def shared_metrics() -> Iterator[None]:
    """One PROMETHEUS_MULTIPROC_DIR for every child, so /metrics sums the counters of all gunicorn's
    processes (ops/metrics.py). prometheus_client needs it empty at start: a folder of our own, removed
    at the end (and by the next worker's reaping if the supervisor is killed), or the one set in the
    environment, emptied of its previous counts."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    folder = processes.temp_folder("metrics")
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def engine_server(*, processes: int, threads: int) -> Iterator[Child]:
    """A gunicorn serving ccweb's own calls to its engine, on a loopback port this process holds open
    (bound before the child starts, so no other process can take it meanwhile, and the same after a
    restart); ENGINE_INTERNAL_URL names it to every child started inside the block."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    os.environ[INTERNAL_URL_ENV] = f"http://127.0.0.1:{port}/engine"
    try:
        yield Child("engine server", gunicorn_args(bind=f"fd://{listener.fileno()}", processes=processes,
                                                   threads=threads), pass_fds=(listener.fileno(),))
    finally:
        del os.environ[INTERNAL_URL_ENV]
        listener.close()


def answering(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check
