"""The conversion web app as people use it, in Debian's Chromium: several files at once, options,
the zip, cancelling, failures in words."""

import base64
import io
import zipfile

import pytest
from playwright.sync_api import Page, expect
from PIL import Image

from conversions.models import ConversionJob
from tests.conftest import log_in, wait_for
from tests.files import pdf_bytes, png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DROP = """(files) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, { type: f.type }));
  }
  return transfer;
}"""


def drop_files(page: Page, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on the drop zone as a person dragging them from their desktop would."""
    payload = [{"name": name, "b64": base64.b64encode(data).decode(), "type": kind} for name, data, kind in files]
    transfer = page.evaluate_handle(DROP, payload)
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def file_row(page: Page, name: str):
    return page.locator("#file-list li", has_text=name)


def test_three_dropped_files_convert_in_parallel_with_their_own_progress(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    drop_files(page, [(f"photo-{n}.png", png_bytes((40 + n, 30)), "image/png") for n in range(3)])
    expect(page.locator("#file-list li")).to_have_count(3)
    page.get_by_label("Convert to", exact=True).select_option("webp")
    page.get_by_role("button", name="Convert").click()
    for n in range(3):
        row = file_row(page, f"photo-{n}.png")
        expect(row.get_by_role("link", name="Open")).to_be_visible()  # uploaded
    # One job each, all created before any upload finished converting: they ran side by side.
    assert ConversionJob.objects.count() == 3
    for n in range(3):
        row = file_row(page, f"photo-{n}.png")
        expect(row.locator(".state")).to_have_text("Finished", timeout=60_000)
        expect(row.locator("progress")).to_have_attribute("value", "100")
    page.get_by_role("link", name="Follow them on the dashboard").click()
    for n in range(3):
        expect(page.locator("#job-rows tr", has_text=f"photo-{n}.png").locator(".status")).to_have_text(
            "Finished", timeout=60_000
        )
    assert sorted(f.filename for job in ConversionJob.objects.all() for f in job.files.all()) == [
        "photo-0.webp", "photo-1.webp", "photo-2.webp",
    ]


def test_a_page_range_yields_that_many_images_and_a_zip_of_them(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    drop_files(page, [("manual.pdf", pdf_bytes(5), "application/pdf")])
    page.get_by_label("Convert to", exact=True).select_option("png")
    expect(page.get_by_label("Quality")).to_be_hidden()  # not an option of pdf → png
    page.get_by_label("Pages").fill("2-4")
    page.get_by_role("button", name="Convert").click()
    file_row(page, "manual.pdf").get_by_role("link", name="Open").click()
    downloads = page.locator(".files a.download")
    expect(downloads).to_have_count(3, timeout=60_000)
    expect(downloads).to_have_text(["manual-2.png", "manual-3.png", "manual-4.png"])
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download all as ZIP").click()
    archive = zipfile.ZipFile(download_info.value.path())
    assert sorted(archive.namelist()) == ["manual-2.png", "manual-3.png", "manual-4.png"]
    assert Image.open(io.BytesIO(archive.read("manual-3.png"))).format == "PNG"


def test_a_waiting_conversion_is_cancelled_from_its_page(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    page.route("**/engine/storage/upload/**", lambda route: None)  # the upload never arrives
    drop_files(page, [("later.png", png_bytes(), "image/png")])
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    expect(file_row(page, "later.png").locator(".state")).to_contain_text("Uploading")
    # Started, but its file never came: it waits for the upload.
    page.get_by_role("link", name="ccweb").click()
    page.locator("#job-rows a").first.click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_have_text("The conversion was cancelled.")
    expect(page.locator(".status").first).to_have_text("Failed")
    job = ConversionJob.objects.get()
    assert (job.status, job.error_code) == ("error", "CANCELLED")


def test_a_failed_conversion_says_what_went_wrong(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    drop_files(page, [("broken.png", b"\x89PNG\r\n\x1a\n not really an image", "image/png")])
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    page.get_by_role("link", name="Follow them on the dashboard").click()
    row = page.locator("#job-rows tr", has_text="broken.png")
    expect(row.locator(".status")).to_have_text("Failed", timeout=60_000)
    expect(row.locator(".error")).to_contain_text("not a valid PNG image")
    expect(row.locator(".error")).to_contain_text("try again")
    wait_for(lambda: ConversionJob.objects.filter(status="error").exists())


def test_a_file_can_be_cancelled_while_it_uploads(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    page.route("**/engine/storage/upload/**", lambda route: None)  # the upload never completes
    drop_files(page, [("slow.png", png_bytes(), "image/png")])
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_role("button", name="Convert").click()
    row = file_row(page, "slow.png")
    expect(row.locator(".state")).to_contain_text("Uploading")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".state")).to_have_text("Cancelled")
    wait_for(lambda: ConversionJob.objects.filter(status="error", error_code="CANCELLED").exists())


def test_options_saved_as_a_preset_fill_the_form_next_time(page, alice, worker):
    log_in(page, "alice", "alice-password")
    page.goto("/convert/")
    drop_files(page, [("scan.pdf", pdf_bytes(2), "application/pdf")])
    page.get_by_label("Convert to", exact=True).select_option("jpg")
    page.get_by_label("Quality").fill("40")
    page.get_by_label("Resolution (DPI)").fill("72")
    page.get_by_label("Save these settings as a preset named").fill("Small JPGs")
    page.get_by_role("button", name="Convert").click()
    expect(file_row(page, "scan.pdf").get_by_role("link", name="Open")).to_be_visible()  # uploaded
    page.goto("/convert/")
    page.get_by_role("link", name="Small JPGs").click()
    expect(page.get_by_label("Convert to", exact=True)).to_have_value("jpg")
    expect(page.get_by_label("Quality")).to_have_value("40")
    expect(page.get_by_label("Resolution (DPI)")).to_have_value("72")
