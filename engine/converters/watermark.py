"""The watermark operation: a line of text stamped on every page of a PDF, or on an image.

PDF pages get real text (pdfium text objects in an embedded DejaVu Sans, so any script prints and
the mark stays selectable and searchable), drawn above the page's content; images get the text
drawn by Pillow in the same font. Opacity is the text's alpha.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

import PIL
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw, ImageFont

from engine.converters import Conversion, ConversionFailed, Option, normalize_format
from engine.converters.image import LOSSY_OUTPUTS, PILLOW_FORMATS, QUALITY, normalize_mode, open_image, save_image
from engine.converters.pdf import ENGINE_VERSION as PDFIUM_VERSION
from engine.converters.pdf import PAGES, open_pdf, parse_pages
from engine.converters.tools import setting

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

TEXT = Option("text", "string", description="The text of the watermark (required).")
FONT_SIZE = Option(
    "font_size", "integer", default=40, minimum=4, maximum=1000,
    description="Text size: points on PDF pages, pixels on images.",
)
FONT_COLOR = Option(
    "font_color", "string", default="#000000", pattern=r"#?[0-9A-Fa-f]{6}",
    description='Text colour as hex RGB, such as "#cc0000".',
)
OPACITY = Option(
    "opacity", "integer", default=50, minimum=1, maximum=100,
    description="Opacity of the text in percent, from 1 (barely visible) to 100 (solid).",
)
POSITION_VERTICAL = Option("position_vertical", "enum", default="center", possible_values=("top", "center", "bottom"))
POSITION_HORIZONTAL = Option(
    "position_horizontal", "enum", default="center", possible_values=("left", "center", "right")
)
MARGIN_VERTICAL = Option(
    "margin_vertical", "integer", default=25, minimum=0, maximum=10000,
    description="Distance from the top or bottom edge (points on PDF pages, pixels on images).",
)
MARGIN_HORIZONTAL = Option(
    "margin_horizontal", "integer", default=25, minimum=0, maximum=10000,
    description="Distance from the left or right edge (points on PDF pages, pixels on images).",
)
COMMON_OPTIONS = (
    TEXT, FONT_SIZE, FONT_COLOR, OPACITY, POSITION_VERTICAL, POSITION_HORIZONTAL, MARGIN_VERTICAL, MARGIN_HORIZONTAL,
)


def check_options(options: dict) -> dict[str, list[str]]:
    if not options.get("text"):
        return {"text": ["text is required: the words to stamp on the file."]}
    return {}


def font_path() -> Path:
    path = Path(setting("ENGINE_WATERMARK_FONT", DEFAULT_FONT))
    if not path.is_file():
        raise ConversionFailed("CONVERSION_FAILED", "The watermark font is not installed on this engine.")
    return path


def _rgb(color: str) -> tuple[int, int, int]:
    digits = color.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


HORIZONTAL = {"left": "start", "center": "center", "right": "end"}
# PDF y grows upwards, image rows downwards: "top" is the end of one axis and the start of the other.
PDF_VERTICAL = {"bottom": "start", "center": "center", "top": "end"}
IMAGE_VERTICAL = {"top": "start", "center": "center", "bottom": "end"}


def _align(low: float, high: float, size: float, margin: float, where: str) -> float:
    """Where along one axis text of this size starts, to sit at its start, centre or end."""
    return {"start": low + margin, "center": (low + high - size) / 2, "end": high - margin - size}[where]


def watermark_pdf(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    font_data = font_path().read_bytes()
    red, green, blue = _rgb(options["font_color"])
    alpha = round(255 * options["opacity"] / 100)
    # FPDF_WIDESTRING: UTF-16LE, NUL-terminated.
    encoded = (options["text"] + "\0").encode("utf-16-le")
    text = ctypes.cast(ctypes.create_string_buffer(encoded, len(encoded)), ctypes.POINTER(ctypes.c_ushort))
    dest = workdir / f"{stem}.{output_format.lower()}"
    with open_pdf(src) as document:
        buffer = (ctypes.c_uint8 * len(font_data)).from_buffer_copy(font_data)
        # cid=True: a Unicode font, so text in any script the font covers is kept as written.
        font = pdfium_c.FPDFText_LoadFont(document.raw, buffer, len(font_data), pdfium_c.FPDF_FONT_TRUETYPE, True)
        if not font:
            raise ConversionFailed("CONVERSION_FAILED", "The watermark font could not be loaded.")
        try:
            for number in parse_pages(options.get("pages"), len(document)):
                page = document[number - 1]
                try:
                    _stamp_page(document, page, font, text, options, (red, green, blue, alpha))
                finally:
                    page.close()
            document.save(dest)
        finally:
            pdfium_c.FPDFFont_Close(font)
    return [dest]


def _stamp_page(
    document: pdfium.PdfDocument,
    page: pdfium.PdfPage,
    font: Any,  # FPDF_FONT
    text: Any,  # FPDF_WIDESTRING
    options: dict,
    rgba: tuple[int, int, int, int],
) -> None:
    stamp = pdfium_c.FPDFPageObj_CreateTextObj(document.raw, font, float(options["font_size"]))
    pdfium_c.FPDFText_SetText(stamp, text)
    pdfium_c.FPDFPageObj_SetFillColor(stamp, *rgba)
    bounds = [ctypes.c_float() for _ in range(4)]
    pdfium_c.FPDFPageObj_GetBounds(stamp, *(ctypes.byref(b) for b in bounds))
    left, low, right, high = (b.value for b in bounds)
    # The visible area is the crop box, which need not start at (0, 0).
    box_left, box_low, box_right, box_high = page.get_cropbox()
    horizontal = HORIZONTAL[options["position_horizontal"]]
    x = _align(box_left, box_right, right - left, options["margin_horizontal"], horizontal)
    y = _align(box_low, box_high, high - low, options["margin_vertical"], PDF_VERTICAL[options["position_vertical"]])
    pdfium_c.FPDFPageObj_Transform(stamp, 1, 0, 0, 1, x - left, y - low)
    pdfium_c.FPDFPage_InsertObject(page.raw, stamp)  # the page owns the object from here on
    if not pdfium_c.FPDFPage_GenerateContent(page.raw):
        raise ConversionFailed("CONVERSION_FAILED", "The watermark could not be written into the PDF.")


def watermark_image(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    target = normalize_format(output_format)
    img = open_image(src, input_format).convert("RGBA")
    font = ImageFont.truetype(str(font_path()), options["font_size"])
    left, top, right, bottom = font.getbbox(options["text"])
    x = _align(0, img.width, right - left, options["margin_horizontal"], HORIZONTAL[options["position_horizontal"]])
    y = _align(0, img.height, bottom - top, options["margin_vertical"], IMAGE_VERTICAL[options["position_vertical"]])
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    alpha = round(255 * options["opacity"] / 100)
    colour = (*_rgb(options["font_color"]), alpha)
    ImageDraw.Draw(layer).text((x - left, y - top), options["text"], font=font, fill=colour)
    stamped = Image.alpha_composite(img, layer)
    dest = workdir / f"{stem}.{output_format.lower()}"
    save_image(normalize_mode(stamped, target), dest, target, options)
    return [dest]


def _conversion(fmt: str) -> Conversion:
    if fmt == "pdf":
        engine, version, options, run = "pdfium", PDFIUM_VERSION, (*COMMON_OPTIONS, PAGES), watermark_pdf
    else:
        engine, version, run = "pillow", PIL.__version__, functools.partial(watermark_image, input_format=fmt)
        options = (*COMMON_OPTIONS, *((QUALITY,) if fmt in LOSSY_OUTPUTS else ()))
    return Conversion(
        operation="watermark",
        input_format=fmt,
        output_format=fmt,
        engine=engine,
        engine_version=version,
        group="document" if fmt == "pdf" else "image",
        options=options,
        run=run,
        check=check_options,
    )


CONVERSIONS: list[Conversion] = [_conversion(fmt) for fmt in ("pdf", *PILLOW_FORMATS)]
