"""`manage.py ccweb_serve` (gunicorn + task workers, what bin/run starts) as a subprocess on a free
port, for the tests that need the production shape: bursts, probes, and the scaled test shape."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.conf import settings

from engine import processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> dict[int, str]:
    """pid → owner token (pid:start-time) of every process below pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = processes.owner_token(child)
                frontier.append(child)
    return found


def web_processes(served: Served) -> list[int]:
    """The pids of the request-serving processes (children of the master) of the gunicorn at served.url
    (not of the engine server beside it)."""
    below = descendants(served.process.pid)
    bind = f"--bind {served.url.removeprefix('http://')} "
    masters = [pid for pid in below if _parent(pid) == served.process.pid and bind in _cmdline(pid)]
    return [pid for pid in below if _parent(pid) in masters]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Served:
    process: subprocess.Popen
    url: str
    log: Path
    environment: dict[str, str] = field(default_factory=dict)

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=10).status_code == 200
        except requests.RequestException:  # refused, or accepted while gunicorn's processes still boot
            return False

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        """SIGKILL the supervisor and whatever it left (a test must not leave processes behind)."""
        left = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for pid, token in left.items():
            if processes.owner_alive(token):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def serve(*args: str, database_url: str, log: Path, port: int | None = None, timeout: float = 60,
          **environment: str) -> Served:
    """Start `manage.py ccweb_serve` with `args` on the given database; keyword arguments become its
    environment (settings). Returns once /healthz answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ccweb.settings",
        "DATABASE_URL": database_url,
        "PUBLIC_URL": url,
        "WORKER_HEARTBEAT_INTERVAL": "1",
        **environment,
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "ccweb_serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    served = Served(process, url, log, environment)
    deadline = time.monotonic() + timeout
    while not served.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"ccweb_serve did not answer within {timeout} s; its log ends with:\n{served.log_tail()}")
        time.sleep(0.2)
    return served
