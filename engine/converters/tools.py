"""Running the command-line tools behind the converters: fenced, bounded in time, leaving nothing behind.

Every tool starts through `popen`: inside its sandbox (engine/converters/sandbox.py: the task's
folder, no network), in a process group of its own, so a timeout or a cancel kills it together
with whatever it started (Chromium's helpers, Ghostscript's children), and recorded under the task
it serves (engine/processes.py). The worker then goes on with the next task.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from engine import processes
from engine.converters import ConversionFailed
from engine.converters.sandbox import Sandbox, wrap

DEFAULT_TOOL_TIMEOUT = 300.0


def setting(name: str, default: Any) -> Any:
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # a plain script without Django settings
        return default


def tool_timeout() -> float:
    """Seconds one run of pandoc, Chromium, Ghostscript or rsvg-convert may take."""
    return float(setting("ENGINE_TOOL_TIMEOUT", DEFAULT_TOOL_TIMEOUT))


def timeout_failure(seconds: float) -> ConversionFailed:
    return ConversionFailed("TIMEOUT", f"The conversion took longer than {seconds:g} seconds and was stopped.")


STOP_TIMEOUT = 10.0


def group_running(group: int) -> bool:
    """Whether a process of this group still runs; zombies do not count (init reaps them late, or never)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _parent, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if pgrp == str(group) and state != "Z":
            return True
    return False


def host_pid(ancestor: int, pid_inside: int) -> int | None:
    """The host's pid of a process the sandbox started under `ancestor` and knows as pid_inside
    (with the sandbox off, the two numbers are the same)."""
    parents: dict[int, int] = {}
    inner: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            pid = int(status.parent.name)
            parents[pid] = int(fields["PPid"])
            inner[pid] = int(fields.get("NSpid", str(pid)).split()[-1])
        except (OSError, KeyError, ValueError):
            continue
    for pid, known_as in inner.items():
        if known_as != pid_inside:
            continue
        step = pid
        while step in parents and step not in (0, 1):
            if step == ancestor:
                return pid
            step = parents[step]
    return None


def kill_group(process: subprocess.Popen, *, wait_for_group: bool = True) -> None:
    """Kill the process and everything in its group, then reap it.

    With wait_for_group, return only once the whole group has stopped: a sandbox's processes end
    a moment after its first one, and may still write to the folders the caller is about to delete."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    deadline = time.monotonic() + STOP_TIMEOUT
    while wait_for_group and group_running(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def popen(args: list[str], *, sandbox: Sandbox, cwd: str | os.PathLike | None = None, **kwargs: Any) -> subprocess.Popen:
    """Start a tool in its sandbox and its own process group, known to the task this thread serves."""
    process = subprocess.Popen(
        wrap(args, sandbox, cwd=cwd),
        cwd=cwd,
        env={**os.environ, **processes.owner_env()},
        start_new_session=True,
        **kwargs,
    )
    processes.track(process)
    return process


def run_tool(
    args: list[str],
    *,
    timeout: float,
    sandbox: Sandbox,
    input: bytes | None = None,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The finished run of args (whatever its exit status), or ConversionFailed("TIMEOUT")."""
    process = popen(
        args,
        sandbox=sandbox,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        process.communicate()
        raise timeout_failure(timeout) from None
    finally:
        # Helpers a tool left running after it exited are ours to stop too.
        kill_group(process)
        processes.untrack(process)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


@functools.cache
def version_line(binary: str, flag: str = "--version") -> str:
    """The first line `binary --version` prints, or "" when the tool cannot be run."""
    try:
        out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else ""
