"""Headless Chromium over the DevTools protocol: an HTML document printed to PDF, nothing fetched.

The document is given to Chromium as the answer to its own request for a made-up https address,
so the page's origin cannot read file:// URLs; every other request (images, stylesheets, frames,
a meta refresh) is refused and scripts are off. An uploaded page can neither read the server's
files nor reach its network. Behind that, Chromium runs in the engine's sandbox: it sees only its
own profile folder and has no network at all (no WebRTC, no DNS), so a request that slipped past
the interception would have nowhere to go. One Chromium per document (about half a second to
start), in a process group of its own that is killed, helpers and all, when the document is done,
its task is cancelled or the time is up.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from engine.converters import ConversionFailed
from engine.converters.sandbox import Sandbox
from engine.converters.tools import kill_group, popen, setting, timeout_failure, version_line
from engine.processes import temp_folder, untrack

DOCUMENT_URL = "https://document.invalid/"
# Paper sizes in inches, as Page.printToPDF takes them.
PAPER_SIZES: dict[str, tuple[float, float]] = {
    "a4": (8.27, 11.69), "a3": (11.69, 16.54), "a5": (5.83, 8.27), "letter": (8.5, 11.0), "legal": (8.5, 14.0),
}
MARGIN_INCHES = 0.6
# The pipe ends Chromium's --remote-debugging-pipe expects, moved there by the shell that starts it.
CHILD_READ, CHILD_WRITE = 10, 11


def chromium_binary() -> str | None:
    return setting("ENGINE_CHROMIUM", None) or shutil.which("chromium") or shutil.which("chromium-browser")


@functools.cache
def installed() -> bool:
    return bool(chromium_binary() and shutil.which("bash"))


@functools.cache
def chromium_version() -> str:
    words = version_line(chromium_binary() or "chromium").split()  # "Chromium 126.0.6478.126 built on ..."
    return words[1] if len(words) > 1 else ""


class DevTools:
    """One Chromium and its debugging pipe; answers the page's requests while waiting for anything."""

    def __init__(self, profile: str, deadline: float, timeout: float) -> None:
        self.deadline, self.timeout = deadline, timeout
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        # Above the numbers the shell redirects to, so the moves below cannot clobber each other.
        child_in = fcntl.fcntl(to_child, fcntl.F_DUPFD, CHILD_READ)
        child_out = fcntl.fcntl(from_child, fcntl.F_DUPFD, child_in + 1)
        os.close(to_child)
        os.close(from_child)
        args = [
            chromium_binary() or "chromium", "--headless", "--remote-debugging-pipe", f"--user-data-dir={profile}",
            "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
            # Further fences: should a request ever slip past the interception, it meets a dead proxy
            # (and, in the sandbox, a machine without network); WebRTC may not go around the proxy.
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
        try:
            self.process = popen(
                ["bash", "-c", f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-', "chromium",
                 *args],
                sandbox=Sandbox.of(profile, shared_memory=True),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(child_in, child_out),
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self._events: list[dict] = []
        self.document = b""

    def close(self) -> None:
        kill_group(self.process)
        untrack(self.process)
        os.close(self._to_browser)
        os.close(self._from_browser)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _pump(self) -> None:
        """Read one message; requests from the page are answered here, whoever is waiting."""
        while b"\0" not in self._buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise timeout_failure(self.timeout)
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConversionFailed("CONVERSION_FAILED", "Chromium stopped unexpectedly; try again later.")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Fetch.requestPaused":
            self._answer_request(message)
        elif "id" in message:
            self._answers[message["id"]] = message
        else:
            self._events.append(message)

    def _answer_request(self, message: dict) -> None:
        params, session = message["params"], message.get("sessionId")
        if params["request"]["url"] == DOCUMENT_URL and params.get("resourceType") == "Document" and self.document:
            body, self.document = self.document, b""  # served once: a reload or redirect back gets nothing
            self.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"],
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
                "body": base64.b64encode(body).decode(),
            }, session)
        else:
            refusal = {"requestId": params["requestId"], "errorReason": "BlockedByClient"}
            self.send("Fetch.failRequest", refusal, session)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        sent = self.send(method, params, session)
        while sent not in self._answers:
            self._pump()
        answer = self._answers.pop(sent)
        if "error" in answer:
            raise ConversionFailed("CONVERSION_FAILED", f"Chromium could not print the document ({method} failed).")
        return answer.get("result", {})

    def wait_for(self, event: str) -> dict:
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event:
                    return self._events.pop(index)
            self._pump()


def print_to_pdf(html: bytes, dest: Path, *, timeout: float, paper: str = "a4") -> Path:
    """dest: html laid out on paper of that size, backgrounds printed, CSS @page sizes honoured."""
    width, height = PAPER_SIZES[paper]
    deadline = time.monotonic() + timeout
    profile = temp_folder("chromium")
    try:
        browser = DevTools(str(profile), deadline, timeout)
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            browser.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
            browser.call("Emulation.setScriptExecutionDisabled", {"value": True}, session)
            browser.call("Page.enable", {}, session)
            browser.document = html
            browser.call("Page.navigate", {"url": DOCUMENT_URL}, session)
            browser.wait_for("Page.loadEventFired")
            printed = browser.call("Page.printToPDF", {
                "printBackground": True,
                "preferCSSPageSize": True,
                "paperWidth": width,
                "paperHeight": height,
                **{f"margin{side}": MARGIN_INCHES for side in ("Top", "Bottom", "Left", "Right")},
            }, session)
        finally:
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dest.write_bytes(base64.b64decode(printed["data"]))
    return dest
