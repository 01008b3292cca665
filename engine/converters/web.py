"""capture-website: a web page as Chromium shows it, saved as pdf, png or jpg.

Chromium never touches the network itself: engine.converters.chromium starts it behind a dead
proxy, and every request the page makes (the page, its images and scripts, each redirect) is paused
over the DevTools pipe, fetched here after the same address check as import/url (and from the
address that was checked), and handed back.
A page can thus no more reach the engine's private network through Chromium than through import/url.
Chromium and its helpers live in one process group, killed when the capture ends or its time is up.
"""

from __future__ import annotations

import base64
import json
import time
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests

from engine.converters import Conversion, ConversionFailed, Option
from engine.converters.chromium import DevTools, chromium_version, installed
from engine.converters.image import QUALITY
from engine.converters.tools import timeout_failure
from engine.fetch import PinnedAdapter, check_host
from engine.processes import scratch
from engine.uploads import max_upload_size

ENGINE = "chrome"  # CloudConvert's name for its capture-website engine
INPUT_FORMAT = "website"  # what CloudConvert's catalogue lists as capture-website's input
CM_PER_INCH, MM_PER_INCH = 2.54, 25.4
# Hop-by-hop headers, and those describing the encoded body requests has already decoded.
DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "content-encoding", "content-length", "keep-alive", "transfer-encoding"}
)
LIFECYCLE = {
    "load": "load",
    "domcontentloaded": "DOMContentLoaded",
    "networkidle0": "networkIdle",
    "networkidle2": "networkAlmostIdle",
}

ZOOM = Option("zoom", "float", default=1.0, minimum=0.1, maximum=2.0, description="Zoom level of the page.")
WAIT_UNTIL = Option(
    "wait_until", "enum", default="load", possible_values=tuple(LIFECYCLE),
    description="When the page counts as loaded: its load event, DOMContentLoaded, or the network idle.",
)
WAIT_FOR_ELEMENT = Option(
    "wait_for_element", "string", default=None,
    description="A CSS selector; the capture waits until an element matches it.",
)
WAIT_TIME = Option(
    "wait_time", "integer", default=0, minimum=0, maximum=300_000,
    description="Milliseconds to wait after the page has loaded, for animations and late scripts.",
)
LOADING = (ZOOM, WAIT_UNTIL, WAIT_FOR_ELEMENT, WAIT_TIME)

_RANGE = r"\d+\s*(?:-\s*\d+)?"
PDF_OPTIONS = (
    *LOADING,
    Option("page_width", "float", default=21.0, minimum=1, maximum=500, description="Paper width in cm."),
    Option("page_height", "float", default=29.7, minimum=1, maximum=500, description="Paper height in cm."),
    *(
        Option(f"margin_{side}", "float", default=0.0, minimum=0, maximum=500, description=f"{side} margin in mm.")
        for side in ("top", "bottom", "left", "right")
    ),
    Option("print_background", "boolean", default=True, description="Print background colours and images."),
    Option("display_header_footer", "boolean", default=False, description="Print a header and a footer."),
    Option("header_template", "string", default=None, description="HTML of the header (Chromium's classes)."),
    Option("footer_template", "string", default=None, description="HTML of the footer (Chromium's classes)."),
    Option(
        "pages", "string", default=None, pattern=rf"\s*{_RANGE}\s*(?:,\s*{_RANGE}\s*)*",
        description='Pages to keep, such as "1-3,5"; all pages when empty.',
    ),
)
IMAGE_OPTIONS = (
    *LOADING,
    Option("page_width", "integer", default=1280, minimum=100, maximum=8000, description="Width in pixels."),
    Option("page_height", "integer", default=800, minimum=100, maximum=8000, description="Height in pixels."),
)


class Browser(DevTools):
    """Chromium whose page gets every resource through `fetch` (address-checked, size-bounded)."""

    def __init__(self, profile: str, deadline: float, timeout: float, *, url: str, headers: dict[str, str]) -> None:
        super().__init__(profile, deadline, timeout)
        self.http = requests.Session()
        # Chromium keeps the cookies and sends them with each request; a second jar here would
        # replay them on its own terms.
        self.http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.origin = _origin(url)
        self.headers = headers
        self.budget = max_upload_size()
        self.main_frame = ""
        self.document_status: int | None = None
        self.document_refusal: ConversionFailed | None = None
        # One adapter per checked address, each keeping its own connections to that address.
        self.pinned: dict[str, PinnedAdapter] = {}

    def close(self) -> None:
        super().close()
        self.http.close()
        for adapter in self.pinned.values():
            adapter.close()

    def _answer_request(self, message: dict) -> None:
        params, session = message["params"], message.get("sessionId")
        is_document = params.get("resourceType") == "Document" and params.get("frameId") == self.main_frame
        try:
            status, headers, body = self.fetch(params["request"])
        except ConversionFailed as refusal:
            if refusal.code == "TIMEOUT":
                raise
            if is_document:
                self.document_refusal = refusal
            self.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"}, session)
            return
        if is_document:
            self.document_status = status
        self.send(
            "Fetch.fulfillRequest",
            {
                "requestId": params["requestId"],
                "responseCode": status,
                "responseHeaders": [{"name": k, "value": v} for k, v in headers],
                "body": base64.b64encode(body).decode(),
            },
            session,
        )

    def fetch(self, request: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        url = request["url"]
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConversionFailed("IMPORT_FAILED", f"The page asked for {url}, which is not a web address.")
        self._connect_to(check_host(url))
        headers = {k: v for k, v in request.get("headers", {}).items() if k.lower() != "accept-encoding"}
        # The user's headers (a cookie, a token) are meant for the captured site, not for third parties.
        if _origin(url) == self.origin:
            headers.update(self.headers)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise timeout_failure(self.timeout)
        body = request["postData"].encode() if "postData" in request else None  # a form the page posts
        try:
            response = self.http.request(
                request.get("method", "GET"), url, headers=headers, data=body,
                stream=True, allow_redirects=False, timeout=remaining,
            )
            with response:
                body = bytearray()
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    body += chunk
                    self.budget -= len(chunk)
                    if self.budget < 0:
                        raise ConversionFailed(
                            "FILE_TOO_LARGE", "The website is larger than the engine accepts; capture a smaller page."
                        )
                    if time.monotonic() > self.deadline:
                        raise timeout_failure(self.timeout)
        except requests.RequestException as error:
            if time.monotonic() > self.deadline:
                raise timeout_failure(self.timeout) from None
            raise ConversionFailed("IMPORT_FAILED", f"The website could not be fetched: {error}.") from None
        # Redirects go back to Chromium, which asks again for the new address: each hop is checked.
        kept = [(k, v) for k, v in response.raw.headers.items() if k.lower() not in DROPPED_RESPONSE_HEADERS]
        return response.status_code, kept, bytes(body)

    def _connect_to(self, address: str | None) -> None:
        """The next request goes to the address check_host vouched for, as import/url's do: a name
        answering a public address to the check and a local one to a second lookup (DNS rebinding)
        cannot lead it elsewhere. None (private addresses allowed) needs no pinning."""
        if address is None:
            return
        adapter = self.pinned.get(address) or self.pinned.setdefault(address, PinnedAdapter(address))
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def wait_lifecycle(self, name: str, loader: str) -> None:
        while True:
            event = self.wait_for("Page.lifecycleEvent")["params"]
            if (event["name"], event["frameId"], event["loaderId"]) == (name, self.main_frame, loader):
                return

    def evaluate(self, expression: str, session: str) -> object:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        answer = self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"].get("exception", {}).get("description") or "a script error"
            raise ConversionFailed("INVALID_OPTIONS", f"The page could not be inspected: {details.splitlines()[0]}")
        return answer.get("result", {}).get("value")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def default_stem(url: str) -> str:
    """A name for the output: the page's file name, or the site's host name for a folder URL."""
    parts = urlsplit(url)
    return PurePosixPath(parts.path).stem or (parts.hostname or "website").replace(".", "-")


def _load(browser: Browser, session: str, url: str, options: dict) -> None:
    navigated = browser.call("Page.navigate", {"url": url}, session)
    if navigated.get("errorText"):
        if browser.document_refusal is not None:
            raise browser.document_refusal
        raise ConversionFailed(
            "CAPTURE_FAILED", f"The website could not be loaded ({navigated['errorText']}); check the URL."
        )
    browser.wait_lifecycle(LIFECYCLE[options["wait_until"]], navigated["loaderId"])
    if browser.document_status is not None and browser.document_status >= 400:
        raise ConversionFailed(
            "CAPTURE_FAILED", f"The website answered HTTP {browser.document_status}; check that the URL is public."
        )
    if selector := options["wait_for_element"]:
        poll = (
            "new Promise(done => { const look = () => document.querySelector("
            + json.dumps(selector)
            + ") ? done(true) : setTimeout(look, 100); look(); })"
        )
        try:
            browser.evaluate(poll, session)
        except ConversionFailed as error:
            if error.code != "TIMEOUT":
                raise ConversionFailed("INVALID_OPTIONS", f"wait_for_element is not a valid CSS selector: {selector}.") from None
            raise ConversionFailed(
                "TIMEOUT", f"No element matched {selector} within {browser.timeout:g} seconds; check wait_for_element."
            ) from None
    if options["wait_time"]:
        browser.evaluate(f"new Promise(done => setTimeout(done, {int(options['wait_time'])}))", session)


def _print(browser: Browser, session: str, options: dict) -> bytes:
    params = {
        "paperWidth": options["page_width"] / CM_PER_INCH,
        "paperHeight": options["page_height"] / CM_PER_INCH,
        **{f"margin{side.title()}": options[f"margin_{side}"] / MM_PER_INCH for side in ("top", "bottom", "left", "right")},
        "printBackground": options["print_background"],
        "displayHeaderFooter": options["display_header_footer"],
        "scale": options["zoom"],
    }
    for option, param in (("header_template", "headerTemplate"), ("footer_template", "footerTemplate")):
        if options[option]:
            params[param] = options[option]
    if options["pages"]:
        params["pageRanges"] = options["pages"]
    try:
        return base64.b64decode(browser.call("Page.printToPDF", params, session)["data"])
    except ConversionFailed as error:
        if error.code == "TIMEOUT" or not options["pages"]:
            raise
        raise ConversionFailed(
            "INVALID_PAGE_RANGE", f"The page range {options['pages']} does not fit the captured page; check pages."
        ) from None


def capture(
    url: str, workdir: Path, *, output_format: str, options: dict, stem: str, headers: dict[str, str], timeout: float
) -> list[Path]:
    """workdir/<stem>.<output_format>: the page at url, once loaded as `options` say."""
    check_host(url)  # a refused address fails the task with import/url's sentence, before Chromium starts
    deadline = time.monotonic() + timeout
    image = output_format in ("png", "jpg")
    with scratch("capture") as profile:
        browser = Browser(str(profile), deadline, timeout, url=url, headers=headers)
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            browser.main_frame = target  # a page target's id is its main frame's id
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            browser.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
            browser.call("Page.enable", {}, session)
            browser.call("Page.setLifecycleEventsEnabled", {"enabled": True}, session)
            if image:
                browser.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": options["page_width"], "height": options["page_height"], "deviceScaleFactor": 1, "mobile": False},
                    session,
                )
            _load(browser, session, url, options)
            if image:
                # CSS zoom keeps the picture at the requested size in pixels (a device scale would not).
                browser.evaluate(f"document.documentElement.style.zoom = {float(options['zoom'])}", session)
                shot = {"format": "jpeg", "quality": options["quality"]} if output_format == "jpg" else {"format": "png"}
                content = base64.b64decode(browser.call("Page.captureScreenshot", shot, session)["data"])
            else:
                content = _print(browser, session, options)
        finally:
            browser.close()
    dest = workdir / f"{stem}.{output_format}"
    dest.write_bytes(content)
    return [dest]


def _conversion(output_format: str) -> Conversion:
    options = PDF_OPTIONS if output_format == "pdf" else IMAGE_OPTIONS
    if output_format == "jpg":
        options = (*options, QUALITY)
    return Conversion(
        operation="capture-website",
        input_format=INPUT_FORMAT,
        output_format=output_format,
        engine=ENGINE,
        engine_version=chromium_version(),
        group="website",
        options=options,
        # Called with the page's URL where other conversions take a file: run(url, workdir, ...).
        run=capture,
        is_installed=installed,
    )


CONVERSIONS = [_conversion(fmt) for fmt in ("pdf", "png", "jpg")]
