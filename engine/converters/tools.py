"""Running the command-line tools behind the converters: bounded in time, leaving nothing behind.

Every tool runs in a process group of its own, so a timeout kills it together with whatever it
started (Chromium's helpers, Ghostscript's children), and the worker goes on with the next task.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from engine.converters import ConversionFailed

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


def kill_group(process: subprocess.Popen) -> None:
    """Kill the process and everything in its group, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_tool(
    args: list[str], *, timeout: float, input: bytes | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The finished run of args (whatever its exit status), or ConversionFailed("TIMEOUT")."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        start_new_session=True,
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
