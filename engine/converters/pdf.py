"""PDF with pdfium (pypdfium2): pages → png/jpg images, and pdf → txt."""

from __future__ import annotations

import logging
import mmap
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, pdf_tree, require_content
from engine.converters.image import QUALITY, save_image
from engine.converters.office import installed as office_installed
from engine.converters.office import office_convert, office_version

logger = logging.getLogger(__name__)

ENGINE_VERSION = pdfium.version.PYPDFIUM_INFO.version

_RANGE = r"\d+\s*(?:-\s*\d*)?"
PAGES = Option(
    "pages", "string", default=None, pattern=rf"\s*{_RANGE}\s*(?:,\s*{_RANGE}\s*)*",
    description='Pages to convert, such as "1-3,5" or "2-"; all pages when empty.',
)
PIXEL_DENSITY = Option(
    "pixel_density", "integer", default=150, minimum=10, maximum=1200,
    description="Resolution of the rendered pages in dots per inch.",
)
# Declared once: every pdf → image conversion takes exactly these (plus quality for lossy outputs).
RASTER_OPTIONS = (PAGES, PIXEL_DENSITY)

POINTS_PER_INCH = 72


def parse_pages(spec: str | None, page_count: int) -> list[int]:
    """The 1-based page numbers a range such as "1-3,5" or "4-" selects, in document order."""
    if not spec or not spec.strip():
        return list(range(1, page_count + 1))
    selected: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(-\s*(\d*))?\s*", part)
        if not match:
            raise ConversionFailed(
                "INVALID_PAGE_RANGE", f'"{spec}" is not a page range; write pages like "1-3,5".'
            )
        first = int(match[1])
        last = (int(match[3]) if match[3] else page_count) if match[2] else first
        if first < 1 or last < first:
            raise ConversionFailed(
                "INVALID_PAGE_RANGE", f'"{part.strip()}" is not a valid page range; pages count from 1 upwards.'
            )
        if last > page_count:
            pages = "page" if page_count == 1 else "pages"
            raise ConversionFailed(
                "INVALID_PAGE_RANGE",
                f"The document has {page_count} {pages}; page {last} does not exist.",
            )
        selected.update(range(first, last + 1))
    return sorted(selected)


def _tree_failure(problem: str) -> ConversionFailed:
    return ConversionFailed(
        "INVALID_FILE",
        f"The PDF is damaged: {problem}. Repair the file (for example by printing it to a new PDF) "
        "and upload it again.",
    )


def _walk_tree(document: pdfium.PdfDocument, src: Path) -> None:
    """pdf_tree's walk over pdfium's plain re-serialisation of the document (what pdfium sees,
    object streams unpacked, in one xref table), written next to the input and read in place."""
    with tempfile.TemporaryFile(dir=src.parent) as copy:
        try:
            document.save(copy)
        except pdfium.PdfiumError:
            logger.warning("pdfium could not re-save %s; its page tree is not walked", src.name)
            return
        copy.flush()
        with mmap.mmap(copy.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                pages = pdf_tree.count_pages(data)
            except pdf_tree.BrokenTree as error:
                if error.reason == "depth":
                    raise _tree_failure(f"its page tree is nested more than {pdf_tree.MAX_DEPTH} levels deep") from None
                raise _tree_failure("its page tree loops back on itself or lists one branch twice") from None
            except pdf_tree.UnreadableTree as error:
                logger.warning("Page tree of %s not walked (%s); pdfium's page lookups still run", src.name, error)
                return
    if pages < len(document):
        found = "1 page" if pages == 1 else f"{pages} pages"
        raise _tree_failure(f"its page tree leads to {found}, not the {len(document)} it announces")


def check_page_tree(document: pdfium.PdfDocument, src: Path) -> None:
    """Refuse (INVALID_FILE) a document whose page tree loops or does not lead to every page it counts.

    Tried on hand-made files (tests/test_engine_hostile_pdf.py): pdfium neither crashes nor hangs on
    a looping tree, but walks the loop again and again (a 12 KB file passes for a million copies of
    one page, each lookup slower than the last) or fails to find the pages /Count promised, which
    every reader (render, text, thumbnail, watermark, merge, metadata) met as an unexplained error;
    Ghostscript (optimize) segfaults on a tree 100 000 levels deep. So the tree is walked first, then each page
    is looked up once (its dictionary only, not its content)."""
    _walk_tree(document, src)
    size = pdfium_c.FS_SIZEF()
    for index in range(len(document)):
        if not pdfium_c.FPDF_GetPageSizeByIndexF(document.raw, index, size):
            raise _tree_failure(f"page {index + 1} cannot be found in its page tree")


@contextmanager
def open_pdf(src: Path) -> Iterator[pdfium.PdfDocument]:
    """The opened document, its page tree checked, closed afterwards (worker processes live long;
    pdfium memory is native)."""
    require_content(src, "PDF")
    try:
        document = pdfium.PdfDocument(src)
    except pdfium.PdfiumError as error:
        if error.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            message = "The PDF is protected by a password; remove the protection and upload it again."
        else:
            message = "The PDF could not be opened: it is damaged or not a PDF."
        raise ConversionFailed("INVALID_FILE", message) from None
    try:
        if len(document) == 0:
            raise ConversionFailed("INVALID_FILE", "The PDF has no pages.")
        check_page_tree(document, src)
        yield document
    finally:
        document.close()


def _output_name(stem: str, ext: str, page: int, count: int) -> str:
    # Named by page number, so "report-5.png" is page 5 whatever range was asked for.
    return f"{stem}.{ext}" if count == 1 else f"{stem}-{page}.{ext}"


def render_pdf(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    """One image per selected page, rendered at pixel_density dpi on a white background."""
    target = normalize_format(output_format)
    dpi = options.get("pixel_density") or PIXEL_DENSITY.default
    scale = dpi / POINTS_PER_INCH
    outputs: list[Path] = []
    with open_pdf(src) as document:
        pages = parse_pages(options.get("pages"), len(document))
        for number in pages:
            page = document[number - 1]
            try:
                width, height = page.get_size()
                if width * scale * height * scale > Image.MAX_IMAGE_PIXELS:
                    raise ConversionFailed(
                        "INVALID_OPTIONS",
                        f"Page {number} would be too large at {dpi} dpi; lower pixel_density.",
                    )
                # rev_byteorder gives RGB directly, so Pillow wraps the buffer without a copy.
                bitmap = page.render(scale=scale, rev_byteorder=True)
                image = bitmap.to_pil()
                image.info["dpi"] = (dpi, dpi)
                dest = workdir / _output_name(stem, output_format.lower(), number, len(pages))
                save_image(image, dest, target, options)
                bitmap.close()
            finally:
                page.close()
            outputs.append(dest)
    return outputs


def extract_text(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    """The text layer of the selected pages as UTF-8, a blank line between pages; scans give nothing."""
    chunks: list[str] = []
    with open_pdf(src) as document:
        for number in parse_pages(options.get("pages"), len(document)):
            page = document[number - 1]
            textpage = page.get_textpage()
            try:
                chunks.append(textpage.get_text_bounded().replace("\r\n", "\n").strip())
            finally:
                textpage.close()
                page.close()
    dest = workdir / f"{stem}.{output_format.lower()}"
    dest.write_text("\n\n".join(chunks) + "\n", encoding="utf-8")
    return [dest]


def pdf_to_document(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    """An editable document rebuilt by LibreOffice's PDF import (text boxes placed as on the page)."""
    with open_pdf(src):
        pass  # pdfium's verdict on damaged files is quicker and clearer than LibreOffice's
    dest = workdir / f"{stem}.{output_format.lower()}"
    target = normalize_format(output_format)
    return [office_convert(src, dest, input_format="pdf", output_format=target, import_filter="writer_pdf_import")]


def _conversion(output_format: str, group: str, options: tuple[Option, ...], run: Any) -> Conversion:
    return Conversion(
        operation="convert",
        input_format="pdf",
        output_format=output_format,
        engine="pdfium",
        engine_version=ENGINE_VERSION,
        group=group,
        options=options,
        run=run,
    )


CONVERSIONS: list[Conversion] = [
    _conversion("png", "image", RASTER_OPTIONS, render_pdf),
    _conversion("jpg", "image", (*RASTER_OPTIONS, QUALITY), render_pdf),
    _conversion("txt", "document", (PAGES,), extract_text),
    Conversion(
        operation="convert",
        input_format="pdf",
        output_format="docx",
        engine="office",
        engine_version=office_version(),
        group="document",
        options=(),
        run=pdf_to_document,
        is_installed=office_installed,
    ),
]
