"""The image watermark: a picture imported by another task of the job stamped on PDF pages and images."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import requests
from PIL import Image

from engine import converters
from tests.conftest import wait_for
from tests.files import pdf_bytes
from tests.test_engine_helpers import Api, task_named

pytestmark = pytest.mark.django_db(transaction=True)

RED = (255, 0, 0)
# tests.files.pdf_bytes: 200×280 pt pages coloured (40 n mod 255, 120, 200).
PAGE_COLOURS = [(0, 120, 200), (40, 120, 200), (80, 120, 200)]


def imported(content: bytes, filename: str) -> dict:
    return {"operation": "import/base64", "file": base64.b64encode(content).decode(), "filename": filename}


def picture_bytes(size: tuple[int, int], colour: tuple[int, ...], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA" if len(colour) == 4 else "RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def downloaded(api: Api, job: dict, name: str = "export") -> bytes:
    job = api.wait_job(job["id"])
    assert job["status"] == "finished", job
    [file] = task_named(job, name)["result"]["files"]
    return requests.get(file["url"], timeout=30).content


def red_box(picture: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box of the clearly red pixels."""
    rgb = picture.convert("RGB")
    mask = Image.eval(rgb.getchannel("R"), lambda v: 255 if v > 200 else 0)
    not_blue = Image.eval(rgb.getchannel("B"), lambda v: 255 if v < 60 else 0)
    return Image.composite(mask, Image.new("L", rgb.size, 0), not_blue).getbbox()


def wait_task(api: Api, task_id: str) -> dict:
    return api.get(f"sync/v2/tasks/{task_id}").json()["data"]


def test_it_stamps_an_imported_logo_on_every_pdf_page(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "contract": imported(pdf_bytes(3), "contract.pdf"),
            "logo": imported(picture_bytes((20, 20), RED), "logo.png"),
            "stamp": {
                "operation": "watermark", "input": "contract", "image": "logo", "image_width": 30, "opacity": 100,
                "position_vertical": "bottom", "position_horizontal": "right",
                "margin_vertical": 10, "margin_horizontal": 15,
            },
            "export": {"operation": "export/url", "input": "stamp"},
        }
    )

    content = downloaded(api, job)

    finished = api.job(job["id"])
    stamp = task_named(finished, "stamp")
    ids = [task_named(finished, name)["id"] for name in ("contract", "logo")]
    assert stamp["depends_on_task_ids"] == ids
    assert [f["filename"] for f in stamp["result"]["files"]] == ["contract.pdf"]
    with pdfium.PdfDocument(content) as document:
        assert len(document) == 3
        for index, page in enumerate(document):
            # The page keeps its content and gains one image object: it is not flattened to a picture.
            kinds = [obj.type for obj in page.get_objects()]
            assert kinds.count(pdfium_c.FPDF_PAGEOBJ_IMAGE) == 2
            rendered = page.render(scale=1).to_pil().convert("RGB")
            # 30×30 pt, 15 pt from the right and 10 pt from the bottom of a 200×280 pt page.
            assert red_box(rendered) == (155, 240, 185, 270)
            assert rendered.getpixel((170, 255)) == pytest.approx(RED, abs=2)
            assert rendered.getpixel((20, 20)) == pytest.approx(PAGE_COLOURS[index], abs=2)
            assert rendered.getpixel((150, 255)) == pytest.approx(PAGE_COLOURS[index], abs=2)


def test_it_lays_a_logo_over_a_photo_by_width_percent_and_opacity(live_engine: str, worker) -> None:
    api = Api(live_engine)
    photo = api.post("v2/import/base64", imported(picture_bytes((400, 200), (255, 255, 255)), "photo.png"))
    logo = api.post("v2/import/base64", imported(picture_bytes((20, 10), RED), "logo.png"))
    photo, logo = photo.json()["data"], logo.json()["data"]

    stamp = api.post(
        "v2/watermark",
        {
            "input": photo["id"], "image": logo["id"], "image_width_percent": 25, "opacity": 50,
            "position_vertical": "top", "position_horizontal": "left",
        },
    )

    assert stamp.status_code == 201, stamp.text
    assert stamp.json()["data"]["depends_on_task_ids"] == [photo["id"], logo["id"]]
    export = api.post("v2/export/url", {"input": stamp.json()["data"]["id"]}).json()["data"]
    export = wait_task(api, export["id"])
    assert export["status"] == "finished", export
    [file] = export["result"]["files"]
    assert file["filename"] == "photo.png"
    with Image.open(io.BytesIO(requests.get(file["url"], timeout=30).content)) as img:
        assert img.size == (400, 200)
        rgb = img.convert("RGB")
    # 25 % of 400 px is 100 px wide, so 50 px high (the logo is 2:1), at the default 25 px margins.
    assert Image.eval(rgb.convert("L"), lambda v: 255 - v).getbbox() == (25, 25, 125, 75)
    assert rgb.getpixel((75, 50)) == pytest.approx((255, 128, 128), abs=2)  # half-transparent red on white
    assert rgb.getpixel((200, 100)) == (255, 255, 255)


def test_it_stamps_text_and_a_picture_together_on_the_asked_pages(tmp_path: Path) -> None:
    src = tmp_path / "contract.pdf"
    src.write_bytes(pdf_bytes(3))
    logo = tmp_path / "logo.png"
    half = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # left half transparent, right half red
    half.paste(Image.new("RGBA", (20, 20), (*RED, 255)), (20, 0))
    half.save(logo)
    conversion = converters.find("pdf", "pdf", "watermark")
    options = converters.clean_options(
        conversion,
        {"text": "DRAFT", "font_size": 10, "image": "logo", "image_height": 40, "opacity": 50, "pages": "2-"},
    )
    (tmp_path / "out").mkdir()

    [out] = conversion.run(src, tmp_path / "out", output_format="pdf", options=options, stem="result", picture=logo)

    with pdfium.PdfDocument(out) as document:
        assert [page.get_textpage().get_text_bounded() for page in document] == ["", "DRAFT", "DRAFT"]
        rendered = [page.render(scale=1).to_pil().convert("RGB") for page in document]
    assert rendered[0].getpixel((110, 128)) == pytest.approx(PAGE_COLOURS[0], abs=2)  # page 1 is left alone
    # 80×40 pt (the 2:1 logo at 40 pt high) in the centre: the red half blends 50 %, the clear half shows the page.
    blended = tuple(round((a + b) / 2) for a, b in zip(RED, PAGE_COLOURS[1]))
    assert rendered[1].getpixel((130, 125)) == pytest.approx(blended, abs=3)
    assert rendered[1].getpixel((70, 125)) == pytest.approx(PAGE_COLOURS[1], abs=2)


def test_it_refuses_an_unknown_or_doubled_image_task(live_engine: str) -> None:
    api = Api(live_engine)
    response = api.post(
        "v2/jobs",
        {
            "tasks": {
                "contract": imported(pdf_bytes(1), "contract.pdf"),
                "stamp": {"operation": "watermark", "input": "contract", "image": "missing-logo"},
                "twice": {"operation": "watermark", "input": "contract", "image": "contract"},
                "blank": {"operation": "watermark", "input": "contract"},
            }
        },
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"tasks.stamp.image", "tasks.twice.image", "tasks.blank.text"}
    assert errors["tasks.stamp.image"] == ["The image task missing-logo does not exist in this job."]
    assert "both an input and the image" in errors["tasks.twice.image"][0]
    assert "text or image is required" in errors["tasks.blank.text"][0]
    nobody = "00000000-0000-0000-0000-00000000000"
    standalone = api.post("v2/watermark", {"input": f"{nobody}0", "image": f"{nobody}1"})
    assert standalone.status_code == 422
    assert set(standalone.json()["errors"]) == {"input", "image"}


def test_it_fails_in_words_when_the_image_task_is_not_a_picture_or_fails(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "contract": imported(pdf_bytes(1), "contract.pdf"),
            "garbage": imported(b"this is no picture", "logo.png"),
            "unreachable": {"operation": "import/url", "url": "http://127.0.0.1:9/logo.png"},
            "stamp": {"operation": "watermark", "input": "contract", "image": "garbage"},
            "waits": {"operation": "watermark", "input": "contract", "image": "unreachable", "text": "x"},
        }
    )

    def every_task_ended() -> dict | None:
        # The job fails with its first failed task; the others may still be running then.
        current = api.job(job["id"])
        return current if all(t["status"] in ("finished", "error") for t in current["tasks"]) else None

    job = wait_for(every_task_ended)

    stamp, waits = task_named(job, "stamp"), task_named(job, "waits")
    assert (stamp["status"], stamp["code"]) == ("error", "INVALID_FILE")
    assert stamp["message"].startswith("The watermark image is not a valid picture;")
    assert task_named(job, "unreachable")["status"] == "error"
    assert (waits["status"], waits["code"]) == ("error", "INPUT_TASK_FAILED")
    assert waits["depends_on_task_ids"][-1] == task_named(job, "unreachable")["id"]


def test_the_catalogue_lists_the_image_options(live_engine: str) -> None:
    listed = requests.get(
        f"{live_engine}/v2/operations",
        params={"filter[operation]": "watermark", "filter[input_format]": "pdf", "include": "options"},
        timeout=30,
    ).json()["data"]

    [pdf] = listed
    names = {option["name"] for option in pdf["options"]}
    assert {"text", "image", "image_width", "image_height", "image_width_percent", "opacity"} <= names
