"""The engine's API under hostile or careless input: every answer is the JSON error envelope
(PROTOCOL.md §7, §10 item 10), never a 500, and the same on SQLite and PostgreSQL.

Figures for README's RELIABILITY section: 28 hostile requests (NUL characters or unpaired
surrogates in 14 body fields, 4 list filters and a task name; 4 bodies past Django's 2.5 MB form
limit and one past ENGINE_MAX_REQUEST_BODY; 1001 query parameters; a page number past 64 bits;
JSON nested 100 000 deep; unhashable webhook events) answered 500 before: 11 on SQLite (which
stored 12 of the others, NULs included) and 27 on PostgreSQL. Now none: 21 × 422 naming the field, 1 × 413, 1 × 400,
an empty page, and the 4 big bodies accepted; an upload form with a 3 MB field gets 413 in words
rather than 400 with Django's wording.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.conf import settings
from django.test import Client

from engine.models import File, Job, Task, Webhook
from tests.test_engine_helpers import Api, png_bytes, task_named

MIB = 1024 * 1024


@pytest.fixture
def api(client: Client) -> Client:
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {settings.ENGINE_API_KEY}"
    return client


def post(api: Client, path: str, body: dict | str) -> object:
    data = body if isinstance(body, str) else json.dumps(body)
    return api.post(f"/engine/{path}", data=data, content_type="application/json")


def base64_of(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def assert_error(response: object, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert body["message"].endswith(".") and " " in body["message"]  # a sentence, not a class name
    return body


# --- Big bodies ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_imports_a_base64_file_larger_than_djangos_form_limit(live_engine: str, worker) -> None:
    content = os.urandom(3 * MIB)  # 4 MB of base64: Django's request.body refuses past 2.5 MB
    api = Api(live_engine)
    job = api.create_job(
        {
            "in": {"operation": "import/base64", "file": base64.b64encode(content).decode(), "filename": "big.bin"},
            "out": {"operation": "export/url", "input": "in"},
        }
    )

    job = api.wait_job(job["id"])

    assert job["status"] == "finished", job
    (file,) = task_named(job, "out")["result"]["files"]
    assert requests.get(file["url"], timeout=60).content == content


BIG_BODIES = {
    "v2/jobs": {"tasks": {"in": {"operation": "import/base64", "filename": "a.bin"}}},
    "sync/v2/jobs": {"tasks": {"in": {"operation": "import/base64", "filename": "a.bin"}}},
    "v2/import/base64": {"filename": "a.bin"},
    "v2/webhooks": {"url": "https://example.com/hook", "events": ["job.finished"]},
}


def _with_file(path: str, body: dict, size: int) -> dict:
    """body carrying `size` random bytes as base64, where each endpoint keeps (or ignores) it."""
    if path.endswith("jobs"):
        return {"tasks": {"in": {**body["tasks"]["in"], "file": base64_of(size)}}}
    if path == "v2/import/base64":
        return {**body, "file": base64_of(size)}
    return {**body, "note": base64_of(size)}  # an extra key, ignored like the SDKs' extras


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", BIG_BODIES)
def test_it_refuses_a_body_over_the_engines_limit_with_413_in_words(live_engine: str, settings, path: str) -> None:
    settings.ENGINE_MAX_REQUEST_BODY = MIB
    response = Api(live_engine).post(path, _with_file(path, BIG_BODIES[path], 2 * MIB))

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "REQUEST_TOO_LARGE"
    assert f"({MIB} bytes)" in body["message"] and "import/upload" in body["message"]
    assert not Job.objects.exists() and not Task.objects.exists() and not Webhook.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", BIG_BODIES)
def test_it_reads_bodies_past_djangos_form_limit_on_every_json_entry_point(
    live_engine: str, worker, path: str
) -> None:
    response = Api(live_engine).post(path, _with_file(path, BIG_BODIES[path], 3 * MIB))

    assert response.status_code == 201, response.text[:500]
    assert response.json()["data"]["id"]


@pytest.mark.django_db
def test_it_refuses_a_declared_length_over_the_limit_before_reading(api: Client, settings) -> None:
    settings.ENGINE_MAX_REQUEST_BODY = 100
    response = api.post(
        "/engine/v2/jobs", data=b"{}", content_type="application/json", CONTENT_LENGTH=str(10**12)
    )
    assert_error(response, 413, "REQUEST_TOO_LARGE")


@pytest.mark.django_db(transaction=True)
def test_it_refuses_oversized_upload_form_fields_in_words(live_engine: str) -> None:
    task = Api(live_engine).post("v2/import/upload").json()["data"]
    form = task["result"]["form"]

    response = requests.post(
        form["url"],
        data={**form["parameters"], "padding": "x" * (3 * MIB)},
        files={"file": ("a.png", png_bytes())},
        timeout=60,
    )

    assert response.status_code == 413
    assert response.json()["code"] == "FIELDS_TOO_LARGE"
    assert "send the form's parameters" in response.json()["message"]
    assert not File.objects.exists()


# --- NUL characters --------------------------------------------------------------------------

UPLOAD = {"operation": "import/upload"}
NUL_JOBS = {
    "tag": ({"tasks": {"in": UPLOAD}, "tag": "order\x0042"}, "tag"),
    "webhook_url": ({"tasks": {"in": UPLOAD}, "webhook_url": "https://example.com/\x00"}, "webhook_url"),
    "header value": (
        {"tasks": {"in": {"operation": "import/url", "url": "https://example.com/a.pdf", "headers": {"X-A": "b\x00"}}}},
        "tasks.in.headers",
    ),
    "header name": (
        {"tasks": {"in": {"operation": "import/url", "url": "https://example.com/a.pdf", "headers": {"X\x00": "b"}}}},
        "tasks.in.headers",
    ),
    "url": ({"tasks": {"in": {"operation": "import/url", "url": "https://example.com/\x00.pdf"}}}, "tasks.in.url"),
    "filename": (
        {"tasks": {"in": {"operation": "import/raw", "file": "text", "filename": "notes\x00.txt"}}},
        "tasks.in.filename",
    ),
    "raw file": (
        {"tasks": {"in": {"operation": "import/raw", "file": "te\x00xt", "filename": "notes.txt"}}},
        "tasks.in.file",
    ),
    "unknown key": ({"tasks": {"in": {**UPLOAD, "note": ["fine", {"deep": "\x00"}]}}}, "tasks.in.note"),
    "key itself": ({"tasks": {"in": {**UPLOAD, "no\x00te": 1}}}, "tasks.in.no\\u0000te"),
    # JSON may carry a lone surrogate ("\ud800"), which no database driver can encode either.
    "surrogate in the tag": ({"tasks": {"in": UPLOAD}, "tag": "order\ud80042"}, "tag"),
    "surrogate in a text file": (
        {"tasks": {"in": {"operation": "import/raw", "file": "\udfff", "filename": "a.txt"}}},
        "tasks.in.file",
    ),
}
UNSTORABLE = "must not contain NUL characters (\\u0000) or unpaired surrogates (\\ud800)."


@pytest.mark.django_db
@pytest.mark.parametrize("case", NUL_JOBS)
def test_it_refuses_nul_characters_in_a_job_with_422_naming_the_field(api: Client, case: str) -> None:
    body, field = NUL_JOBS[case]

    for path in ("v2/jobs", "sync/v2/jobs"):
        errors = assert_error(post(api, path, body), 422, "INVALID_DATA")["errors"]
        assert list(errors) == [field]
        assert errors[field][0].endswith(UNSTORABLE)
    assert not Job.objects.exists() and not Task.objects.exists()


@pytest.mark.django_db
def test_it_refuses_nul_characters_in_a_standalone_task(api: Client) -> None:
    body = {"url": "https://example.com/a.pdf", "headers": {"Cookie": "a=\x00"}}

    errors = assert_error(post(api, "v2/import/url", body), 422, "INVALID_DATA")["errors"]

    assert errors == {"headers": [f"The headers {UNSTORABLE}"]}
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_it_names_a_task_whose_name_is_not_even_valid_text(api: Client) -> None:
    response = post(api, "v2/jobs", {"tasks": {"in\ud800": UPLOAD}})

    errors = assert_error(response, 422, "INVALID_DATA")["errors"]

    assert list(errors) == ["tasks.in\ud800"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_it_refuses_header_values_that_would_start_another_header(api: Client) -> None:
    body = {"url": "https://example.com/a.pdf", "headers": {"X-A": "b\r\nHost: internal"}}

    errors = assert_error(post(api, "v2/import/url", body), 422, "INVALID_DATA")["errors"]

    assert list(errors) == ["headers"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "https://example.com/\x00", "events": ["job.finished"]}, "must not contain NUL characters"),
        ({"url": "https://example.com/hook", "events": [{"not": "hashable"}]}, "The events must be a list of"),
    ],
)
def test_it_refuses_a_hostile_webhook_with_422(api: Client, body: dict, message: str) -> None:
    errors = assert_error(post(api, "v2/webhooks", body), 422, "INVALID_DATA")["errors"]

    assert message in next(iter(errors.values()))[0]
    assert not Webhook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("v2/jobs", "filter[tag]"),
        ("v2/jobs", "filter[status]"),
        ("v2/tasks", "filter[operation]"),
        ("v2/users/me/webhooks", "filter[url]"),
    ],
)
def test_it_refuses_a_nul_character_in_a_list_filter(api: Client, path: str, name: str) -> None:
    response = api.get(f"/engine/{path}", {name: "a\x00"})

    assert assert_error(response, 422, "INVALID_DATA")["errors"] == {name: [f"The {name} {UNSTORABLE}"]}


@pytest.mark.django_db(transaction=True)
def test_an_upload_named_with_a_nul_character_is_stored_under_a_clean_name(live_engine: str) -> None:
    task = Api(live_engine).post("v2/import/upload").json()["data"]
    form = task["result"]["form"]
    boundary = "hostile-boundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in form["parameters"].items()
    )
    parts += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="pho\x00to.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png_bytes() + f"\r\n--{boundary}--\r\n".encode()

    response = requests.post(
        form["url"], data=parts, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=60
    )

    assert response.status_code == 201, response.text
    assert response.json()["data"]["result"]["files"][0]["filename"] == "photo.png"


@pytest.fixture
def nul_named_file() -> Iterator[str]:
    """A local server whose file's Content-Disposition names it with an encoded NUL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = png_bytes()
            self.send_response(200)
            self.send_header("Content-Disposition", "attachment; filename=\"re%00port.png\"")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/download"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True)
def test_a_downloaded_file_named_with_a_nul_character_is_stored_under_a_clean_name(
    live_engine: str, worker, settings, nul_named_file: str
) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True
    api = Api(live_engine)
    task = api.post("v2/import/url", {"url": nul_named_file}).json()["data"]

    task = api.get(f"sync/v2/tasks/{task['id']}").json()["data"]

    assert task["status"] == "finished", task
    assert task["result"]["files"][0]["filename"] == "report.png"


# --- Malformed requests ----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_json_nested_deeper_than_it_can_read_with_422(api: Client) -> None:
    body = '{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}"

    errors = assert_error(post(api, "v2/jobs", body), 422, "INVALID_DATA")["errors"]

    assert errors == {"body": ["The request body nests arrays or objects too deeply to be read."]}


@pytest.mark.django_db
def test_it_refuses_more_query_parameters_than_django_reads_with_400(api: Client) -> None:
    query = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    assert_error(api.get(f"/engine/v2/jobs?{query}"), 400, "BAD_REQUEST")


@pytest.mark.django_db
def test_a_page_number_past_what_a_database_counts_is_an_empty_page(api: Client) -> None:
    post(api, "v2/jobs", {"tasks": {"in": UPLOAD}})

    response = api.get("/engine/v2/jobs", {"page": "9" * 30})

    assert response.status_code == 200
    assert response.json()["data"] == []
