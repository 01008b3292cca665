"""The fence every converter tool runs in: its task's folder, the system's programs, no network, no secrets.

Each test runs a real program through engine.converters.tools.run_tool, as the converters do, and
tries what a hostile input would make a tool try.
"""

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from engine.converters import ConversionFailed, sandbox
from engine.converters.sandbox import Sandbox
from engine.converters.tools import run_tool

SECRET = "CCWEB-SANDBOX-SECRET-7c1e"


def run(args: list[str], fence: Sandbox, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return run_tool(args, timeout=30, sandbox=fence, **kwargs)


@pytest.fixture
def task_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "input.txt").write_text("the task's own input")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file of another user's, beside the task's folder."""
    secret = tmp_path / "other-user" / "output.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    return secret


def test_bubblewrap_runs_here() -> None:
    """bin/setup installs bubblewrap; without it every converter must fail, so this must not skip."""
    assert sandbox.mode() == "bwrap"
    assert sandbox.unavailable_reason() == ""


def test_it_reads_and_writes_the_task_folder(task_folder: Path) -> None:
    result = run(["sh", "-c", "cat input.txt > output.txt"], Sandbox.of(task_folder), cwd=task_folder)

    assert result.returncode == 0, result.stderr
    assert (task_folder / "output.txt").read_text() == "the task's own input"


def test_it_reads_no_file_outside_the_task_folder(task_folder: Path, outside: Path) -> None:
    settings_file = Path(__file__).resolve().parent.parent / "ccweb" / "settings.py"
    for path in (outside, settings_file, Path("/etc/passwd"), Path("/etc/hostname"), Path("/root")):
        result = run(["cat", str(path)], Sandbox.of(task_folder))
        assert result.returncode != 0, f"{path} was readable"
        assert SECRET.encode() not in result.stdout


def test_it_shows_the_tool_none_of_the_workers_environment(task_folder: Path, monkeypatch) -> None:
    monkeypatch.setenv("CCWEB_TEST_SECRET", SECRET)

    result = run(["cat", "/proc/self/environ"], Sandbox.of(task_folder))

    assert result.returncode == 0
    assert SECRET.encode() not in result.stdout
    assert b"SECRET_KEY" not in result.stdout


def test_it_shows_the_tool_no_other_process(task_folder: Path) -> None:
    result = run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"], Sandbox.of(task_folder))

    assert int(result.stdout) <= 4  # bubblewrap's init, sh, ls, grep: never the worker or the database


def test_it_gives_the_tool_no_network(task_folder: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    probe = (
        "import socket\n"
        f"for family, address in ((socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET, ('1.1.1.1', 80)),"
        f" (socket.AF_INET6, ('::1', {port}))):\n"
        "    s = socket.socket(family)\n"
        "    s.settimeout(2)\n"
        "    try:\n"
        "        s.connect(address)\n"
        "        print('connected', address)\n"
        "    except OSError as error:\n"
        "        print('refused', address, error)\n"
        "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"try:\n    udp.sendto(b'x', ('127.0.0.1', {port}))\nexcept OSError:\n    pass\n"
    )

    result = run(["python3", "-c", probe], Sandbox.of(task_folder))
    thread.join()
    listener.close()

    assert result.returncode == 0, result.stderr
    assert b"connected" not in result.stdout
    assert accepted == []


def test_it_fails_in_words_when_bubblewrap_cannot_run(task_folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: None)

    with pytest.raises(ConversionFailed) as failure:
        run(["true"], Sandbox.of(task_folder))

    assert failure.value.code == "SANDBOX_UNAVAILABLE"
    assert "cannot run converters safely" in failure.value.message


def test_it_can_be_turned_off_by_setting(task_folder: Path, outside: Path, settings) -> None:
    settings.ENGINE_SANDBOX = "off"

    result = run(["cat", str(outside)], Sandbox.of(task_folder))

    assert result.stdout.decode() == SECRET  # what every tool could do without the fence


def test_it_caps_memory_where_asked(task_folder: Path) -> None:
    hungry = "x = bytearray(512 * 1024 * 1024); print('allocated')"

    capped = run(["python3", "-c", hungry], Sandbox.of(task_folder, memory_limit=256 * 1024**2))
    free = run(["python3", "-c", hungry], Sandbox.of(task_folder))

    assert capped.returncode != 0 and b"MemoryError" in capped.stderr
    assert free.returncode == 0 and free.stdout.strip() == b"allocated"


def test_it_leaves_no_process_when_the_tool_times_out(task_folder: Path) -> None:
    seconds = f"{30 + os.getpid() % 1000 / 1000:.3f}"  # a sleep no other test starts

    with pytest.raises(ConversionFailed) as failure:
        run_tool(["sh", "-c", f"sleep {seconds} & sleep {seconds}"], timeout=1, sandbox=Sandbox.of(task_folder))

    assert failure.value.code == "TIMEOUT"
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert f"sleep {seconds}" not in ps
