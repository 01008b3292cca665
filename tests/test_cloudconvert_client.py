"""The API client against a scripted HTTP server that answers with CloudConvert's recorded shapes.

CloudConvert itself cannot be reached from tests, so a real server on 127.0.0.1 plays it: the
client's real requests.Session, timeouts, retries and multipart encoding are exercised over a real
socket, and the server records what it received.
"""

import email.parser
import io
import socket
import time

import pytest
import requests

from conversions.cloudconvert.client import ApiConfig, Client, api_config, get_client
from conversions.cloudconvert.errors import (
    ApiError,
    InvalidData,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from tests.stub_api import Reply, ScriptedApi, Seen, api, reply_json  # noqa: F401  (api is a fixture)

JOB_ID = "c677ccf7-8876-4f48-bb96-0ab8e0d88cd7"
TASK_ID = "22b3d686-126b-4fe2-8238-a9781cd023d9"


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_config(base: str) -> ApiConfig:
    return ApiConfig(
        api_url=f"{base}/v2",
        sync_api_url=f"{base}/sync/v2",
        api_key="test-key",
        webhook_secret="test-secret",
        is_engine=False,
    )


@pytest.fixture
def client(api, sleeps) -> Client:
    return Client(make_config(api.url), timeout=5, max_retries=3, sleep=sleeps.append)


def task(name: str, operation: str, status: str = "waiting", result: dict | None = None) -> dict:
    return {
        "id": TASK_ID, "name": name, "job_id": JOB_ID, "status": status, "credits": None,
        "code": None, "message": None, "percent": 100, "operation": operation, "result": result,
        "created_at": "2024-01-01T10:00:00+00:00", "started_at": None, "ended_at": None,
        "retry_of_task_id": None, "copy_of_task_id": None, "depends_on_task_ids": [],
        "links": {"self": f"https://api.cloudconvert.com/v2/tasks/{TASK_ID}"},
    }


def job(status: str = "waiting") -> dict:
    form = {"url": "https://storage.cloudconvert.com/tasks", "parameters": {"acl": "private"}}
    return {
        "id": JOB_ID, "tag": "order-42", "status": status,
        "created_at": "2024-01-01T10:00:00+00:00", "started_at": None, "ended_at": None,
        "tasks": [task("upload", "import/upload", result={"form": form})],
        "links": {"self": f"https://api.cloudconvert.com/v2/jobs/{JOB_ID}"},
    }


TASKS = {
    "upload": {"operation": "import/upload"},
    "to-pdf": {"operation": "convert", "input": "upload", "output_format": "pdf"},
    "out": {"operation": "export/url", "input": "to-pdf"},
}
UNAUTHENTICATED = {"message": "Unauthenticated.", "code": "UNAUTHENTICATED"}


# --- Calls and their shapes ----------------------------------------------------------------------


def test_it_creates_a_job_and_returns_the_unwrapped_job(api, client):
    api.script(reply_json(201, {"data": job()}))

    created = client.create_job(tasks=TASKS, tag="order-42", webhook_url="https://ccweb.example/hook")

    assert created["id"] == JOB_ID
    assert created["tasks"][0]["result"]["form"]["url"] == "https://storage.cloudconvert.com/tasks"
    [seen] = api.seen
    assert (seen.method, seen.path) == ("POST", "/v2/jobs")
    assert seen.headers["Authorization"] == "Bearer test-key"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {"tasks": TASKS, "tag": "order-42", "webhook_url": "https://ccweb.example/hook"}


def test_it_leaves_out_an_unset_tag_and_webhook_url(api, client):
    api.script(reply_json(201, {"data": job()}))
    client.create_job(tasks=TASKS)
    assert api.seen[0].json == {"tasks": TASKS}


def test_it_shows_a_job(api, client):
    api.script(reply_json(200, {"data": job("processing")}))
    assert client.show_job(JOB_ID)["status"] == "processing"
    assert (api.seen[0].method, api.seen[0].path) == ("GET", f"/v2/jobs/{JOB_ID}")


def test_it_waits_for_a_job_on_the_sync_host(api, client):
    api.script(reply_json(200, {"data": job("finished")}))
    assert client.wait_job(JOB_ID)["status"] == "finished"
    assert api.seen[0].path == f"/sync/v2/jobs/{JOB_ID}"
    assert api.seen[0].headers["Authorization"] == "Bearer test-key"


def test_it_keeps_an_id_inside_one_path_segment(api, client):
    api.script(reply_json(404, {"message": "Not found.", "code": "NOT_FOUND"}))
    with pytest.raises(NotFound):
        client.show_job("../users/me")
    assert api.seen[0].path == "/v2/jobs/..%2Fusers%2Fme"


def test_it_lists_jobs_with_bracket_filters(api, client):
    page = {
        "data": [{**job("finished"), "tasks": None}],
        "links": {"first": f"{api.url}/v2/jobs?page=1", "last": None, "prev": None, "next": None},
        "meta": {"current_page": 1, "from": 1, "path": f"{api.url}/v2/jobs", "per_page": 50, "to": 1},
    }
    api.script(reply_json(200, page))

    listed = client.list_jobs(status="finished", tag="order-42", include_tasks=True, page=2, per_page=50)

    assert listed == page
    [seen] = api.seen
    assert "filter%5Bstatus%5D=finished" in seen.raw_query
    assert seen.query == {
        "filter[status]": "finished", "filter[tag]": "order-42", "include": "tasks",
        "page": "2", "per_page": "50",
    }


def test_it_deletes_a_job(api, client):
    api.script(Reply(204))
    assert client.delete_job(JOB_ID) is None
    assert (api.seen[0].method, api.seen[0].path) == ("DELETE", f"/v2/jobs/{JOB_ID}")


def test_it_shows_a_task(api, client):
    api.script(reply_json(200, {"data": task("upload", "import/upload")}))
    assert client.show_task(TASK_ID)["operation"] == "import/upload"
    assert api.seen[0].path == f"/v2/tasks/{TASK_ID}"


def test_it_cancels_a_task(api, client):
    cancelled = {**task("upload", "import/upload", status="error"), "code": "CANCELLED"}
    api.script(reply_json(200, {"data": cancelled}))
    assert client.cancel_task(TASK_ID)["code"] == "CANCELLED"
    assert (api.seen[0].method, api.seen[0].path, api.seen[0].json) == (
        "POST", f"/v2/tasks/{TASK_ID}/cancel", {},
    )


def test_it_retries_a_task(api, client):
    new = {**task("upload", "import/upload"), "id": "new-task", "retry_of_task_id": TASK_ID}
    api.script(reply_json(201, {"data": new}))
    assert client.retry_task(TASK_ID)["retry_of_task_id"] == TASK_ID
    assert (api.seen[0].method, api.seen[0].path) == ("POST", f"/v2/tasks/{TASK_ID}/retry")


def test_it_lists_formats_with_filters(api, client):
    item = {"operation": "convert", "input_format": "png", "output_format": "jpg", "engine": "imagemagick",
            "credits": 1, "meta": {"group": "image"}, "options": []}
    api.script(reply_json(200, {"data": [item]}))

    assert client.list_formats(input_format="png", output_format="jpg", include_options=True) == [item]
    assert api.seen[0].path == "/v2/convert/formats"
    assert api.seen[0].query == {
        "filter[input_format]": "png", "filter[output_format]": "jpg", "include": "options",
    }


def test_it_returns_the_current_user(api, client):
    user = {"id": 37116784, "username": "alice", "email": "alice@example.com", "credits": 1000,
            "created_at": "2019-05-28T18:22:10+00:00", "links": {"self": "https://api/v2/users/37116784"}}
    api.script(reply_json(200, {"data": user}))
    assert client.me()["credits"] == 1000
    assert api.seen[0].path == "/v2/users/me"


# --- Errors --------------------------------------------------------------------------------------


def test_it_raises_unauthenticated_on_a_401(api, client, sleeps):
    api.script(reply_json(401, UNAUTHENTICATED))
    with pytest.raises(Unauthenticated) as caught:
        client.me()
    error = caught.value
    assert (error.status, error.code, error.retryable) == (401, "UNAUTHENTICATED", False)
    assert "API key" in str(error)
    assert len(api.seen) == 1 and sleeps == []


def test_it_raises_unauthenticated_on_a_403(api, client):
    api.script(reply_json(403, {"message": "Invalid scope(s) provided.", "code": "FORBIDDEN"}))
    with pytest.raises(Unauthenticated):
        client.list_jobs()


def test_it_raises_invalid_data_with_the_field_errors_of_a_422(api, client):
    api.script(reply_json(422, {
        "message": "The given data was invalid.", "code": "INVALID_DATA",
        "errors": {"tasks": ["The tasks field is required."]},
    }))
    with pytest.raises(InvalidData) as caught:
        client.create_job(tasks={})
    error = caught.value
    assert (error.status, error.code, error.retryable) == (422, "INVALID_DATA", False)
    assert error.errors == {"tasks": ["The tasks field is required."]}
    assert "tasks: The tasks field is required." in error.message
    assert error.api_message == "The given data was invalid."


def test_it_raises_invalid_data_on_a_400(api, client):
    api.script(reply_json(400, {"message": "Cannot change status.", "code": "INVALID_DATA",
                                "errors": {"status": ["Cannot change status: task already completed."]}}))
    with pytest.raises(InvalidData) as caught:
        client.cancel_task(TASK_ID)
    assert caught.value.errors["status"] == ["Cannot change status: task already completed."]


def test_it_raises_not_found_on_a_404(api, client):
    api.script(reply_json(404, {"message": "Job not found.", "code": "NOT_FOUND"}))
    with pytest.raises(NotFound) as caught:
        client.show_job(JOB_ID)
    assert (caught.value.status, caught.value.retryable) == (404, False)


def test_it_raises_a_plain_api_error_with_the_services_words_for_other_statuses(api, client):
    api.script(reply_json(402, {"message": "Your account has run out of conversion minutes",
                                "code": "CREDITS_EXCEEDED"}))
    with pytest.raises(ApiError) as caught:
        client.create_job(tasks=TASKS)
    error = caught.value
    assert type(error) is ApiError
    assert (error.status, error.code, error.retryable) == (402, "CREDITS_EXCEEDED", False)
    assert "run out of conversion minutes" in error.message


def test_it_makes_a_clear_error_from_a_non_json_body(api, sleeps):
    client = Client(make_config(api.url), max_retries=0, sleep=sleeps.append)
    api.script(Reply(502, b"<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"}))
    with pytest.raises(Unavailable) as caught:
        client.show_job(JOB_ID)
    error = caught.value
    assert (error.status, error.code, error.retryable) == (502, None, True)
    assert error.message.endswith(".") and "<html>" not in error.message


def test_it_refuses_a_success_that_is_not_json(api, client):
    api.script(Reply(200, b"<html>maintenance</html>", {"Content-Type": "text/html"}))
    with pytest.raises(ApiError, match="does not understand"):
        client.show_job(JOB_ID)


# --- Retries -------------------------------------------------------------------------------------


def test_it_retries_a_429_honouring_retry_after(api, client, sleeps):
    api.script(reply_json(429, {"message": "Too Many Attempts."}, {"Retry-After": "3"}),
               reply_json(201, {"data": job()}))

    assert client.create_job(tasks=TASKS)["id"] == JOB_ID

    assert sleeps == [3.0]
    assert [seen.path for seen in api.seen] == ["/v2/jobs", "/v2/jobs"]
    assert api.seen[1].json == api.seen[0].json


def test_it_backs_off_exponentially_on_a_429_without_retry_after(api, client, sleeps):
    api.script(Reply(429), Reply(429), reply_json(201, {"data": job()}))
    client.create_job(tasks=TASKS)
    assert sleeps == [0.5, 1.0]


def test_it_reads_retry_after_as_an_http_date(api, client, sleeps):
    api.script(Reply(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
               reply_json(201, {"data": job()}))
    client.create_job(tasks=TASKS)
    assert sleeps == [0.0]


def test_it_raises_rate_limited_when_429s_outlast_the_retries(api, client, sleeps):
    api.script(*[Reply(429, headers={"Retry-After": "2"})] * 4)
    with pytest.raises(RateLimited) as caught:
        client.create_job(tasks=TASKS)
    assert (caught.value.retry_after, caught.value.retryable, caught.value.status) == (2.0, True, 429)
    assert sleeps == [2.0, 2.0, 2.0]
    assert len(api.seen) == 4


def test_it_does_not_sleep_through_a_long_retry_after(api, client, sleeps):
    api.script(Reply(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as caught:
        client.create_job(tasks=TASKS)
    assert caught.value.retry_after == 3600.0
    assert sleeps == [] and len(api.seen) == 1


def test_a_503_asking_for_a_long_wait_carries_it_to_the_caller(api, client, sleeps):
    api.script(Reply(503, headers={"Retry-After": "300"}))
    with pytest.raises(Unavailable) as caught:
        client.show_job(JOB_ID)
    assert caught.value.retry_after == 300.0
    assert sleeps == [] and len(api.seen) == 1


def test_it_retries_a_503_twice_then_succeeds(api, client, sleeps):
    api.script(Reply(503), Reply(503), reply_json(200, {"data": job("finished")}))
    assert client.show_job(JOB_ID)["status"] == "finished"
    assert sleeps == [0.5, 1.0]
    assert len(api.seen) == 3


def test_it_honours_retry_after_on_a_503(api, client, sleeps):
    api.script(Reply(503, headers={"Retry-After": "5"}), Reply(204))
    client.delete_job(JOB_ID)
    assert sleeps == [5.0]


def test_it_raises_unavailable_when_5xx_outlast_the_retries(api, client, sleeps):
    api.script(*[Reply(504)] * 4)
    with pytest.raises(Unavailable) as caught:
        client.show_job(JOB_ID)
    assert (caught.value.status, caught.value.retryable) == (504, True)
    assert sleeps == [0.5, 1.0, 2.0] and len(api.seen) == 4


def test_it_does_not_retry_a_503_on_job_creation(api, client, sleeps):
    """The job may have been created before the gateway failed: a second POST could duplicate it."""
    api.script(Reply(503), reply_json(201, {"data": job()}))
    with pytest.raises(Unavailable):
        client.create_job(tasks=TASKS)
    assert len(api.seen) == 1 and sleeps == []


def test_it_does_not_retry_a_500(api, client, sleeps):
    api.script(reply_json(500, {"message": "Server Error"}))
    with pytest.raises(Unavailable):
        client.show_job(JOB_ID)
    assert len(api.seen) == 1 and sleeps == []


def test_it_retries_a_dropped_connection_on_a_read(api, client, sleeps):
    api.script(Reply(drop=True), reply_json(200, {"data": job()}))
    assert client.show_job(JOB_ID)["id"] == JOB_ID
    assert len(api.seen) == 2 and sleeps == [0.5]


def test_it_does_not_retry_a_dropped_connection_on_job_creation(api, client, sleeps):
    api.script(Reply(drop=True), reply_json(201, {"data": job()}))
    with pytest.raises(Unavailable) as caught:
        client.create_job(tasks=TASKS)
    assert (caught.value.status, caught.value.retryable) == (None, True)
    assert len(api.seen) == 1 and sleeps == []


class FirstConnectTimesOut(requests.Session):
    """Connecting fails once before anything is sent, as when a SYN is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def request(self, method, url, **kwargs):
        if not self.failed:
            self.failed = True
            raise requests.ConnectTimeout("connect timed out")
        return super().request(method, url, **kwargs)


def test_it_retries_job_creation_when_connecting_timed_out(api, sleeps):
    """Nothing reached the server, so repeating the POST cannot create a second job."""
    client = Client(make_config(api.url), session=FirstConnectTimesOut(), max_retries=3, sleep=sleeps.append)
    api.script(reply_json(201, {"data": job()}))
    assert client.create_job(tasks=TASKS)["id"] == JOB_ID
    assert len(api.seen) == 1 and sleeps == [0.5]


def test_it_raises_unavailable_after_read_timeouts(api, sleeps):
    client = Client(make_config(api.url), timeout=0.2, max_retries=1, sleep=sleeps.append)
    api.script(Reply(delay=1.0), Reply(delay=1.0))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.show_job(JOB_ID)
    assert time.monotonic() - started < 1.5
    assert len(api.seen) == 2 and sleeps == [0.5]


def test_it_raises_unavailable_when_nothing_listens(sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(make_config(f"http://127.0.0.1:{port}"), timeout=1, max_retries=2, sleep=sleeps.append)
    with pytest.raises(Unavailable) as caught:
        client.me()
    assert "try again" in caught.value.message
    assert sleeps == [0.5, 1.0]


# --- Timeouts and configuration of the client ----------------------------------------------------


class RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[object] = []

    def request(self, method, url, **kwargs):
        self.timeouts.append(kwargs.get("timeout"))
        return super().request(method, url, **kwargs)


def test_it_sets_connect_and_read_timeouts_on_every_call(api):
    session = RecordingSession()
    client = Client(make_config(api.url), session=session, timeout=20)
    api.script(reply_json(200, {"data": job()}), reply_json(200, {"data": job("finished")}), Reply(204),
               Reply(200, b"file"))

    client.show_job(JOB_ID)
    client.wait_job(JOB_ID)
    client.delete_job(JOB_ID)
    client.download(f"{api.url}/tasks/x/out.pdf", io.BytesIO())

    assert session.timeouts == [(10.0, 20.0), (10.0, 300.0), (10.0, 20.0), (10.0, 20.0)]


def test_it_reads_timeout_and_retries_from_settings(settings):
    settings.CLOUDCONVERT_TIMEOUT = 7.5
    settings.CLOUDCONVERT_MAX_RETRIES = 2
    client = Client(make_config("http://127.0.0.1:9"))
    assert (client.timeout, client.max_retries) == ((7.5, 7.5), 2)


def test_it_keeps_secrets_out_of_the_config_repr():
    shown = repr(make_config("http://127.0.0.1:9"))
    assert "test-key" not in shown and "test-secret" not in shown


# --- Upload and download -------------------------------------------------------------------------

FORM_PARAMETERS = {"acl": "private", "key": f"{TASK_ID}/${{filename}}", "success_action_status": "201",
                   "Policy": "eyJjb25kaXRpb25zIjpbXX0=", "X-Amz-Signature": "abc123"}
STORAGE_REPLY = Reply(201, b"<PostResponse><Key>k</Key></PostResponse>", {"Content-Type": "application/xml"})


def multipart_parts(seen: Seen) -> list:
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + seen.headers["Content-Type"].encode() + b"\r\n\r\n" + seen.body
    )
    return message.get_payload()


def test_it_uploads_every_parameter_then_the_file_last_without_authorization(api, client):
    api.script(STORAGE_REPLY)
    form = {"url": f"{api.url}/tasks?s=signature", "parameters": FORM_PARAMETERS}

    client.upload(form, io.BytesIO(b"\x89PNG fake image"), "photo.png")

    [seen] = api.seen
    assert (seen.method, seen.path, seen.raw_query) == ("POST", "/tasks", "s=signature")
    assert "Authorization" not in seen.headers
    assert "Transfer-Encoding" not in seen.headers
    assert int(seen.headers["Content-Length"]) == len(seen.body)
    parts = multipart_parts(seen)
    names = [part.get_param("name", header="content-disposition") for part in parts]
    assert names == [*FORM_PARAMETERS, "file"]
    assert [part.get_payload() for part in parts[:-1]] == list(FORM_PARAMETERS.values())
    assert parts[-1].get_filename() == "photo.png"
    assert parts[-1].get_payload(decode=True) == b"\x89PNG fake image"


@pytest.mark.parametrize("status", [200, 201, 204])
def test_it_accepts_any_2xx_from_the_upload_target(api, client, status):
    api.script(Reply(status))
    assert client.upload({"url": f"{api.url}/tasks", "parameters": {}}, io.BytesIO(b"x"), "x.txt") is None
    assert len(api.seen) == 1


def test_it_streams_a_large_upload_with_its_length(api, client):
    content = bytes(range(256)) * 4096 * 2  # 2 MiB
    api.script(STORAGE_REPLY)
    client.upload({"url": f"{api.url}/tasks", "parameters": {"acl": "private"}}, io.BytesIO(content), "big.bin")
    assert multipart_parts(api.seen[0])[-1].get_payload(decode=True) == content


class Unseekable(io.RawIOBase):
    """A pipe-like stream: readable once, no seek, no length."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


def test_it_resends_the_whole_file_when_an_upload_is_rate_limited(api, client, sleeps):
    api.script(Reply(429, headers={"Retry-After": "1"}), STORAGE_REPLY)
    client.upload({"url": f"{api.url}/tasks", "parameters": {"acl": "private"}},
                  Unseekable(b"streamed content"), "s.txt")
    assert sleeps == [1.0]
    assert [multipart_parts(seen)[-1].get_payload(decode=True) for seen in api.seen] == [
        b"streamed content", b"streamed content",
    ]


def test_it_says_an_expired_upload_form_was_refused_not_the_api_key(api, client):
    api.script(Reply(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"}))
    with pytest.raises(ApiError) as caught:
        client.upload({"url": f"{api.url}/tasks", "parameters": {}}, io.BytesIO(b"x"), "x.txt")
    assert not isinstance(caught.value, Unauthenticated)
    assert "expired" in caught.value.message


def test_it_downloads_an_export_without_authorization(api, client):
    content = b"%PDF-1.7 " + b"x" * 200_000
    api.script(Reply(200, content, {"Content-Type": "application/pdf",
                                    "Content-Disposition": 'attachment; filename="out.pdf"'}))
    dest = io.BytesIO()

    written = client.download(f"{api.url}/tasks/{TASK_ID}/out.pdf?Expires=1&Signature=s", dest)

    assert written == len(content) and dest.getvalue() == content
    [seen] = api.seen
    assert (seen.method, seen.path, seen.raw_query) == ("GET", f"/tasks/{TASK_ID}/out.pdf", "Expires=1&Signature=s")
    assert "Authorization" not in seen.headers


def test_it_raises_not_found_for_a_download_that_is_gone(api, client):
    api.script(Reply(404, b"Not Found", {"Content-Type": "text/plain"}))
    dest = io.BytesIO()
    with pytest.raises(NotFound):
        client.download(f"{api.url}/tasks/{TASK_ID}/out.pdf", dest)
    assert dest.getvalue() == b""


def test_it_raises_unavailable_when_a_download_breaks_off(api, client):
    # The server promises more bytes than it sends, then closes the connection.
    api.script(Reply(200, b"partial", {"Connection": "close"}, length=100))
    with pytest.raises(Unavailable, match="interrupted"):
        client.download(f"{api.url}/tasks/{TASK_ID}/out.pdf", io.BytesIO())


# --- Which API: api_config() ---------------------------------------------------------------------


@pytest.fixture
def cloudconvert(settings):
    settings.CLOUDCONVERT_API_KEY = "cc-key"
    settings.CLOUDCONVERT_WEBHOOK_SECRET = "cc-secret"
    settings.CLOUDCONVERT_SANDBOX = False
    settings.CLOUDCONVERT_REGION = ""
    settings.CLOUDCONVERT_API_URL = ""
    settings.CLOUDCONVERT_SYNC_API_URL = ""
    return settings


def test_it_talks_to_live_cloudconvert_with_a_key(cloudconvert):
    assert api_config() == ApiConfig(
        api_url="https://api.cloudconvert.com/v2",
        sync_api_url="https://sync.api.cloudconvert.com/v2",
        api_key="cc-key",
        webhook_secret="cc-secret",
        is_engine=False,
    )


def test_it_talks_to_the_sandbox(cloudconvert):
    cloudconvert.CLOUDCONVERT_SANDBOX = True
    config = api_config()
    assert (config.api_url, config.sync_api_url) == (
        "https://api.sandbox.cloudconvert.com/v2", "https://sync.api.sandbox.cloudconvert.com/v2",
    )


def test_it_talks_to_a_region(cloudconvert):
    cloudconvert.CLOUDCONVERT_REGION = "eu-central"
    config = api_config()
    assert (config.api_url, config.sync_api_url) == (
        "https://eu-central.api.cloudconvert.com/v2", "https://eu-central.sync.api.cloudconvert.com/v2",
    )


def test_it_ignores_the_region_in_the_sandbox(cloudconvert):
    cloudconvert.CLOUDCONVERT_SANDBOX = True
    cloudconvert.CLOUDCONVERT_REGION = "us-east"
    assert api_config().api_url == "https://api.sandbox.cloudconvert.com/v2"


def test_it_refuses_a_region_that_is_not_a_host_label(cloudconvert):
    from django.core.exceptions import ImproperlyConfigured

    cloudconvert.CLOUDCONVERT_REGION = "evil.example/"
    with pytest.raises(ImproperlyConfigured):
        api_config()


def test_explicit_urls_override_the_derived_ones(cloudconvert):
    cloudconvert.CLOUDCONVERT_SANDBOX = True
    cloudconvert.CLOUDCONVERT_API_URL = "https://proxy.example/v2/"
    cloudconvert.CLOUDCONVERT_SYNC_API_URL = "https://sync.proxy.example/v2"
    config = api_config()
    assert (config.api_url, config.sync_api_url) == ("https://proxy.example/v2", "https://sync.proxy.example/v2")


def test_it_talks_to_the_engine_without_a_key(settings):
    settings.CLOUDCONVERT_API_KEY = ""
    settings.ENGINE_URL = "http://127.0.0.1:8000/engine"
    settings.ENGINE_API_KEY = "engine-key"
    settings.ENGINE_WEBHOOK_SECRET = "engine-secret"
    assert api_config() == ApiConfig(
        api_url="http://127.0.0.1:8000/engine/v2",
        sync_api_url="http://127.0.0.1:8000/engine/sync/v2",
        api_key="engine-key",
        webhook_secret="engine-secret",
        is_engine=True,
    )


def test_get_client_follows_the_settings_of_the_moment(settings):
    settings.CLOUDCONVERT_API_KEY = ""
    settings.ENGINE_URL = "http://engine.internal:9000/engine"
    assert get_client().config.api_url == "http://engine.internal:9000/engine/v2"
    settings.CLOUDCONVERT_API_KEY = "cc-key"
    settings.CLOUDCONVERT_SANDBOX = False
    settings.CLOUDCONVERT_REGION = ""
    settings.CLOUDCONVERT_API_URL = ""
    assert get_client().config.api_url == "https://api.cloudconvert.com/v2"
