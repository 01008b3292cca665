"""The walking skeleton as a person sees it, in Debian's Chromium."""

import io

import pytest
from playwright.sync_api import expect
from PIL import Image

from tests.conftest import log_in
from tests.files import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_converts_a_png_to_jpg_and_downloads_it(page, alice, worker, tmp_path):
    log_in(page, "alice", "alice-password")
    page.get_by_role("link", name="New conversion").first.click()
    expect(page.locator("#drop-zone")).to_be_visible()  # convert.js has taken over the form
    source = tmp_path / "sunset.png"
    source.write_bytes(png_bytes((80, 60)))
    page.get_by_label("choose files").set_input_files(str(source))
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    expect(page.locator("#file-list li", has_text="sunset.png").get_by_role("link", name="Open")).to_be_visible()
    page.get_by_role("link", name="Follow them on the dashboard").click()
    row = page.locator("#job-rows tr", has_text="sunset.png")
    # The row changes without a reload: live.js polls the fragment endpoint.
    expect(row.locator(".status")).to_have_text("Finished", timeout=60_000)
    with page.expect_download() as download_info:
        row.get_by_role("link", name="sunset.jpg").click()
    path = download_info.value.path()
    image = Image.open(io.BytesIO(open(path, "rb").read()))
    assert (image.format, image.size) == ("JPEG", (80, 60))


def test_without_javascript_the_two_step_form_still_converts(browser, live_engine, alice, worker, tmp_path):
    context = browser.new_context(java_script_enabled=False, base_url=live_engine.removesuffix("/engine"))
    page = context.new_page()
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    page.wait_for_url("**/upload/")
    source = tmp_path / "plain.png"
    source.write_bytes(png_bytes())
    page.get_by_label("File").set_input_files(str(source))
    page.get_by_role("button", name="Upload and convert").click()
    # The upload answers with a redirect back to the job page.
    expect(page.get_by_role("heading", level=1)).to_contain_text("JPG")
    for _ in range(60):
        if page.locator(".status").first.text_content().strip() == "Finished":
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.get_by_role("link", name="plain.jpg")).to_be_visible()
    context.close()
