"""merge, archive, capture-website and import/url of the engine's own links, over real HTTP with a worker."""

from __future__ import annotations

import base64
import io
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pypdfium2 as pdfium
import pytest
import requests
from PIL import Image

from tests.conftest import wait_for
from tests.test_engine_helpers import Api, pdf_bytes, png_bytes, task_named

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_TEXT = "Hello from the captured page"
PAGE = f"""<!doctype html><html><head><title>Captured</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>{PAGE_TEXT}</h1><p id="late"></p>
<script>setTimeout(() => document.getElementById("late").textContent = "Written late", 200)</script>
</body></html>""".encode()


def imported(content: bytes, filename: str) -> dict:
    return {"operation": "import/base64", "file": base64.b64encode(content).decode(), "filename": filename}


def exported_files(api: Api, job: dict, name: str = "export") -> list[tuple[str, bytes]]:
    job = api.wait_job(job["id"])
    assert job["status"] == "finished", job
    return [
        (f["filename"], requests.get(f["url"], timeout=30).content)
        for f in task_named(job, name)["result"]["files"]
    ]


def close(colours: list[tuple[int, ...]], expected: list[tuple[int, ...]]) -> bool:
    """Colours equal but for JPEG rounding (images in PDFs are stored as JPEG)."""
    return len(colours) == len(expected) and all(
        abs(a - b) <= 6 for got, want in zip(colours, expected) for a, b in zip(got, want)
    )


def wait_task(api: Api, task_id: str) -> dict:
    return api.get(f"sync/v2/tasks/{task_id}").json()["data"]


def test_merge_puts_the_pages_of_pdfs_and_images_in_input_order_into_one_pdf(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "two": imported(pdf_bytes(2), "two.pdf"),  # white, yellow
            "one": imported(pdf_bytes(1), "one.pdf"),  # white
            "photo": imported(png_bytes((40, 30), "red"), "photo.png"),
            "merge": {"operation": "merge", "input": ["two", "one", "photo"], "output_format": "pdf"},
            "named": {"operation": "merge", "input": ["photo", "one"], "output_format": "pdf", "filename": "all.pdf"},
            "export": {"operation": "export/url", "input": ["merge", "named"]},
        }
    )

    (merged_name, merged), (named_name, named) = exported_files(api, job)

    assert (merged_name, named_name) == ("merged.pdf", "all.pdf")
    document = pdfium.PdfDocument(merged)
    assert len(document) == 4
    colours = [document[i].render(scale=0.2).to_pil().convert("RGB").getpixel((5, 5)) for i in range(4)]
    assert close(colours, [(255, 255, 255), (255, 255, 0), (255, 255, 255), (255, 0, 0)])
    assert document[3].get_size() == (40, 30)  # the image keeps its size: one point per pixel
    document.close()
    assert len(pdfium.PdfDocument(named)) == 2
    merge = task_named(api.job(job["id"]), "merge")
    assert (merge["engine"], merge["credits"]) == ("pdfium", 1)


def test_merge_refuses_a_file_it_cannot_make_a_pdf_of(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "pdf": imported(pdf_bytes(1), "one.pdf"),
            "blob": imported(b"\x00\x01", "data.xyz"),
            "merge": {"operation": "merge", "input": ["pdf", "blob"], "output_format": "pdf"},
        }
    )

    merge = task_named(api.wait_job(job["id"]), "merge")

    assert merge["status"] == "error"
    assert merge["code"] == "INVALID_CONVERSION_TYPE"
    assert "data.xyz cannot be merged" in merge["message"]


ARCHIVE_INPUTS = {
    "first": {"operation": "import/raw", "file": "first notes", "filename": "notes.txt"},
    "second": {"operation": "import/raw", "file": "second notes", "filename": "notes.txt"},
    "photo": imported(png_bytes(), "photo.png"),
}
ARCHIVED = {"notes.txt": b"first notes", "notes-2.txt": b"second notes", "photo.png": png_bytes()}


def test_archive_zips_every_input_file_under_a_unique_name(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            **ARCHIVE_INPUTS,
            "archive": {
                "operation": "archive",
                "input": ["first", "second", "photo"],
                "output_format": "zip",
                "filename": "bundle.zip",
            },
            "export": {"operation": "export/url", "input": "archive"},
        }
    )

    ((filename, content),) = exported_files(api, job)

    assert filename == "bundle.zip"
    zipped = zipfile.ZipFile(io.BytesIO(content))
    assert zipped.namelist() == list(ARCHIVED)
    assert {name: zipped.read(name) for name in zipped.namelist()} == ARCHIVED


@pytest.mark.parametrize("output_format", ["tar", "tar.gz", "tar.bz2"])
def test_archive_writes_tar_files_compressed_or_not(live_engine: str, worker, output_format: str) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            **ARCHIVE_INPUTS,
            "archive": {"operation": "archive", "input": ["first", "second", "photo"], "output_format": output_format},
            "export": {"operation": "export/url", "input": "archive"},
        }
    )

    ((filename, content),) = exported_files(api, job)

    assert filename == f"archive.{output_format}"
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        assert tar.getnames() == list(ARCHIVED)
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == ARCHIVED


@pytest.fixture
def site() -> Iterator[str]:
    """A small website on 127.0.0.1: / (a page with a stylesheet, a late script, and a line for
    visitors sending X-Token: letmein), /moved
    (redirects to /), /missing (404) and /slow (never answers in time)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/slow":
                time.sleep(15)
            page = PAGE + (b"<p>Token accepted</p>" if self.headers.get("X-Token") == "letmein" else b"")
            body, content_type, status = {
                "/": (page, "text/html; charset=utf-8", 200),
                "/style.css": (b"body { background: rgb(0, 0, 255); color: white }", "text/css", 200),
            }.get(self.path, (b"<h1>Not here</h1>", "text/html", 404))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_capture_website_prints_a_page_to_pdf(live_engine: str, worker, site: str, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    job = api.create_job(
        {
            "capture": {
                "operation": "capture-website",
                "url": f"{site}/moved",
                "output_format": "pdf",
                "wait_for_element": "#late:not(:empty)",
                "page_width": 10,
                "page_height": 10,
                "headers": {"X-Token": "letmein"},
                "fancy_unknown_option": True,
            },
            "export": {"operation": "export/url", "input": "capture"},
        }
    )

    ((filename, content),) = exported_files(api, job)

    document = pdfium.PdfDocument(content)
    assert len(document) >= 1
    text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    assert PAGE_TEXT in text.replace("\r", "").replace("\n", " ")
    assert "Written late" in text
    assert "Token accepted" in text  # the user's headers went to the site
    width, height = document[0].get_size()
    assert (round(width / 72 * 2.54), round(height / 72 * 2.54)) == (10, 10)  # cm
    # The stylesheet came through the engine's fetch: the background is printed blue.
    assert close([document[0].render(scale=0.5).to_pil().convert("RGB").getpixel((2, 2))], [(0, 0, 255)])
    assert filename.endswith(".pdf")
    capture = task_named(api.job(job["id"]), "capture")
    assert capture["engine"] == "chrome" and capture["engine_version"]


def test_capture_website_takes_a_screenshot_of_the_requested_size(
    live_engine: str, worker, site: str, settings
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    created = api.post(
        "v2/capture-website",
        {"url": f"{site}/", "output_format": "png", "page_width": 640, "page_height": 480, "filename": "shot.png"},
    )
    assert created.status_code == 201, created.text

    task = wait_task(api, created.json()["data"]["id"])

    assert task["status"] == "finished", task
    export = wait_task(api, api.post("v2/export/url", {"input": task["id"]}).json()["data"]["id"])
    (file,) = export["result"]["files"]
    image = Image.open(io.BytesIO(requests.get(file["url"], timeout=30).content))
    assert (file["filename"], image.format, image.size) == ("shot.png", "PNG", (640, 480))
    assert image.convert("RGB").getpixel((600, 400)) == (0, 0, 255)


def test_capture_website_refuses_local_addresses_by_default(live_engine: str, worker, site: str) -> None:
    api = Api(live_engine)
    task = api.post("v2/capture-website", {"url": f"{site}/", "output_format": "jpg"}).json()["data"]

    task = wait_task(api, task["id"])

    assert (task["status"], task["code"]) == ("error", "IMPORT_FAILED")
    assert "private or local address" in task["message"]


def test_capture_website_reports_a_missing_page(live_engine: str, worker, site: str, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    task = api.post("v2/capture-website", {"url": f"{site}/missing", "output_format": "pdf"}).json()["data"]

    task = wait_task(api, task["id"])

    assert (task["status"], task["code"]) == ("error", "CAPTURE_FAILED")
    assert "HTTP 404" in task["message"]


def _capture_processes() -> list[int]:
    """Chromium processes started by a capture (their profile folder names them)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and b"ccweb-capture-" in cmdline:
            found.append(int(entry.name))
    return found


def test_capture_website_past_its_timeout_stops_chromium(live_engine: str, worker, site: str, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    task = api.post(
        "v2/capture-website", {"url": f"{site}/slow", "output_format": "pdf", "timeout": 2}
    ).json()["data"]
    wait_for(_capture_processes, timeout=20)

    task = wait_task(api, task["id"])

    assert (task["status"], task["code"]) == ("error", "TIMEOUT")
    assert "2 seconds" in task["message"]
    assert _capture_processes() == []


def test_new_operations_are_validated_per_field(live_engine: str) -> None:
    api = Api(live_engine)
    response = api.post(
        "v2/jobs",
        {
            "tasks": {
                "up": {"operation": "import/upload"},
                "merge": {"operation": "merge", "output_format": "docx"},
                "archive": {"operation": "archive", "input": "up", "output_format": "rar"},
                "bare": {"operation": "archive", "input": ["up"]},
                "capture": {"operation": "capture-website", "url": "not a url", "output_format": "pdf", "zoom": "big"},
                "shot": {"operation": "capture-website", "url": "https://example.com/", "output_format": "gif"},
            }
        },
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "INVALID_DATA"
    assert set(body["errors"]) == {
        "tasks.merge.input",
        "tasks.merge.output_format",
        "tasks.archive.output_format",
        "tasks.bare.output_format",
        "tasks.capture.url",
        "tasks.capture.zoom",
        "tasks.shot.output_format",
    }
    assert "choose zip, tar, tar.gz, tar.bz2" in body["errors"]["tasks.archive.output_format"][0]
    assert "choose pdf, png, jpg" in body["errors"]["tasks.shot.output_format"][0]
    refused = api.post("v2/capture-website", {"output_format": "png", "page_width": 5})
    assert set(refused.json()["errors"]) == {"url", "page_width"}


def test_the_operations_catalogue_lists_merge_archive_and_capture(live_engine: str) -> None:
    def listed(operation: str) -> set[tuple[str | None, str]]:
        items = requests.get(
            f"{live_engine}/v2/operations", params={"filter[operation]": operation}, timeout=30
        ).json()["data"]
        return {(item.get("input_format"), item["output_format"]) for item in items}

    assert listed("merge") == {(None, "pdf")}
    assert listed("archive") == {(None, fmt) for fmt in ("zip", "tar", "tar.gz", "tar.bz2")}
    assert listed("capture-website") == {("website", fmt) for fmt in ("pdf", "png", "jpg")}


def _first_export_url(api: Api, content: str, filename: str) -> str:
    job = api.create_job(
        {
            "raw": {"operation": "import/raw", "file": content, "filename": filename},
            "export": {"operation": "export/url", "input": "raw"},
        }
    )
    return task_named(api.wait_job(job["id"]), "export")["result"]["files"][0]["url"]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = "&".join(
        f"{key}={changes.pop(key)}" if key in changes else f"{key}={value}"
        for key, value in (pair.split("=", 1) for pair in parts.query.split("&"))
    )
    return urlunsplit(parts._replace(query=query))


def test_url_import_copies_the_engines_own_exports_even_when_private_addresses_are_refused(
    live_engine: str, worker, settings
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    api = Api(live_engine)
    url = _first_export_url(api, "the original", "original.txt")
    assert urlsplit(url).hostname in ("localhost", "127.0.0.1")  # where import/url may not go

    job = api.create_job(
        {
            "again": {"operation": "import/url", "url": url},
            "renamed": {"operation": "import/url", "url": url, "filename": "copy.txt"},
            "export": {"operation": "export/url", "input": ["again", "renamed"]},
        }
    )

    assert exported_files(api, job) == [("original.txt", b"the original"), ("copy.txt", b"the original")]


def test_url_import_of_a_forged_or_expired_engine_link_fails_with_a_sentence(
    live_engine: str, worker, settings
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    api = Api(live_engine)
    url = _first_export_url(api, "secret", "secret.txt")
    forged = _with_query(url, signature="0" * 64)
    settings.ENGINE_URL_EXPIRY = -60
    expired = _first_export_url(api, "old", "old.txt")
    settings.ENGINE_URL_EXPIRY = 3600
    other_host = url.replace("//localhost:", "//127.0.0.1:") if "//localhost:" in url else url.replace(
        "//127.0.0.1:", "//localhost:"
    )

    tasks = [api.post("v2/import/url", {"url": u}).json()["data"] for u in (forged, expired, other_host)]
    forged_task, expired_task, other_task = (wait_task(api, t["id"]) for t in tasks)

    for task in (forged_task, expired_task):
        assert (task["status"], task["code"]) == ("error", "INVALID_SIGNATURE")
        assert "invalid or has expired" in task["message"]
    # Only the engine's exact address counts as its own; any other goes through the address check.
    assert "private or local address" in other_task["message"]


def test_metadata_describes_the_input_as_scalars(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "in": imported(pdf_bytes(3), "report.pdf"),
            "meta": {"operation": "metadata", "input": "in"},
        }
    )
    job = api.wait_job(job["id"])
    assert job["status"] == "finished", job
    metadata = task_named(job, "meta")["result"]["metadata"]
    assert metadata["PageCount"] == "3"
    assert all(isinstance(value, str) for value in metadata.values())


def test_metadata_of_a_damaged_file_fails_in_words(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "in": imported(b"not an image at all", "photo.png"),
            "meta": {"operation": "metadata", "input": "in"},
        }
    )
    job = api.wait_job(job["id"])
    meta = task_named(job, "meta")
    assert (job["status"], meta["status"]) == ("error", "error")
    assert meta["message"] and "Traceback" not in meta["message"]


def test_the_operations_list_names_metadata(live_engine: str) -> None:
    listed = requests.get(f"{live_engine}/v2/operations", timeout=30).json()["data"]
    assert {"operation": "metadata", "credits": 0, "meta": {"group": "metadata"}} in listed
