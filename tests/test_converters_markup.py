"""Markdown and HTML with pandoc (and Chromium for PDF), on documents written here, outputs opened again."""

import time
import zipfile
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions
from tests.files import png_bytes

MARKDOWN = """# Quarterly report

Sales went **up** this quarter.

| region | sales |
|--------|-------|
| north  | 42    |

- [x] done
- [ ] later
"""


def convert(src: Path, workdir: Path, input_format: str, output_format: str, **params) -> Path:
    conversion = converters.find(input_format, output_format)
    assert conversion is not None, f"{input_format} → {output_format} is not registered"
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    [out] = conversion.run(src, workdir, output_format=output_format, options=options, stem="report")
    assert out.name == f"report.{output_format}"
    assert sorted(p.name for p in workdir.iterdir()) == [out.name]  # no helper file left beside it
    return out


def pdf_text(path: Path) -> str:
    with pdfium.PdfDocument(path) as document:
        return "\n".join(document[i].get_textpage().get_text_bounded() for i in range(len(document)))


@pytest.fixture
def markdown(tmp_path: Path) -> Path:
    src = tmp_path / "report.md"
    src.write_text(MARKDOWN, encoding="utf-8")
    return src


def test_it_turns_markdown_into_a_standalone_html_page(tmp_path: Path, markdown: Path) -> None:
    html = convert(markdown, tmp_path / "out", "md", "html").read_text(encoding="utf-8")

    assert html.startswith("<!DOCTYPE html>")
    assert "<title>report</title>" in html
    assert '<h1 id="quarterly-report">Quarterly report</h1>' in html
    assert "<strong>up</strong>" in html
    assert "<table>" in html and 'type="checkbox"' in html  # GitHub tables and task lists


def test_it_turns_markdown_into_a_word_document(tmp_path: Path, markdown: Path) -> None:
    out = convert(markdown, tmp_path / "out", "md", "docx")

    with zipfile.ZipFile(out) as docx:
        body = docx.read("word/document.xml").decode()
    assert "Quarterly report" in body
    assert "<w:tbl>" in body
    assert "north" in body


@pytest.mark.parametrize("input_format", ["md", "html"])
def test_it_makes_an_epub_book(tmp_path: Path, markdown: Path, input_format: str) -> None:
    src = markdown
    if input_format == "html":
        src = tmp_path / "report.html"
        src.write_text("<html><head><title>Field notes</title></head><body><h1>Day one</h1><p>Rain.</p></body></html>")

    out = convert(src, tmp_path / "out", input_format, "epub")

    with zipfile.ZipFile(out) as epub:
        assert epub.read("mimetype") == b"application/epub+zip"
        opf = epub.read("EPUB/content.opf").decode()
        chapters = "".join(epub.read(n).decode() for n in epub.namelist() if n.startswith("EPUB/text/ch"))
    if input_format == "md":
        assert "<dc:title id=\"epub-title-1\">report</dc:title>" in opf
        assert "Quarterly report" in chapters
    else:
        assert "Field notes" in opf
        assert "Day one" in chapters and "Rain." in chapters


def test_it_lays_markdown_out_as_a_pdf(tmp_path: Path, markdown: Path) -> None:
    a4 = convert(markdown, tmp_path / "a4", "md", "pdf")
    letter = convert(markdown, tmp_path / "letter", "md", "pdf", page_size="letter")

    text = pdf_text(a4)
    assert "Quarterly report" in text and "north" in text
    with pdfium.PdfDocument(a4) as document:
        assert len(document) == 1
        assert document[0].get_size() == pytest.approx((595, 842), abs=1.5)
    with pdfium.PdfDocument(letter) as document:
        assert document[0].get_size() == pytest.approx((612, 792), abs=1.5)


def test_it_fetches_nothing_a_document_points_to(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_bytes())
    src = tmp_path / "nosy.md"
    src.write_text(
        "# Nosy\n\n"
        f"![local picture]({picture})\n\n![remote picture](http://127.0.0.1:9/x.png)\n\n"
        f'<iframe src="file://{secret}"></iframe>\n<object data="file://{secret}"></object>\n'
        f'<meta http-equiv="refresh" content="0;url=file://{secret}">\n<img src="{picture}">\n',
        encoding="utf-8",
    )

    pdf = convert(src, tmp_path / "pdf", "md", "pdf")
    docx = convert(src, tmp_path / "docx", "md", "docx")
    epub = convert(src, tmp_path / "epub", "md", "epub")

    assert "Nosy" in pdf_text(pdf) and "TOP-SECRET" not in pdf_text(pdf)
    for book in (docx, epub):
        with zipfile.ZipFile(book) as archive:
            assert not [n for n in archive.namelist() if "media" in n]
            text = "".join(archive.read(n).decode(errors="replace") for n in archive.namelist())
        assert "local picture" in text  # the description stands in for the picture
        assert "TOP-SECRET" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty; upload a Markdown file with content."),
        (png_bytes(), "The file is not a UTF-8 text file; save the Markdown as UTF-8 and upload it again."),
        ("Résumé".encode("latin-1"), "The file is not a UTF-8 text file; save the Markdown as UTF-8 and upload it "
                                     "again."),
        (b"# title\0\0\0", "The file is not a Markdown text file: it holds binary data."),
    ],
)
def test_it_refuses_what_is_not_markdown_text(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "notes.md"
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as error:
        convert(src, tmp_path / "out", "md", "docx")

    assert error.value.code == "INVALID_FILE"
    assert error.value.message == message


def test_it_rejects_an_unknown_paper_size() -> None:
    with pytest.raises(InvalidOptions) as error:
        converters.clean_options(converters.find("md", "pdf"), {"page_size": "napkin"})

    assert list(error.value.errors) == ["page_size"]


def test_it_lists_markup_conversions_and_leaves_html_to_pdf_to_libreoffice() -> None:
    listed = {(c.input_format, c.output_format): c for c in converters.available("convert")}

    assert {("md", "html"), ("md", "pdf"), ("md", "docx"), ("md", "epub"), ("html", "epub")} <= set(listed)
    assert listed[("md", "docx")].engine == "pandoc" and listed[("md", "docx")].engine_version
    assert converters.find("html", "pdf").engine == "office"


def _chromium_processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"ccweb-chromium-" in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def test_it_stops_chromium_at_the_timeout_and_leaves_no_process(tmp_path: Path, markdown: Path, settings) -> None:
    settings.ENGINE_TOOL_TIMEOUT = 0.3  # pandoc makes the page in time; Chromium cannot start that fast

    with pytest.raises(ConversionFailed) as error:
        convert(markdown, tmp_path / "out", "md", "pdf")

    assert error.value.code == "TIMEOUT"
    assert error.value.message == "The conversion took longer than 0.3 seconds and was stopped."
    deadline = time.monotonic() + 5
    while _chromium_processes() and time.monotonic() < deadline:
        time.sleep(0.05)  # killed at once; /proc may list them until they are reaped
    assert _chromium_processes() == []
