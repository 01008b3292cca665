"""Whole conversions through the live engine and a real worker: upload, convert, export, download."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image

from engine.models import File
from tests.test_engine_helpers import CONVERT_TO_JPG, Api, pdf_bytes, png_bytes, task_named, upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_png_becomes_a_jpeg_behind_a_signed_export_url(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, tag="photo")
    assert upload(task_named(job, "upload"), png_bytes((64, 48)), "photo.png").status_code == 201

    job = api.wait_job(job["id"])

    assert job["status"] == "finished"
    assert job["started_at"] and job["ended_at"]
    convert = task_named(job, "convert")
    assert (convert["status"], convert["engine"], convert["percent"]) == ("finished", "pillow", 100)
    assert convert["engine_version"] and convert["credits"] == 1
    assert task_named(job, "upload")["credits"] == task_named(job, "export")["credits"] == 0
    assert convert["result"]["files"][0]["filename"] == "photo.jpg"
    (exported,) = task_named(job, "export")["result"]["files"]
    assert exported["filename"] == "photo.jpg"
    assert exported["url"].startswith(f"{live_engine}/storage/files/")

    download = requests.get(exported["url"], timeout=30)  # no API key: the URL is self-authorizing
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/jpeg"
    assert download.headers["Content-Disposition"] == 'attachment; filename="photo.jpg"'
    assert int(download.headers["Content-Length"]) == exported["size"] == len(download.content)
    image = Image.open(io.BytesIO(download.content))
    assert (image.format, image.size) == ("JPEG", (64, 48))


def test_an_iphone_heic_photo_becomes_a_jpeg(live_engine: str, worker) -> None:
    photo = io.BytesIO()
    Image.new("RGB", (120, 90), (40, 90, 200)).save(photo, "HEIF")
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    assert upload(task_named(job, "upload"), photo.getvalue(), "IMG_4032.HEIC").status_code == 201

    job = api.wait_job(job["id"])

    assert job["status"] == "finished", task_named(job, "convert")["message"]
    (exported,) = task_named(job, "export")["result"]["files"]
    assert exported["filename"] == "IMG_4032.jpg"
    image = Image.open(io.BytesIO(requests.get(exported["url"], timeout=30).content))
    assert (image.format, image.size) == ("JPEG", (120, 90))


def test_a_three_page_pdf_becomes_three_pngs_each_with_its_url(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "upload": {"operation": "import/upload"},
            "convert": {
                "operation": "convert",
                "input": "upload",
                "output_format": "png",
                "pixel_density": 72,
            },
            "export": {"operation": "export/url", "input": ["convert"], "inline": True},
        }
    )
    upload(task_named(job, "upload"), pdf_bytes(3), "report.pdf")

    job = api.wait_job(job["id"])

    assert job["status"] == "finished", job
    files = task_named(job, "export")["result"]["files"]
    assert len(files) == 3
    assert len({f["url"] for f in files}) == 3
    for file in files:
        response = requests.get(file["url"], timeout=30)
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("inline")
        assert Image.open(io.BytesIO(response.content)).format == "PNG"


def test_a_corrupt_png_fails_the_conversion_the_export_and_the_job(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), b"\x89PNG\r\n\x1a\n this is not an image", "broken.png")

    job = api.wait_job(job["id"])

    assert job["status"] == "error"
    convert = task_named(job, "convert")
    assert convert["status"] == "error"
    assert convert["code"] and convert["code"] != "INTERNAL_ERROR"
    assert "PNG" in convert["message"]
    export = task_named(job, "export")
    assert (export["status"], export["code"], export["message"]) == (
        "error",
        "INPUT_TASK_FAILED",
        "Input task has failed",
    )


def test_an_unsupported_pair_found_at_run_time_fails_with_a_sentence(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), b"hello", "notes.txt")

    job = api.wait_job(job["id"])

    convert = task_named(job, "convert")
    assert convert["code"] == "INVALID_CONVERSION_TYPE"
    assert "txt" in convert["message"] and "jpg" in convert["message"]


def test_an_archive_export_zips_several_files(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "upload": {"operation": "import/upload"},
            "convert": {
                "operation": "convert",
                "input": "upload",
                "output_format": "png",
                "pixel_density": 72,
            },
            "export": {"operation": "export/url", "input": "convert", "archive_multiple_files": True},
        }
    )
    upload(task_named(job, "upload"), pdf_bytes(2), "two.pdf")

    (archive,) = task_named(api.wait_job(job["id"]), "export")["result"]["files"]

    content = requests.get(archive["url"], timeout=30).content
    assert archive["filename"] == "archive.zip"
    assert len(zipfile.ZipFile(io.BytesIO(content)).namelist()) == 2


def test_deleting_a_finished_job_removes_its_files(live_engine: str, worker, tmp_path: Path) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")
    job = api.wait_job(job["id"])
    url = task_named(job, "export")["result"]["files"][0]["url"]
    assert File.objects.count() == 2

    assert api.delete(f"v2/jobs/{job['id']}").status_code == 204

    assert not File.objects.exists()
    assert not any(p.is_file() for p in (tmp_path / "engine").rglob("*"))
    assert requests.get(url, timeout=30).status_code == 404
    assert api.get(f"v2/jobs/{job['id']}").status_code == 404
