"""The fence around every tool a converter runs: its task's folder, the system's programs, no network.

Uploaded files are hostile. A document can name other files (a Markdown cover image, an HTML
stylesheet, a linked picture in a DOCX or ODT, an HLS playlist inside a video) and the tools
follow such references by design. Instead of trusting each tool's own switches, each runs under
bubblewrap: a new mount namespace holding only /usr, the few files of /etc that fonts and the
tools need, an empty /tmp, and the folders it is given (the task's own); new network, PID, IPC
and UTS namespaces, so no interface but an unconnected loopback and no view of other processes;
an environment holding nothing of the worker's (no secrets in /proc/self/environ). When the tool
ends, its PID namespace ends with it, helpers and all.

ENGINE_SANDBOX=off runs the tools unfenced, for machines where bubblewrap cannot run (no user
namespaces); only do so where every uploaded file is trusted.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from engine.converters import ConversionFailed

logger = logging.getLogger(__name__)

# What of the host a tool may read: programs and libraries, fonts, and the configuration of the
# tools themselves. Never /etc/passwd, /proc of the host, the project folder or the media folder.
SYSTEM_READ_ONLY = (
    "/usr",
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/papersize",
    "/etc/libreoffice",
    "/etc/chromium",
    "/etc/chromium.d",
    "/etc/ghostscript",
    "/var/cache/fontconfig",
)
MERGED_USR_LINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"))
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Sandbox:
    """What one tool run may touch besides the system: `writable` folders (the task's), `readable` files."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    # Chromium wants a shared-memory folder; it gets a private empty one.
    shared_memory: bool = False
    # Kill the tool when the thread that started it ends (a worker killed mid-task).
    die_with_parent: bool = True
    home: Path | None = None
    # Ceilings of the tool's address space (bytes) and processor time (seconds), for tools whose
    # input can make them allocate or compute without bound.
    memory_limit: int | None = None
    cpu_seconds: int | None = None

    @classmethod
    def of(cls, *writable: Path | str, readable: Iterable[Path | str] = (), **options: object) -> Sandbox:
        return cls(
            writable=tuple(Path(p).resolve() for p in writable),
            readable=tuple(Path(p).resolve() for p in readable),
            **options,
        )


def mode() -> str:
    try:
        value = str(getattr(settings, "ENGINE_SANDBOX", "bwrap")).lower()
    except ImproperlyConfigured:  # a plain script (a benchmark) without Django settings
        value = "bwrap"
    return "off" if value in ("off", "none", "false", "0") else "bwrap"


def bwrap_binary() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def _bwrap_works(binary: str) -> str:
    """"" when bubblewrap can start a fenced process here, otherwise why not."""
    try:
        probe = subprocess.run(
            [binary, *_system_args(), "--unshare-all", "--clearenv", "/usr/bin/true"],
            capture_output=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if probe.returncode == 0 else (probe.stderr.decode(errors="replace").strip() or "it failed")


def unavailable_reason() -> str:
    """"" when tools can run fenced (or fencing is off), otherwise a sentence for the operator."""
    if mode() == "off":
        return ""
    binary = bwrap_binary()
    if not binary:
        return "bubblewrap (bwrap) is not installed"
    return _bwrap_works(binary)


def _system_args() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_READ_ONLY:
        if Path(path).exists():
            args += ["--ro-bind", path, path]
    for target, link in MERGED_USR_LINKS:
        if Path(link).is_symlink() or not Path(link).exists():
            args += ["--symlink", target, link]
        else:  # a system without merged /usr: its own /bin and /lib, read-only
            args += ["--ro-bind", link, link]
    return args


def _limited(args: Sequence[str], sandbox: Sandbox) -> list[str]:
    limits = []
    if sandbox.memory_limit:
        limits.append(f"--as={sandbox.memory_limit}")
    if sandbox.cpu_seconds:
        limits.append(f"--cpu={sandbox.cpu_seconds}")
    return ["prlimit", *limits, "--", *args] if limits else list(args)


def wrap(args: Sequence[str], sandbox: Sandbox, *, cwd: str | Path | None = None) -> list[str]:
    """args as run inside the sandbox (unchanged but for its limits when fencing is off)."""
    args = _limited(args, sandbox)
    if mode() == "off":
        return args
    if reason := unavailable_reason():
        logger.error(
            "bubblewrap cannot run: %s. Install bubblewrap, or set ENGINE_SANDBOX=off where every uploaded "
            "file is trusted.", reason,
        )
        raise ConversionFailed(
            "SANDBOX_UNAVAILABLE",
            "The engine cannot run converters safely on this server; an administrator must fix its setup.",
        )
    home = sandbox.home or (sandbox.writable[0] if sandbox.writable else Path("/tmp"))
    wrapped = [
        bwrap_binary() or "bwrap", *_system_args(),
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        "--unshare-all",  # network, PID, IPC, UTS, cgroup and user namespaces of its own
        "--clearenv", "--setenv", "PATH", SANDBOX_PATH, "--setenv", "HOME", str(home),
        "--setenv", "LANG", "C.UTF-8", "--setenv", "TMPDIR", "/tmp",
    ]
    if sandbox.shared_memory:
        wrapped += ["--tmpfs", "/dev/shm"]
    for path in sandbox.readable:
        wrapped += ["--ro-bind", str(path), str(path)]
    for path in sandbox.writable:
        wrapped += ["--bind", str(path), str(path)]
    if cwd is not None:
        wrapped += ["--chdir", str(Path(cwd).resolve())]
    if sandbox.die_with_parent:
        wrapped.append("--die-with-parent")
    return [*wrapped, "--", *args]
