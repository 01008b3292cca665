"""archive/extract over real HTTP with a worker: zip and tar archives in, each file inside out."""

from __future__ import annotations

import base64
import io
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
import requests

from tests.test_engine_helpers import Api, png_bytes, task_named, upload

pytestmark = pytest.mark.django_db(transaction=True)

PHOTO = png_bytes()
NOTES = b"notes from the nested folder\n"
OLD_NOTES = b"older notes, same name\n"
# The files of the sample archive as the engine hands them out: folders dropped, repeats numbered.
EXTRACTED = {"photo.png": PHOTO, "notes.txt": NOTES, "notes-2.txt": OLD_NOTES}


def zip_bytes(members: dict[str, bytes], *, folders: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for folder in folders:
            zipped.writestr(zipfile.ZipInfo(folder), b"")
        for name, content in members.items():
            zipped.writestr(name, content)
    return buffer.getvalue()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    """A tar of (name, content) files and of ready-made entries (links, devices...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, content = member
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def sample_tar(mode: str) -> bytes:
    folder = tarfile.TarInfo("docs")
    folder.type = tarfile.DIRTYPE
    return tar_bytes(
        [("photo.png", PHOTO), folder, ("docs/notes.txt", NOTES), ("docs/old/notes.txt", OLD_NOTES)], mode
    )


SAMPLE_ZIP = zip_bytes(
    {"photo.png": PHOTO, "docs/notes.txt": NOTES, "docs/old/notes.txt": OLD_NOTES}, folders=("docs/",)
)


def entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def imported(content: bytes, filename: str) -> dict:
    return {"operation": "import/base64", "file": base64.b64encode(content).decode(), "filename": filename}


def extract_job(api: Api, content: bytes, filename: str) -> dict:
    """import/base64 → archive/extract → export/url, waited for."""
    job = api.create_job(
        {
            "archive": imported(content, filename),
            "extract": {"operation": "archive/extract", "input": "archive"},
            "export": {"operation": "export/url", "input": "extract"},
        }
    )
    return api.wait_job(job["id"])


def downloads(job: dict) -> dict[str, bytes]:
    assert job["status"] == "finished", job
    files = task_named(job, "export")["result"]["files"]
    return {f["filename"]: requests.get(f["url"], timeout=30).content for f in files}


def test_it_extracts_every_file_of_an_uploaded_zip_under_its_own_name(live_engine: str, worker) -> None:
    api = Api(live_engine)
    job = api.create_job(
        {
            "upload": {"operation": "import/upload"},
            "extract": {"operation": "archive/extract", "input": "upload", "filename": "ignored.txt"},
            "export": {"operation": "export/url", "input": "extract"},
        }
    )
    assert upload(task_named(job, "upload"), SAMPLE_ZIP, "bundle.zip").status_code == 201

    job = api.wait_job(job["id"])

    assert downloads(job) == EXTRACTED
    extract = task_named(job, "extract")
    assert extract["engine"] == "archive"
    assert [f["filename"] for f in extract["result"]["files"]] == list(EXTRACTED)


@pytest.mark.parametrize(
    ("filename", "mode"),
    [
        ("bundle.tar", "w"),
        ("bundle.tar.gz", "w:gz"),
        ("bundle.tgz", "w:gz"),
        ("bundle.tar.bz2", "w:bz2"),
        ("bundle.tar.xz", "w:xz"),
    ],
)
def test_it_extracts_tar_archives_compressed_or_not(live_engine: str, worker, filename: str, mode: str) -> None:
    api = Api(live_engine)

    job = extract_job(api, sample_tar(mode), filename)

    assert downloads(job) == EXTRACTED


def test_a_standalone_extract_task_is_created_and_run(live_engine: str, worker) -> None:
    api = Api(live_engine)
    imported_task = api.post("v2/import/base64", imported(sample_tar("w:gz"), "download"))
    assert imported_task.status_code == 201

    created = api.post(
        "v2/archive/extract", {"input": imported_task.json()["data"]["id"], "input_format": "tgz", "unknown": 1}
    )

    assert created.status_code == 201, created.text
    task = api.get(f"sync/v2/tasks/{created.json()['data']['id']}").json()["data"]
    assert task["status"] == "finished", task
    assert [f["filename"] for f in task["result"]["files"]] == list(EXTRACTED)


def test_climbing_paths_links_and_devices_are_skipped(live_engine: str, worker, tmp_path: Path, monkeypatch) -> None:
    # The worker's work folders go under tmp_path, so anything written beside them can be found.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "work"))
    (tmp_path / "work").mkdir()
    api = Api(live_engine)
    slippery_zip = zip_bytes(
        {
            "../evil.txt": b"zip climbed one level",
            "../../../evil.txt": b"zip climbed three levels",
            "/abs-evil.txt": b"zip went absolute",
            "inside/safe.txt": b"safe",
        }
    )
    slippery_tar = tar_bytes(
        [
            ("../evil.txt", b"tar climbed"),
            ("/abs-evil.txt", b"tar went absolute"),
            entry("passwd", tarfile.SYMTYPE, "/etc/passwd"),
            entry("hard", tarfile.LNKTYPE, "ok.txt"),
            entry("null", tarfile.CHRTYPE),
            entry("pipe", tarfile.FIFOTYPE),
            ("ok.txt", b"ok"),
        ]
    )
    job = api.create_job(
        {
            "zip": imported(slippery_zip, "slippery.zip"),
            "tar": imported(slippery_tar, "slippery.tar.gz"),
            "extract": {"operation": "archive/extract", "input": ["zip", "tar"]},
            "export": {"operation": "export/url", "input": "extract"},
        }
    )

    assert downloads(api.wait_job(job["id"])) == {"safe.txt": b"safe", "ok.txt": b"ok"}
    assert list(tmp_path.rglob("*evil*")) == []
    assert not Path("/abs-evil.txt").exists()


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("bomb.zip", zip_bytes({"zeros.bin": bytes(2_000_000)})),
        ("bomb.tar.gz", tar_bytes([("zeros.bin", bytes(2_000_000))])),
        # Each member is small; together they pass the limit.
        ("many.zip", zip_bytes({f"part-{i}.bin": bytes(30_000) for i in range(4)})),
    ],
)
def test_an_archive_expanding_past_the_size_limit_fails_the_task(
    live_engine: str, worker, settings, filename: str, content: bytes
) -> None:
    settings.ENGINE_MAX_UPLOAD_SIZE = 100_000
    api = Api(live_engine)

    job = extract_job(api, content, filename)

    task = task_named(job, "extract")
    assert (job["status"], task["status"], task["code"]) == ("error", "error", "FILE_TOO_LARGE")
    assert task["message"] == (
        "The archive expands to more than 100,000 bytes, the engine's file size limit; "
        "split it into smaller archives."
    )


def test_an_archive_with_too_many_entries_fails_the_task(live_engine: str, worker, monkeypatch) -> None:
    monkeypatch.setattr("engine.extract.MAX_ENTRIES", 3)
    api = Api(live_engine)

    job = extract_job(api, zip_bytes({f"{i}.txt": b"x" for i in range(4)}), "crowded.zip")

    task = task_named(job, "extract")
    assert (task["status"], task["code"]) == ("error", "INVALID_FILE")
    assert task["message"].startswith("The archive holds more than 3 entries")


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("broken.zip", b"this is not a zip at all", "The file broken.zip is not a valid ZIP archive;"),
        ("cut.tar.gz", sample_tar("w:gz")[:200], "The file cut.tar.gz is not a valid TAR.GZ archive;"),
        ("photo.png", PHOTO, "The file photo.png is not a valid ZIP or TAR archive;"),
    ],
)
def test_a_file_that_is_not_an_archive_fails_with_invalid_file(
    live_engine: str, worker, filename: str, content: bytes, message: str
) -> None:
    api = Api(live_engine)

    job = extract_job(api, content, filename)

    task = task_named(job, "extract")
    assert (task["status"], task["code"]) == ("error", "INVALID_FILE")
    assert task["message"].startswith(message)
    assert "zip, tar, tar.gz, tar.bz2, tar.xz" in task["message"]


def test_an_archive_of_folders_only_fails_with_a_clear_sentence(live_engine: str, worker) -> None:
    api = Api(live_engine)

    job = extract_job(api, zip_bytes({}, folders=("empty/", "empty/deeper/")), "folders.zip")

    task = task_named(job, "extract")
    assert (task["status"], task["code"]) == ("error", "INVALID_FILE")
    assert task["message"] == "The archive holds no files to extract (only folders, links or unsafe paths)."


def test_a_password_protected_zip_is_refused_plainly(live_engine: str, worker) -> None:
    content = bytearray(zip_bytes({"secret.txt": b"hidden"}))
    central = content.index(b"PK\x01\x02")
    content[central + 8] |= 0x1  # the central directory's "encrypted" flag bit
    api = Api(live_engine)

    job = extract_job(api, bytes(content), "locked.zip")

    task = task_named(job, "extract")
    assert (task["status"], task["code"]) == ("error", "INVALID_FILE")
    assert "password-protected" in task["message"]


def test_an_unknown_input_format_is_refused_at_creation(live_engine: str) -> None:
    api = Api(live_engine)

    response = api.post("v2/archive/extract", {"input": "00000000-0000-0000-0000-000000000000", "input_format": "rar"})

    assert response.status_code == 422
    assert response.json()["errors"]["input_format"] == [
        "The engine extracts zip, tar, tar.gz, tar.bz2, tar.xz archives only."
    ]


def test_the_operations_catalogue_lists_extract_by_input_format(live_engine: str) -> None:
    def listed(**params: str) -> list[dict]:
        return requests.get(f"{live_engine}/v2/operations", params=params, timeout=30).json()["data"]

    extracts = listed(**{"filter[operation]": "archive/extract"})
    assert {item["input_format"] for item in extracts} == {"zip", "tar", "tar.gz", "tar.bz2", "tar.xz"}
    assert all(item["engine"] == "archive" and "output_format" not in item for item in extracts)
    assert "archive/extract" in {item["operation"] for item in listed()}
    assert [item["input_format"] for item in listed(**{"filter[input_format]": "tgz"})] == ["tar.gz"]
    assert [i for i in listed(**{"filter[output_format]": "zip"}) if i["operation"] == "archive/extract"] == []
