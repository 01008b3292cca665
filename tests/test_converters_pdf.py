"""PDF conversions with pdfium, on real PDFs made here (Pillow, or written by hand for text)."""

import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions
from engine.converters.pdf import PAGES, PIXEL_DENSITY

COLORS = [(220, 20, 20), (20, 180, 20), (20, 20, 220), (200, 200, 0)]


def make_pdf(path: Path, pages: int = 3, size: tuple[int, int] = (144, 72)) -> Path:
    """A PDF whose page n is filled with COLORS[n-1]; at 72 dpi, `size` pixels are `size` points."""
    images = [Image.new("RGB", size, COLORS[n]) for n in range(pages)]
    images[0].save(path, "PDF", resolution=72.0, save_all=True, append_images=images[1:])
    return path


def make_text_pdf(path: Path, lines: list[str]) -> Path:
    """A PDF with one line of real (extractable) Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for line in lines:
        stream = f"BT /F1 18 Tf 20 40 Td ({line}) Tj ET".encode()
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents {len(objects)} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n{obj}\nendobj\n".encode()
    xref = f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010d} 00000 n \n" for o in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{len(body)}\n%%EOF\n"
    path.write_bytes(body + xref.encode() + trailer.encode())
    return path


def convert(src: Path, workdir: Path, output_format: str, **params) -> list[Path]:
    conversion = converters.find("pdf", output_format)
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    return conversion.run(src, workdir, output_format=output_format, options=options, stem="doc")


def test_it_renders_one_png_per_pdf_page(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "three.pdf", pages=3)

    outputs = convert(src, tmp_path / "out", "png")

    assert [p.name for p in outputs] == ["doc-1.png", "doc-2.png", "doc-3.png"]
    for output, color in zip(outputs, COLORS, strict=False):
        with Image.open(output) as img:
            assert img.format == "PNG"
            assert img.size == (300, 150)  # 2 × 1 inches at the default 150 dpi
            assert img.convert("RGB").getpixel((150, 75)) == pytest.approx(color, abs=3)


def test_it_renders_only_the_pages_asked_for(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "three.pdf", pages=3)

    outputs = convert(src, tmp_path / "out", "png", pages="2-3")

    assert [p.name for p in outputs] == ["doc-2.png", "doc-3.png"]
    with Image.open(outputs[0]) as img:
        assert img.convert("RGB").getpixel((10, 10)) == pytest.approx(COLORS[1], abs=3)


@pytest.mark.parametrize(
    ("pages", "expected"), [("1,3", [1, 3]), ("2-", [2, 3, 4]), (" 3 , 1-2 ", [1, 2, 3]), ("2,2", [2])]
)
def test_it_understands_page_ranges(tmp_path: Path, pages: str, expected: list[int]) -> None:
    src = make_pdf(tmp_path / "four.pdf", pages=4)

    outputs = convert(src, tmp_path / "out", "png", pages=pages)

    if len(expected) == 1:
        assert [p.name for p in outputs] == ["doc.png"]
    else:
        assert [p.name for p in outputs] == [f"doc-{n}.png" for n in expected]


def test_it_names_a_single_output_after_the_stem(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "one.pdf", pages=1)

    outputs = convert(src, tmp_path / "out", "jpg")

    assert [p.name for p in outputs] == ["doc.jpg"]
    with Image.open(outputs[0]) as img:
        assert img.format == "JPEG"


def test_it_changes_the_pixel_size_with_pixel_density(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "one.pdf", pages=1, size=(144, 72))

    [low] = convert(src, tmp_path / "low", "png", pixel_density=72)
    [high] = convert(src, tmp_path / "high", "jpg", pixel_density=300)

    with Image.open(low) as img:
        assert img.size == (144, 72)
    with Image.open(high) as img:
        assert img.size == (600, 300)


def test_it_reports_a_page_beyond_the_document(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "three.pdf", pages=3)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", pages="2-5")

    assert failure.value.message == "The document has 3 pages; page 5 does not exist."
    assert not list((tmp_path / "out").iterdir())


def test_it_reports_a_backwards_range_when_it_runs(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "three.pdf", pages=3)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", pages="3-1")

    assert "3-1" in failure.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pages": "one to three"}, "pages"),
        ({"pages": "1-3;5"}, "pages"),
        ({"pixel_density": 5}, "pixel_density"),
        ({"pixel_density": 1201}, "pixel_density"),
        ({"pixel_density": "150dpi"}, "pixel_density"),
    ],
)
def test_it_rejects_bad_option_values_by_field(params: dict, field: str) -> None:
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(converters.find("pdf", "png"), params)

    assert list(invalid.value.errors) == [field]


def test_it_shares_one_declaration_of_the_raster_options() -> None:
    rasters = [c for c in converters.available("convert") if c.input_format == "pdf" and c.group == "image"]

    assert {c.output_format for c in rasters} >= {"png", "jpg"}
    for conversion in rasters:
        assert conversion.options[:2] == (PAGES, PIXEL_DENSITY)
        assert conversion.options[0] is PAGES and conversion.options[1] is PIXEL_DENSITY


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty; upload a PDF file with content."),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "The PDF could not be opened: it is damaged or not a PDF."),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "The PDF could not be opened: it is damaged or not a PDF."),
    ],
    ids=["empty", "corrupt", "png-named-pdf"],
)
def test_it_reports_files_that_are_not_pdfs(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "bad.pdf"
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png")

    assert failure.value.code == "INVALID_FILE"
    assert failure.value.message == message


def test_it_refuses_to_render_a_page_too_large_for_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_pdf(tmp_path / "one.pdf", pages=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", pixel_density=600)

    assert "lower pixel_density" in failure.value.message


def test_it_extracts_the_text_of_each_page(tmp_path: Path) -> None:
    src = make_text_pdf(tmp_path / "text.pdf", ["Hello from page one", "And page two"])

    [out] = convert(src, tmp_path / "out", "txt")

    assert out.name == "doc.txt"
    assert out.read_text(encoding="utf-8") == "Hello from page one\n\nAnd page two\n"


def test_it_extracts_the_text_of_the_pages_asked_for(tmp_path: Path) -> None:
    src = make_text_pdf(tmp_path / "text.pdf", ["First", "Second", "Third"])

    [out] = convert(src, tmp_path / "out", "txt", pages="2-3")

    assert out.read_text(encoding="utf-8") == "Second\n\nThird\n"


def test_it_rebuilds_a_pdf_as_an_editable_docx(tmp_path: Path) -> None:
    src = make_text_pdf(tmp_path / "text.pdf", ["Hello from page one", "And page two"])

    [out] = convert(src, tmp_path / "out", "docx")

    assert out.name == "doc.docx"
    with zipfile.ZipFile(out) as docx:
        body = re.sub(r"<[^>]+>", "", docx.read("word/document.xml").decode())
    assert "Hello from page one" in body and "And page two" in body


def test_it_checks_the_pdf_before_rebuilding_it(tmp_path: Path) -> None:
    src = tmp_path / "bad.pdf"
    src.write_bytes(b"%PDF-1.7 nothing else")

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "docx")

    assert failure.value.message == "The PDF could not be opened: it is damaged or not a PDF."


def test_it_refuses_a_page_tree_that_loops_back_with_a_sentence(tmp_path: Path) -> None:
    from tests.test_engine_hostile_pdf import LOOPING_PDFS

    for name, content in LOOPING_PDFS.items():
        src = tmp_path / "loop.pdf"
        src.write_bytes(content)

        with pytest.raises(ConversionFailed) as failure:
            convert(src, tmp_path / "out", "png")

        assert failure.value.code == "INVALID_FILE", name
        assert failure.value.message.startswith("The PDF is damaged: its page tree")


def test_it_converts_a_page_whose_parent_chain_loops(tmp_path: Path) -> None:
    from tests.test_engine_hostile_pdf import PARENT_CYCLE

    src = tmp_path / "cycle.pdf"
    src.write_bytes(PARENT_CYCLE)

    (output,) = convert(src, tmp_path / "out", "png", pixel_density=72)

    # No MediaBox can be inherited through the cycle: pdfium falls back to US Letter.
    assert Image.open(output).size == (612, 792)


def test_the_page_tree_reader_sees_through_strings_comments_and_escaped_names() -> None:
    from engine.converters import pdf_tree
    from tests.test_engine_hostile_pdf import CATALOG, CONTENT, pdf

    page = "<< /Type /Page /Parent 2 0 R /Title (a \\) tricky (nested) >> string) /Id <3E3E> /Contents 4 0 R >>"
    pages = "<< /Type /Pages % [2 0 R]\n/K#69ds [3 0 R 5 0 R] /Count 2 >>"  # the comment hides a loop
    content = pdf({1: CATALOG, 2: pages, 3: page, 4: CONTENT, 5: page})

    assert pdf_tree.count_pages(content) == 2
    with pytest.raises(pdf_tree.UnreadableTree):
        pdf_tree.count_pages(b"%PDF-1.4\nnot a pdf at all\n")
    deep = page.replace("/Contents", "/Deep " + "[" * 10_000 + "]" * 10_000 + " /Contents")
    with pytest.raises(pdf_tree.UnreadableTree):  # not a RecursionError
        pdf_tree.count_pages(pdf({1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: deep, 4: CONTENT}))


def test_it_still_looks_every_page_up_when_the_tree_cannot_be_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.converters import pdf_tree
    from tests.test_engine_hostile_pdf import CATALOG, CONTENT, PAGE, pdf

    def unreadable(data: object) -> int:
        raise pdf_tree.UnreadableTree("syntax this reader does not know")

    monkeypatch.setattr(pdf_tree, "count_pages", unreadable)
    sound = tmp_path / "sound.pdf"
    sound.write_bytes(pdf({1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: PAGE, 4: CONTENT}))
    overclaiming = tmp_path / "overclaiming.pdf"
    overclaiming.write_bytes(pdf({1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R] /Count 3 >>", 3: PAGE, 4: CONTENT}))

    assert [p.name for p in convert(sound, tmp_path / "sound", "png")] == ["doc.png"]
    with pytest.raises(ConversionFailed) as failure:
        convert(overclaiming, tmp_path / "overclaiming", "png")
    assert failure.value.message.startswith("The PDF is damaged: page 2 cannot be found in its page tree")


def test_it_says_how_many_pages_a_tree_really_leads_to(tmp_path: Path) -> None:
    from tests.test_engine_hostile_pdf import CATALOG, CONTENT, PAGE, pdf

    src = tmp_path / "overclaiming.pdf"
    src.write_bytes(pdf({1: CATALOG, 2: "<< /Type /Pages /Kids [3 0 R] /Count 3 >>", 3: PAGE, 4: CONTENT}))

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png")

    assert failure.value.code == "INVALID_FILE"
    assert failure.value.message.startswith("The PDF is damaged: its page tree leads to 1 page, not the 3 it announces.")
