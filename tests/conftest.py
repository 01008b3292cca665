"""Shared fixtures: three users, a live server hosting ccweb and its engine, a real worker.

Two shapes, chosen by CCWEB_TEST_SHAPE:
- default: the live server is pytest-django's, in a thread of the test process; the `worker` fixture
  runs the task loop in another thread; each test's files go to its own folder.
- scaled: the production shape. `live_engine` is `manage.py ccweb_serve` (gunicorn, two task workers)
  started once for the session on the test database, the `worker` fixture does nothing (the served
  workers run the tasks), and every file, the test's and the served processes', lives in a bucket of
  moto's S3 server, emptied after each test. Only tests that can run there are selected
  (`scaled_shape_refusal` says why the others cannot).
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connections
from django_tasks_db.management.commands.db_worker import Worker

from tests.served import Served, serve

SHAPES = ("default", "scaled")
SHAPE = os.environ.get("CCWEB_TEST_SHAPE", "") or "default"
SCALED = SHAPE == "scaled"


def pytest_configure(config: pytest.Config) -> None:
    if SHAPE not in SHAPES:
        raise pytest.UsageError(f"CCWEB_TEST_SHAPE must be one of {', '.join(SHAPES)}, not {SHAPE!r}.")


# --- The scaled shape: which tests it runs -------------------------------------------------------

# Each end-to-end path once more in the production shape: a conversion through ccweb and its actions,
# the browser, the engine's API and the official SDKs, webhooks both ways, uploads, S3. Per-converter,
# form, hostile-input and UI-polish tests exercise the same code in the other two runs.
SCALED_MODULES = {
    "tests/test_conversion_flow.py", "tests/test_job_actions.py", "tests/test_browser_flow.py",
    "tests/test_engine_conversion.py", "tests/test_engine_tasks.py", "tests/test_engine_operations.py",
    "tests/test_engine_sync.py", "tests/test_engine_sdk.py", "tests/test_engine_sdk_node.py",
    "tests/test_engine_webhooks.py", "tests/test_engine_account_webhooks.py", "tests/test_engine_upload.py",
    "tests/test_engine_s3_operations.py",
}

# Fixtures that change or watch the test process alone, unseen by the served processes: settings,
# patched code, its own live server or worker processes, its SQL statements, its outbox.
IN_PROCESS_ONLY = (
    "settings", "monkeypatch", "live_server", "start_worker", "serve",
    "django_assert_num_queries", "django_assert_max_num_queries", "mailoutbox",
)
# Tests of SCALED_MODULES that pass the rule but depend on the default shape for a reason the rule
# cannot see.
SCALED_EXCLUDED = {
    "tests/test_job_actions.py::test_the_owner_is_emailed_when_a_job_ends_if_asked":
        "it reads the test process's outbox, and the served processes send the e-mail",
}


def scaled_shape_refusal(item: pytest.Item) -> str | None:
    """Why a test does not run in the scaled shape, or None when it does: it must reach ccweb through
    `live_engine` (directly or through `page`), be one of SCALED_MODULES, run in a transaction the
    served processes see, and change nothing only the test process would see."""
    if "live_engine" not in item.fixturenames:
        return "it does not use the live server (in-process views, converters, clients)"
    path = item.nodeid.split("::", 1)[0]
    if path not in SCALED_MODULES:
        return "it is not in SCALED_MODULES: the other two runs cover its code"
    for key in (item.nodeid.split("[", 1)[0], path):
        if key in SCALED_EXCLUDED:
            return SCALED_EXCLUDED[key]
    marker = item.get_closest_marker("django_db")
    transactional = "transactional_db" in item.fixturenames or (
        marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    )
    if not transactional:
        return "its data stays in a transaction the served processes cannot see"
    # pytest keeps what a test requests, and the fixtures that serve it, in _fixtureinfo.
    used = set(item._fixtureinfo.argnames)
    for name in item.fixturenames:
        for fixture in item._fixtureinfo.name2fixturedefs.get(name, ()):
            if fixture.baseid and fixture.func.__module__ != __name__:  # the test modules' own fixtures
                used.update(fixture.argnames)
    touched = sorted(used & set(IN_PROCESS_ONLY))
    if touched:
        return f"it uses {', '.join(touched)}, which the served processes do not see"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SCALED:
        return
    selected, deselected, reasons = [], [], {}
    for item in items:
        refusal = scaled_shape_refusal(item)
        if refusal is None:
            selected.append(item)
        else:
            deselected.append(item)
            reasons[refusal] = reasons.get(refusal, 0) + 1
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected
    config.stash[_SCALED_REASONS] = reasons


_SCALED_REASONS = pytest.StashKey[dict[str, int]]()


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    if not SCALED:
        return []
    shape = "PostgreSQL or SQLite as configured, S3 on moto, ccweb_serve with 2 workers"
    lines = [f"scaled shape ({shape}): {len(items)} tests selected; left out:"]
    reasons = config.stash.get(_SCALED_REASONS, {})
    lines += [f"  {count:4d}: {reason}" for reason, count in sorted(reasons.items(), key=lambda r: -r[1])]
    return lines


# --- The scaled shape: S3 on moto, and ccweb_serve ------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str = "ccweb-scaled"
    region: str = "us-east-1"
    key: str = "test"

    def client(self):  # boto3's client classes are generated at run time: no annotation to give
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                            aws_secret_access_key=self.key, region_name=self.region)

    def options(self, location: str) -> dict[str, object]:
        """django-storages' S3Storage options: what ccweb/settings.py builds from the same environment."""
        return {"bucket_name": self.name, "endpoint_url": self.endpoint, "region_name": self.region,
                "access_key": self.key, "secret_key": self.key, "default_acl": None, "querystring_auth": True,
                "location": location}

    def environment(self) -> dict[str, str]:
        return {"STORAGE_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": self.name, "AWS_S3_ENDPOINT_URL": self.endpoint,
                "AWS_S3_REGION_NAME": self.region, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.key}

    def empty(self) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.name, Delete={"Objects": keys})


@pytest.fixture(scope="session")
def scaled_bucket() -> Iterator[Bucket]:
    """moto's S3 server on a loopback port, with one bucket for the session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = Bucket(endpoint=f"http://{host}:{port}")
    bucket.client().create_bucket(Bucket=bucket.name)
    yield bucket
    server.stop()


def _production_site_scope(fixture_name: str, config: pytest.Config) -> str:
    # In the default shape its workers must be gone before the next module's tests, whose tasks are the
    # in-thread worker's to run.
    return "session" if SCALED else "module"


@pytest.fixture(scope=_production_site_scope)
def production_site(
    request: pytest.FixtureRequest, django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[Served]:
    """`manage.py ccweb_serve` as bin/run starts it (gunicorn, WEB_PROCESSES × WEB_THREADS) with two task
    workers, on the test database: the scaled shape's live server (for the session), and the server the
    burst and probe tests fire at (for their module). Its files: the bucket in the scaled shape, a folder
    of its own otherwise."""
    from tests.test_engine_recovery import database_url

    folder = tmp_path_factory.mktemp("served")
    storage = request.getfixturevalue("scaled_bucket").environment() if SCALED else {"MEDIA_ROOT": str(folder)}
    with django_db_blocker.unblock():
        url = database_url()
    served = serve(
        "--workers", "2", database_url=url, log=folder / "serve.log", **storage,
        CONVERSIONS_DAILY_JOB_QUOTA="0",  # one user starts all of a burst's conversions
    )
    yield served
    served.stop()


@pytest.fixture(autouse=True)
def _isolated_media(request: pytest.FixtureRequest, settings, tmp_path: Path) -> Iterator[None]:
    """Each test writes files into its own folder (scaled shape: the session's bucket, emptied after
    the test), and starts with an empty cache."""
    cache.clear()
    if SCALED:
        bucket: Bucket = request.getfixturevalue("scaled_bucket")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": bucket.options("ccweb")},
            "engine": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": bucket.options("engine")},
        }
        yield
        bucket.empty()
        return
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "ccweb")},
        },
        "engine": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "engine")},
        },
    }
    yield


@pytest.fixture
def alice(django_user_model) -> User:
    """The owner of the jobs in most tests."""
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(django_user_model) -> User:
    """Alice's team mate."""
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def charlie(django_user_model) -> User:
    """An outsider who must never see Alice's work."""
    return django_user_model.objects.create_user("charlie", "charlie@example.com", "charlie-password")


@pytest.fixture
def live_engine(request: pytest.FixtureRequest, settings) -> Iterator[str]:
    """ccweb and its embedded engine on a real HTTP port; returns the engine's base URL.

    Settings are read at request time, so the live server thread and the worker see these. In the
    scaled shape the served processes were started with the same (PUBLIC_URL is theirs); the test
    process gets them for the code it runs itself (ccweb's views through the test client)."""
    url = (request.getfixturevalue("production_site") if SCALED else request.getfixturevalue("live_server")).url
    settings.PUBLIC_URL = url
    settings.ENGINE_URL = f"{url}/engine"
    settings.ALLOWED_HOSTS = ["*"]
    yield settings.ENGINE_URL
    if SCALED:
        served_workers_idle()


def served_workers_idle(timeout: float = 60.0) -> None:
    """Wait until the served workers have run what the test queued: the in-thread worker of the
    default shape stops with its test, the served ones would carry a test's work into the next."""
    from django.db.models import Q
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult, get_date_max

    def idle() -> bool:
        due = Q(status="READY") & (Q(run_after=get_date_max()) | Q(run_after__lte=timezone.now()))
        return not DBTaskResult.objects.filter(due | Q(status="RUNNING")).exists()

    wait_for(idle, timeout=timeout)


@pytest.fixture
def worker(transactional_db) -> Iterator[Worker | None]:
    """The django-tasks-db worker loop, in a thread, for the length of one test (scaled shape: none,
    the served workers run the tasks)."""
    if SCALED:
        yield None
        return
    w = Worker(
        queue_names=["*"],
        interval=0.05,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            w.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    yield w
    w.running = False
    thread.join(timeout=30)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1) -> object:
    """Poll until predicate() is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (its own browser download is not possible here)."""
    import os

    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests still use the ORM.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_engine):
    context = browser.new_context(accept_downloads=True, base_url=live_engine.removesuffix("/engine"))
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
