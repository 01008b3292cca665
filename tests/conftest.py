"""Shared fixtures: three users, a live server hosting ccweb and its engine, a real worker."""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connections
from django_tasks_db.management.commands.db_worker import Worker


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path: Path) -> None:
    """Each test writes files into its own folder, and starts with an empty cache."""
    cache.clear()
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
def live_engine(live_server, settings) -> str:
    """ccweb and its embedded engine on a real HTTP port; returns the engine's base URL.

    Settings are read at request time, so the live server thread and the worker see these."""
    settings.PUBLIC_URL = live_server.url
    settings.ENGINE_URL = f"{live_server.url}/engine"
    settings.ALLOWED_HOSTS = ["*"]
    return settings.ENGINE_URL


@pytest.fixture
def worker(transactional_db) -> Iterator[Worker]:
    """The django-tasks-db worker loop, in a thread, for the length of one test."""
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
