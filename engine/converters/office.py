"""Office documents with LibreOffice, kept warm: text, spreadsheet and presentation formats.

Starting LibreOffice costs about a second per document; a warm one converts in a tenth of that.
So each worker process keeps a small pool of bridges (engine/converters/office_bridge.py, run by
the Python that has LibreOffice's `uno` module), each owning one headless soffice with its own
profile. A bridge converts one document at a time, is replaced after ENGINE_OFFICE_MAX_DOCUMENTS
documents (LibreOffice's memory grows) and killed, with its soffice, when a document takes longer
than ENGINE_OFFICE_TIMEOUT seconds or its task is cancelled. Bridges die with the worker that started them.

Documents link to other content: HTML images and stylesheets, DOCX pictures with an external
target, ODT linked images and sections, spreadsheet links; LibreOffice loads them, from http:// and
file:// alike. So each bridge and its soffice live in the engine's sandbox
(engine/converters/sandbox.py), which holds their own folder and nothing else of the machine's
files, and no network: a document is hard-linked (or copied) into the bridge's `io` folder, the
result taken out of it. Inside, LibreOffice is also told to fetch no linked content
(BlockUntrustedRefererLinks), and documents load without updating links or running macros.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from engine import processes
from engine.converters import Conversion, ConversionFailed, normalize_format, require_content
from engine.converters.sandbox import Sandbox
from engine.converters.tools import host_pid, kill_group, popen

BRIDGE = Path(__file__).with_name("office_bridge.py")
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Written into each new profile: linked pictures are not fetched, whatever their address.
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks"
 oor:op="fuse"><value>true</value></prop></item>
</oor:items>
"""

TEXT = "com.sun.star.text.TextDocument"
SPREADSHEET = "com.sun.star.sheet.SpreadsheetDocument"
PRESENTATION = "com.sun.star.presentation.PresentationDocument"

# LibreOffice opens any bytes as plain text when nothing else fits; for the other formats that
# means the file is damaged or mislabelled, not that it is a text file.
TEXT_FILTERS = ("Text", "Text (encoded)", "Text - txt - csv (StarCalc)", "HTML", "HTML (StarWriter)", "HTML (StarCalc)")
CSV_IMPORT = "44,34,76,1"  # comma, double quote, UTF-8, from line 1
CSV_EXPORT = "44,34,76,1,,0,false,true,true"  # ... and quote text only where needed, as displayed


@dataclass(frozen=True)
class Format:
    label: str
    service: str  # the kind of document LibreOffice must load it as
    group: str  # meta.group of conversions into this format
    export_filter: str
    export_options: str = ""
    # Formats LibreOffice cannot tell apart from plain text are loaded with a fixed filter.
    import_filter: str | None = None
    import_options: str = ""


FORMATS: dict[str, Format] = {
    "doc": Format("DOC", TEXT, "document", "MS Word 97"),
    "docx": Format("DOCX", TEXT, "document", "MS Word 2007 XML"),
    "odt": Format("ODT", TEXT, "document", "writer8"),
    "rtf": Format("RTF", TEXT, "document", "Rich Text Format"),
    "txt": Format("TXT", TEXT, "document", "Text (encoded)", "UTF8", "Text (encoded)", "UTF8"),
    "html": Format("HTML", TEXT, "document", "HTML (StarWriter)", import_filter="HTML (StarWriter)"),
    "xls": Format("XLS", SPREADSHEET, "spreadsheet", "MS Excel 97"),
    "xlsx": Format("XLSX", SPREADSHEET, "spreadsheet", "Calc MS Excel 2007 XML"),
    "ods": Format("ODS", SPREADSHEET, "spreadsheet", "calc8"),
    "csv": Format(
        "CSV", SPREADSHEET, "spreadsheet", "Text - txt - csv (StarCalc)", CSV_EXPORT,
        "Text - txt - csv (StarCalc)", CSV_IMPORT,
    ),
    "ppt": Format("PPT", PRESENTATION, "presentation", "MS PowerPoint 97"),
    "pptx": Format("PPTX", PRESENTATION, "presentation", "Impress MS PowerPoint 2007 XML"),
    "odp": Format("ODP", PRESENTATION, "presentation", "impress8"),
}
PDF_EXPORT = {TEXT: "writer_pdf_Export", SPREADSHEET: "calc_pdf_Export", PRESENTATION: "impress_pdf_Export"}


def _setting(name: str, default: Any) -> Any:
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # a plain script without Django settings
        return default


def _soffice() -> str | None:
    return shutil.which("soffice")


def _office_python() -> str:
    # Debian's python3-uno serves /usr/bin/python3 only, not the interpreter running ccweb.
    return _setting("ENGINE_OFFICE_PYTHON", "/usr/bin/python3")


@functools.cache
def office_version() -> str:
    soffice = _soffice()
    if not soffice:
        return ""
    try:
        out = subprocess.run([soffice, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    words = out.split()  # "LibreOffice 7.4.7.2 40(Build:2)"
    return words[1] if len(words) > 1 else ""


@functools.cache
def installed() -> bool:
    """soffice is there and a Python that can talk to it over UNO."""
    if not _soffice():
        return False
    try:
        probe = subprocess.run([_office_python(), "-c", "import uno"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class OfficeTimeout(Exception):
    pass


class OfficeProcess:
    """One bridge and its soffice; not thread-safe (the pool hands it to one caller at a time)."""

    def __init__(self, max_documents: int) -> None:
        self.max_documents = max_documents
        self.process: subprocess.Popen | None = None
        self.soffice_pid: int | None = None
        self.documents = 0
        # Its sandbox's one folder: the LibreOffice profile, and `io` for the document at hand.
        self.folder: Path | None = None
        self._buffer = b""

    @property
    def profile(self) -> Path | None:
        return self.folder / "profile" if self.folder else None

    @property
    def io(self) -> Path | None:
        return self.folder / "io" if self.folder else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _readline(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                raise OfficeTimeout
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("the office bridge exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def start(self) -> None:
        if self.folder is None:
            self.folder = processes.temp_folder("office")
            (self.profile / "user").mkdir(parents=True)
            (self.profile / "user" / "registrymodifications.xcu").write_text(PROFILE_SETTINGS, encoding="utf-8")
            self.io.mkdir()
        self._buffer = b""
        self.documents = 0
        self.process = popen(
            [_office_python(), str(BRIDGE), "--soffice", _soffice() or "soffice", "--profile", str(self.profile)],
            # The bridge serves many tasks and outlives the thread that started it; it ends when the
            # worker does, as its stdin then closes.
            sandbox=Sandbox.of(self.folder, readable=[BRIDGE], die_with_parent=False),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        processes.untrack(self.process)  # the pool's, not the task's: lent to a task only while converting
        try:
            ready = self._readline(time.monotonic() + STARTUP_TIMEOUT)
        except (OfficeTimeout, EOFError, ValueError):
            ready = {"ready": False}
        if not ready.get("ready"):
            self.kill()
            raise ConversionFailed("CONVERSION_FAILED", "LibreOffice could not be started; try again later.")
        self.soffice_pid = host_pid(self.process.pid, ready["pid"])

    def _reap(self, *, wait_for_group: bool = False) -> None:
        if self.process:
            # soffice.bin outlives the bridge by a moment. A new soffice on the same profile
            # meanwhile would hand its work to the dying one (LibreOffice is single-instance).
            kill_group(self.process, wait_for_group=wait_for_group)
            self.process.stdin.close()
            self.process.stdout.close()
        self.process = None
        self.soffice_pid = None

    def _drop_profile(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def kill(self) -> None:
        """Stop the bridge and soffice at once, and drop the profile a hung office may have left locked."""
        self._reap(wait_for_group=True)  # a dying soffice.bin may still write to the profile
        self._drop_profile()

    def stop(self, *, keep_profile: bool = False) -> None:
        """Let LibreOffice close itself, killing whatever remains after a while."""
        if self.process and self.process.poll() is None:
            try:
                self.process.stdin.write(b'{"quit": true}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._reap(wait_for_group=keep_profile)
        if not keep_profile:
            self._drop_profile()

    def _exchange(self, request: dict, timeout: float) -> dict:
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            return self._readline(time.monotonic() + timeout)
        except OfficeTimeout:
            self.kill()
            raise
        except (OSError, EOFError, ValueError):
            self.kill()
            return {"ok": False, "error": "crash"}

    def _attempt(self, request: dict, timeout: float) -> dict:
        """One try at request["src"] → request["dest"], through the io folder of a running bridge."""
        if self.process is not None and self.process.poll() is not None:
            self.kill()  # it died: its profile may be left locked
        if self.process is None:
            self.start()
        src, dest, io, process = Path(request["src"]), Path(request["dest"]), self.io, self.process
        inside = io / f"input.{request.get('extension') or src.suffix.lstrip('.')}"
        output = io / f"output{dest.suffix}"
        try:
            os.link(src.resolve(), inside)
        except OSError:  # another file system
            shutil.copyfile(src, inside)
        processes.track(process)  # lent to the task: cancelling it now kills this bridge
        try:
            answer = self._exchange({**request, "src": str(inside), "dest": str(output)}, timeout)
            if answer.get("ok") and output.exists():
                shutil.move(output, dest)
            return answer
        finally:
            processes.untrack(process)
            if io.exists():
                for leftover in io.iterdir():
                    leftover.unlink(missing_ok=True)

    def convert(self, request: dict, timeout: float) -> dict:
        answer = self._attempt(request, timeout)
        if answer.get("error") == "dead":
            # soffice had died while idle; this document never reached it, so it deserves a fresh one.
            self.kill()
            answer = self._attempt(request, timeout)
        self.documents += 1
        if answer.get("error") == "crash":
            self.kill()
        elif self.documents >= self.max_documents:
            self.stop(keep_profile=True)  # a fresh soffice on the next document, same warm profile
        return answer


class OfficePool:
    """A fixed number of warm LibreOffice processes, each lent to one conversion at a time."""

    def __init__(self, size: int = 1, max_documents: int = 200, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.processes = [OfficeProcess(max_documents) for _ in range(max(1, size))]
        self._free: queue.Queue[OfficeProcess] = queue.Queue()
        for process in self.processes:
            self._free.put(process)

    def convert(self, request: dict) -> dict:
        process = self._free.get()
        try:
            return process.convert(request, self.timeout)
        finally:
            self._free.put(process)

    def close(self) -> None:
        for process in self.processes:
            process.stop()


_pool: OfficePool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def get_pool() -> OfficePool:
    """This process's pool, created on first use (a forked child makes its own: pipes do not fork well)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = OfficePool(
                size=int(_setting("ENGINE_OFFICE_POOL_SIZE", 1)),
                max_documents=int(_setting("ENGINE_OFFICE_MAX_DOCUMENTS", 200)),
                timeout=float(_setting("ENGINE_OFFICE_TIMEOUT", 120)),
            )
            _pool_pid = os.getpid()
            atexit.register(_close_at_exit, _pool, _pool_pid)
        return _pool


def _close_at_exit(pool: OfficePool, pid: int) -> None:
    if os.getpid() == pid:  # a forked child must not stop its parent's LibreOffice
        pool.close()


def office_convert(
    src: Path, dest: Path, *, input_format: str, output_format: str, import_filter: str | None = None
) -> Path:
    """src (in input_format) written to dest by a warm LibreOffice; ConversionFailed otherwise."""
    source = FORMATS.get(input_format)
    label = source.label if source else input_format.upper()
    target = FORMATS.get(output_format)
    service = source.service if source else TEXT
    request = {
        "src": str(src),
        "dest": str(dest.resolve()),
        # LibreOffice's type detection trusts the extension first; the file gets the declared one.
        "extension": input_format,
        "filter": target.export_filter if target else PDF_EXPORT[service],
        "filter_options": target.export_options if target else "",
        "input_filter": import_filter or (source.import_filter if source else None),
        "input_options": source.import_options if source else "",
        "service": service,
        "forbid_filters": [] if (import_filter or (source and source.import_filter)) else list(TEXT_FILTERS),
    }
    try:
        answer = get_pool().convert(request)
    except OfficeTimeout:
        seconds = get_pool().timeout
        raise ConversionFailed(
            "TIMEOUT", f"The conversion took longer than {seconds:g} seconds and was stopped."
        ) from None
    if answer.get("error") in ("load", "type"):
        raise ConversionFailed(
            "INVALID_FILE", f"The file is not a valid {label} document, or it is damaged or password-protected."
        )
    if answer.get("error") == "crash":
        raise ConversionFailed(
            "CONVERSION_FAILED",
            f"LibreOffice stopped while converting this {label} file; it may be damaged. Try saving it again.",
        )
    if not answer.get("ok") or not dest.exists() or dest.stat().st_size == 0:
        raise ConversionFailed(
            "CONVERSION_FAILED",
            f"LibreOffice could not convert this {label} file to {output_format.upper()}.",
        )
    return dest


def convert_office(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    require_content(src, FORMATS[input_format].label)
    dest = workdir / f"{stem}.{output_format.lower()}"
    return [office_convert(src, dest, input_format=input_format, output_format=normalize_format(output_format))]


def _conversion(input_format: str, output_format: str) -> Conversion:
    return Conversion(
        operation="convert",
        input_format=input_format,
        output_format=output_format,
        engine="office",
        engine_version=office_version(),
        group=FORMATS[output_format].group if output_format in FORMATS else "document",
        options=(),
        run=functools.partial(convert_office, input_format=input_format),
        is_installed=installed,
    )


CONVERSIONS: list[Conversion] = [
    _conversion(source, target)
    for source, fmt in FORMATS.items()
    for target in ["pdf", *FORMATS]
    if target != source and (target == "pdf" or FORMATS[target].service == fmt.service)
]
