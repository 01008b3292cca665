"""Office conversions through the warm LibreOffice pool, checked by reading the PDFs with pdfium.

Sample documents are written by hand (txt, html, csv, a minimal odp) or made by the pool itself.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from engine import converters
from engine.converters import ConversionFailed, office
from engine.converters.office import OfficePool, OfficeTimeout



def test_libreoffice_is_installed_here() -> None:
    """bin/setup installs LibreOffice and python3-uno; without them these tests must fail, not skip."""
    assert office.installed()

WRITER = ["txt", "html", "docx", "odt", "rtf", "doc"]
CALC = ["csv", "xlsx", "xls", "ods"]
IMPRESS = ["odp", "pptx", "ppt"]
MAIN_PROJECT = Path(__file__).resolve().parent.parent

ODP_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" office:version="1.2">
<office:body><office:presentation>{slides}</office:presentation></office:body></office:document-content>"""
ODP_SLIDE = """<draw:page draw:name="slide{n}"><draw:frame svg:x="2cm" svg:y="2cm" svg:width="20cm" svg:height="3cm">
<draw:text-box><text:p>{text}</text:p></draw:text-box></draw:frame></draw:page>"""
ODP_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">
 <manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.presentation"/>
 <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"""


def make_odp(path: Path, slides: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as odp:
        odp.writestr("mimetype", "application/vnd.oasis.opendocument.presentation", zipfile.ZIP_STORED)
        odp.writestr("META-INF/manifest.xml", ODP_MANIFEST)
        body = "".join(ODP_SLIDE.format(n=n, text=text) for n, text in enumerate(slides, start=1))
        odp.writestr("content.xml", ODP_CONTENT.format(slides=body))
    return path


def convert(src: Path, workdir: Path, input_format: str, output_format: str, stem: str = "out") -> Path:
    conversion = converters.find(input_format, output_format)
    assert conversion is not None, f"{input_format} → {output_format} is not registered"
    workdir.mkdir(parents=True, exist_ok=True)
    [output] = conversion.run(
        src, workdir, output_format=output_format, options=converters.clean_options(conversion, {}), stem=stem
    )
    return output


def pdf_text(path: Path) -> tuple[int, str]:
    """Page count and text of a PDF, read back with pdfium."""
    with pdfium.PdfDocument(path) as document:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return len(document), "\n".join(texts)


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an unreaped zombie runs nothing


def wait_until_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small document per office format, each saying "Hello from ccweb"."""
    folder = tmp_path_factory.mktemp("office-samples")
    made = {
        "txt": folder / "sample.txt",
        "html": folder / "sample.html",
        "csv": folder / "sample.csv",
        "odp": make_odp(folder / "sample.odp", ["Hello from ccweb", "Second slide"]),
    }
    made["txt"].write_text("Hello from ccweb\nA plain text document.\n", encoding="utf-8")
    made["html"].write_text("<html><body><h1>Title</h1><p>Hello from ccweb</p></body></html>", encoding="utf-8")
    made["csv"].write_text("greeting,count\nHello from ccweb,42\n", encoding="utf-8")
    derived = {"txt": ["docx", "odt", "rtf", "doc"], "csv": ["xlsx", "xls", "ods"], "odp": ["pptx", "ppt"]}
    for source, targets in derived.items():
        for target in targets:
            made[target] = convert(made[source], folder, source, target, stem="sample")
    return made


@pytest.mark.parametrize("input_format", WRITER + CALC + IMPRESS)
def test_it_converts_every_office_format_to_pdf(samples: dict[str, Path], tmp_path: Path, input_format: str) -> None:
    output = convert(samples[input_format], tmp_path, input_format, "pdf")

    pages, text = pdf_text(output)
    assert output.name == "out.pdf"
    assert "Hello from ccweb" in text
    assert pages == (2 if input_format in IMPRESS else 1)


@pytest.mark.parametrize(
    ("input_format", "output_format"),
    [(a, b) for family in (WRITER, CALC, IMPRESS) for a in family for b in family if a != b],
)
def test_it_converts_between_formats_of_one_family(
    samples: dict[str, Path], tmp_path: Path, input_format: str, output_format: str
) -> None:
    output = convert(samples[input_format], tmp_path / "step", input_format, output_format)
    assert output.name == f"out.{output_format}"

    if output_format in ("txt", "html", "csv"):
        text = output.read_text(encoding="utf-8")
    else:
        _, text = pdf_text(convert(output, tmp_path / "check", output_format, "pdf"))
    assert "Hello from ccweb" in text


def test_it_does_not_cross_families() -> None:
    assert converters.find("docx", "xlsx") is None
    assert converters.find("pptx", "docx") is None
    assert converters.find("csv", "txt") is None


def test_it_lists_office_conversions_with_the_office_engine() -> None:
    listed = converters.find("docx", "pdf").as_api()

    assert listed == {
        "operation": "convert", "input_format": "docx", "output_format": "pdf", "engine": "office",
        "credits": 1, "meta": {"group": "document"},
    }
    assert converters.find("csv", "xlsx").as_api()["meta"] == {"group": "spreadsheet"}
    assert converters.find("docx", "pdf") in converters.available()


def test_it_flows_long_text_onto_several_pages(tmp_path: Path) -> None:
    src = tmp_path / "long.txt"
    src.write_text("\n".join(f"Line {n} of a long document" for n in range(1, 201)), encoding="utf-8")

    pages, text = pdf_text(convert(src, tmp_path, "txt", "pdf"))

    assert pages > 2
    assert "Line 200 of a long document" in text


def test_it_keeps_spreadsheet_cells(samples: dict[str, Path], tmp_path: Path) -> None:
    output = convert(samples["xlsx"], tmp_path, "xlsx", "csv")

    assert output.read_text(encoding="utf-8").splitlines() == ["greeting,count", "Hello from ccweb,42"]


@pytest.mark.parametrize(
    ("name", "content", "input_format"),
    [
        ("noise.docx", os.urandom(4000), "docx"),
        ("noise.pptx", os.urandom(4000), "pptx"),
        ("table.xlsx", b"a,b\n1,2\n", "xlsx"),
    ],
)
def test_it_reports_damaged_or_mislabelled_documents(
    tmp_path: Path, name: str, content: bytes, input_format: str
) -> None:
    src = tmp_path / name
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", input_format, "pdf")

    assert failure.value.code == "INVALID_FILE"
    assert failure.value.message.startswith(f"The file is not a valid {input_format.upper()} document")


def test_it_reports_a_document_of_the_wrong_family(samples: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "actually-a-text.xlsx"
    src.write_bytes(samples["docx"].read_bytes())

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "xlsx", "pdf")

    assert failure.value.code == "INVALID_FILE"


def test_it_reports_an_empty_document(tmp_path: Path) -> None:
    src = tmp_path / "empty.docx"
    src.write_bytes(b"")

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "docx", "pdf")

    assert failure.value.message == "The file is empty; upload a DOCX file with content."


def _request(samples: dict[str, Path], dest: Path) -> dict:
    return {
        "src": str(samples["docx"]), "dest": str(dest), "filter": "writer_pdf_Export",
        "service": office.TEXT, "forbid_filters": list(office.TEXT_FILTERS),
    }


def test_it_reuses_one_office_and_replaces_it_after_max_documents(samples: dict[str, Path], tmp_path: Path) -> None:
    pool = OfficePool(size=1, max_documents=2, timeout=60)
    try:
        assert pool.convert(_request(samples, tmp_path / "1.pdf"))["ok"]
        first = pool.processes[0].soffice_pid
        assert pool.convert(_request(samples, tmp_path / "2.pdf"))["ok"]  # the second and last for this office
        assert wait_until_gone(first)
        assert pool.convert(_request(samples, tmp_path / "3.pdf"))["ok"]
        assert pool.processes[0].soffice_pid not in (None, first)
        assert pool.convert(_request(samples, tmp_path / "4.pdf"))["ok"]
        assert pdf_text(tmp_path / "4.pdf")[0] == 1
    finally:
        pool.close()


def test_it_kills_a_hung_office_and_starts_a_fresh_one(samples: dict[str, Path], tmp_path: Path) -> None:
    pool = OfficePool(size=1, max_documents=10, timeout=60)
    try:
        assert pool.convert(_request(samples, tmp_path / "warm.pdf"))["ok"]
        process = pool.processes[0]
        soffice, bridge, profile = process.soffice_pid, process.pid, process.profile

        pool.timeout = 0.001  # no document converts this fast: it looks hung
        with pytest.raises(OfficeTimeout):
            pool.convert(_request(samples, tmp_path / "hung.pdf"))

        assert not is_running(bridge) and wait_until_gone(soffice)
        assert not profile.exists()  # a killed office may leave its profile locked
        pool.timeout = 60
        assert pool.convert(_request(samples, tmp_path / "after.pdf"))["ok"]
        assert process.soffice_pid != soffice
    finally:
        pool.close()


def test_it_replaces_an_office_that_died_while_idle(samples: dict[str, Path], tmp_path: Path) -> None:
    pool = OfficePool(size=1, timeout=60)
    try:
        assert pool.convert(_request(samples, tmp_path / "before.pdf"))["ok"]
        dead = pool.processes[0].soffice_pid
        os.kill(dead, signal.SIGKILL)
        assert wait_until_gone(dead)

        assert pool.convert(_request(samples, tmp_path / "after.pdf"))["ok"]
        assert pdf_text(tmp_path / "after.pdf")[0] == 1
    finally:
        pool.close()


def test_it_reports_a_timeout_as_a_sentence(
    samples: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = OfficePool(size=1, timeout=0.001)
    monkeypatch.setattr(office, "get_pool", lambda: pool)
    try:
        with pytest.raises(ConversionFailed) as failure:
            convert(samples["docx"], tmp_path, "docx", "pdf")
    finally:
        pool.close()

    assert failure.value.code == "TIMEOUT"
    assert failure.value.message == "The conversion took longer than 0.001 seconds and was stopped."


def test_it_leaves_no_process_behind_when_closed() -> None:
    pool = OfficePool(size=2, timeout=60)
    for process in pool.processes:
        process.start()
    pids = [pid for p in pool.processes for pid in (p.pid, p.soffice_pid)]
    profiles = [p.profile for p in pool.processes]
    assert all(is_running(pid) for pid in pids)

    pool.close()

    assert all(wait_until_gone(pid) for pid in pids)
    assert not any(profile.exists() for profile in profiles)


def test_it_leaves_no_process_behind_when_the_worker_is_killed(samples: dict[str, Path], tmp_path: Path) -> None:
    script = f"""
import json, os, signal, sys
from engine.converters import office
pool = office.OfficePool(size=1, timeout=60)
answer = pool.convert({_request(samples, tmp_path / "x.pdf")!r})
process = pool.processes[0]
print(json.dumps([answer["ok"], process.pid, process.soffice_pid, str(process.profile)]), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ccweb.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=MAIN_PROJECT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    ok, bridge, soffice, profile = json.loads(result.stdout)

    assert ok
    assert wait_until_gone(bridge) and wait_until_gone(soffice)
    deadline = time.monotonic() + 15
    while Path(profile).exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the bridge's sweeper removes it once soffice.bin has stopped writing
    assert not Path(profile).exists()
