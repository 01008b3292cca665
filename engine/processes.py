"""The processes a worker starts for its tasks: which task each serves, and who owns it.

Every tool a converter runs is started through `engine.converters.tools.popen`, which puts it in a
process group of its own, marks it with this worker's owner token (in its environment) and, while a
task is being served in this thread, records it under that task. Cancelling the task kills those
groups, and any the task starts afterwards; a worker that died leaves marked processes and temp
folders whose owner is gone, which the next worker on the machine (or the chores) finds and removes
(`reap`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

OWNER_ENV = "CCWEB_ENGINE_OWNER"

_local = threading.local()
_lock = threading.Lock()
_by_task: dict[str, set[subprocess.Popen]] = {}
_serving: set[str] = set()
# Tasks cancelled while this worker serves them: a tool they start from now on is killed at once.
_cancelled: set[str] = set()


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot); with the pid it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_token(pid: int | None = None) -> str:
    """pid:start-time of this process: unlike a pid alone, it is never reused by another process."""
    pid = pid or os.getpid()
    return f"{pid}:{_start_time(pid) or 0}"


def owner_alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    try:
        return _start_time(int(pid)) == started
    except ValueError:
        return False


def owner_env() -> dict[str, str]:
    return {OWNER_ENV: owner_token()}


TEMP_PREFIX = "ccweb-"
# ccweb-<kind>-<pid>_<start>-<random>: mkdtemp's random part has no "-", the kind may.
_TEMP_NAME = re.compile(rf"^{TEMP_PREFIX}.+-(\d+)_(\d+)-[^-]+$")


def temp_folder(kind: str) -> Path:
    """A new private folder in the system's temp folder, named after its kind and owner
    (ccweb-<kind>-<pid>_<start>-<random>), so the folders of a dead worker can be found."""
    owner = owner_token().replace(":", "_")
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{kind}-{owner}-"))


@contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """A temp_folder for the length of the block, deleted after it."""
    folder = temp_folder(kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def serving(task_id: str) -> Iterator[None]:
    """Processes started in this thread inside the block belong to task_id."""
    previous = getattr(_local, "task_id", None)
    _local.task_id = str(task_id)
    with _lock:
        _serving.add(str(task_id))
    try:
        yield
    finally:
        _local.task_id = previous
        with _lock:
            _serving.discard(str(task_id))
            _by_task.pop(str(task_id), None)
            _cancelled.discard(str(task_id))


def current_task() -> str | None:
    return getattr(_local, "task_id", None)


def track(process: subprocess.Popen) -> None:
    """Record a started process under the task this thread serves (if any)."""
    task_id = current_task()
    if task_id is None:
        return
    with _lock:
        _by_task.setdefault(task_id, set()).add(process)
        cancelled = task_id in _cancelled
    if cancelled:
        _kill_group(process.pid)


def untrack(process: subprocess.Popen) -> None:
    task_id = current_task()
    if task_id is None:
        return
    with _lock:
        _by_task.get(task_id, set()).discard(process)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_task(task_id: str) -> int:
    """Kill the process groups running for a task in this worker; how many there were."""
    with _lock:
        processes = list(_by_task.get(str(task_id), ()))
    for process in processes:
        _kill_group(process.pid)
    return len(processes)


def cancel(task_id: str) -> int:
    """Stop a task's tools for good: those running now, and any it starts until it is no longer served
    (a converter may be between two tools when the cancel arrives). How many were running."""
    with _lock:
        if str(task_id) in _serving:
            _cancelled.add(str(task_id))
    return kill_task(task_id)


# --- What dead workers left behind on this machine -------------------------------------------------


def _owner_of(pid: int) -> str | None:
    """The owner token in a process's environment, if it is one of our tools."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(OWNER_ENV.encode() + b"="):
            return entry.split(b"=", 1)[1].decode(errors="replace")
    return None


def orphans() -> dict[int, str]:
    """pid → owner token of the tool processes on this machine whose worker is gone."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        token = _owner_of(int(entry.name))
        if token is not None and not owner_alive(token):
            found[int(entry.name)] = token
    return found


def reap_orphans() -> int:
    """Kill the process groups of tools whose worker died (killed, crashed) before it could stop them."""
    own_group = os.getpgrp()
    groups: dict[int, str] = {}
    for pid, token in orphans().items():
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if group != own_group:
            groups[group] = token
    for group, token in groups.items():
        logger.warning("Killing process group %s left running by the dead worker %s.", group, token)
        _kill_group(group)
    return len(groups)


def reap_temp_folders() -> int:
    """Delete the temp folders (ccweb-<kind>-<owner>-*) of workers that are gone."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        match = _TEMP_NAME.match(folder.name)
        if not match or owner_alive(f"{match[1]}:{match[2]}") or not folder.is_dir():
            continue
        logger.warning("Deleting %s, left behind by a dead worker.", folder)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def reap() -> dict[str, int]:
    """Everything dead workers left on this machine: their tools first (they may still write), then folders."""
    return {"orphans": reap_orphans(), "temp_folders": reap_temp_folders()}
