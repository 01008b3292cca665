"""What bench/jobs.py, bench/upload.py and bench/webhooks.py share: ccweb served as in production
(gunicorn gthread, and task workers for jobs) on a scratch data folder and database, and the
benchmark process set up as a Django client of that same database. The server runs with
bench.settings: ccweb's settings and URLs plus the reference views of bench/urls.py.

Call `configure()` before `django.setup()`: the environment it sets is read by settings in this
process and passed to the server's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure(name: str, *, database_url: str, extra: dict[str, str] | None = None) -> tuple[Path, int]:
    """A fresh DATA_DIR under var/bench/ (so on the disk ccweb uses), a fresh database, a port; all in
    os.environ. An empty database_url means a SQLite file in that folder; a PostgreSQL one names the
    server and a database to connect to, beside which a scratch database is made (dropped at exit)."""
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ROOT / "var" / "bench"))
    port = free_port()
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url = scratch_postgres(database_url, f"bench_{name}_{os.getpid()}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url or f"sqlite:///{data_dir / 'db.sqlite3'}",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ENGINE_RATE_LIMIT": "0",
            "CONVERSIONS_DAILY_JOB_QUOTA": "0",
            "DEBUG": "false",  # as in production: no SQL kept per request, no debug pages
            "LOG_LEVEL": "WARNING",
            **(extra or {}),
        }
    )
    sys.path.insert(0, str(ROOT))
    return data_dir, port


def scratch_postgres(url: str, name: str) -> str:
    """A new, empty database on the server of `url`, dropped when this process exits: earlier runs
    (queued tasks, thousands of jobs) must not weigh on this one."""
    import atexit

    import psycopg

    parts = urlsplit(url)
    admin = dict(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, user=unquote(parts.username or ""),
                 password=unquote(parts.password or "") or None, dbname=unquote(parts.path.lstrip("/")) or "postgres")
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def remove(data_dir: Path) -> None:
    """The scratch folder, once a run succeeded (a failed one keeps it: its server.log tells why)."""
    import shutil

    shutil.rmtree(data_dir, ignore_errors=True)


def describe_database() -> str:
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['NAME']})"


def wait_until_answering(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"The server exited with status {process.returncode} before answering.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"The server did not answer on port {port} within {timeout:.0f} s.")


@contextmanager
def serving(args: list[str], *, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """Run a server command (in its own process group) until the block ends, then stop it as
    bin/run's Ctrl+C would (SIGTERM), killing the group if it lingers."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, cwd=ROOT, env=os.environ.copy(), stdout=output, stderr=output,
                                   start_new_session=True)
    try:
        wait_until_answering(port, process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def ccweb_serve(*, port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "manage.py", "ccweb_serve", "--port", str(port), "--workers", str(workers)]


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def descendants(pid: int) -> list[int]:
    """Every process below pid (children, grandchildren...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every process of this machine has used so far (user, nice, system, interrupts):
    the benchmark's clients and the database server included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
