"""The pages work under the Content-Security-Policy (enforced in development as in production),
with the engine on another origin than the pages, as CloudConvert's storage is: uploads by XHR and
by a plain form, live updates, thumbnails, the admin. Any violation the browser reports fails."""

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from conversions.models import ConversionJob
from tests.conftest import log_in, wait_for
from tests.files import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Registered before any page script runs; the binding outlives navigations.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolation(`${event.violatedDirective} ${event.blockedURI} on ${document.location.pathname}`);
});
"""


@pytest.fixture
def engine_elsewhere(live_engine, live_server, settings) -> str:
    """The engine at http://127.0.0.1:port while pages are at http://localhost:port: the same server,
    another origin, so uploads are cross-origin and the policy must name the engine's host."""
    assert "//localhost:" in live_server.url
    settings.ENGINE_URL = live_server.url.replace("//localhost:", "//127.0.0.1:") + "/engine"
    return settings.ENGINE_URL


def watch_violations(page: Page) -> list[str]:
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The browser's own report, which also covers pages without JavaScript.
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.expose_function("cspViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", on_console)
    return violations


# Whether an image loaded and decoded: at once when it is complete, else when it ends loading (visible
# is not loaded: the reload shows the row before its image arrives).
LOADED = """img => img.complete ? img.naturalWidth > 0 : new Promise(resolve => {
    img.addEventListener("load", () => resolve(img.naturalWidth > 0));
    img.addEventListener("error", () => resolve(false));
})"""


def test_a_dropped_file_uploads_to_the_engine_and_shows_its_thumbnail_under_the_policy(
    page, alice, worker, engine_elsewhere
):
    violations = watch_violations(page)
    posts: list[str] = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    expect(page.locator("#drop-zone")).to_be_visible()  # convert.js runs
    page.get_by_label("choose files").set_input_files(
        files=[{"name": "dawn.png", "mimeType": "image/png", "buffer": png_bytes((64, 48))}]
    )
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    expect(page.locator("#file-list li", has_text="dawn.png").get_by_role("link", name="Open")).to_be_visible()
    assert [url for url in posts if url.startswith(engine_elsewhere)]  # the XHR went to the engine's origin
    job = ConversionJob.objects.get()

    page.get_by_role("link", name="Follow them on the dashboard").click()
    row = page.locator("#job-rows tr", has_text="dawn.png")
    expect(row.locator(".status")).to_have_text("Finished", timeout=60_000)  # live.js polls
    wait_for(lambda: job.files.exclude(thumbnail="").exists(), timeout=60)
    page.reload()
    thumbnail = page.locator("#job-rows tr", has_text="dawn.png").locator("img")
    expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate(LOADED), "the thumbnail loads and decodes under the policy"
    assert violations == []


def test_without_javascript_the_upload_form_posts_to_the_engine_under_the_policy(
    browser, live_server, alice, worker, engine_elsewhere
):
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    page = context.new_page()
    violations = watch_violations(page)
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    page.wait_for_url("**/upload/")
    assert page.locator("form[enctype]").get_attribute("action").startswith(engine_elsewhere)
    page.get_by_label("File").set_input_files(
        files=[{"name": "dusk.png", "mimeType": "image/png", "buffer": png_bytes()}]
    )
    page.get_by_role("button", name="Upload and convert").click()
    # The engine sends the browser back to the job page once it has the file.
    page.wait_for_url(f"**{ConversionJob.objects.get().get_absolute_url()}")
    wait_for(lambda: ConversionJob.objects.get().input_filename == "dusk.png", timeout=60)
    assert violations == []
    context.close()


def test_the_admin_works_under_the_policy(page, admin_user, live_engine):
    violations = watch_violations(page)
    ConversionJob.objects.create(user=admin_user, output_format="jpg", input_filename="scan.png")
    page.goto("/admin/login/?next=/admin/conversions/conversionjob/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("scan.png")).to_be_visible()
    page.locator("#action-toggle").check()  # the admin's actions.js selects every row
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    assert violations == []


def test_the_policy_refuses_inline_styles_and_scripts(page, alice, live_engine):
    """The harness above does see violations: an inline style and an inline script are refused."""
    violations = watch_violations(page)
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    page.evaluate(
        """() => {
          document.body.insertAdjacentHTML("beforeend", '<p id="styled" style="color: rgb(255, 0, 0)">x</p>');
          const script = document.createElement("script");
          script.textContent = "document.body.dataset.inline = 'ran'";
          document.body.appendChild(script);
        }"""
    )
    expect(page.locator("#styled")).to_be_attached()
    assert page.locator("#styled").evaluate("p => getComputedStyle(p).color") != "rgb(255, 0, 0)"
    assert page.evaluate("document.body.dataset.inline") is None
    wait_for(lambda: len([v for v in violations if "on /convert/" in v]) >= 2, timeout=10)
