"""The watermark operation: a line of text and/or a picture stamped on every page of a PDF, or on an image.

PDF pages get real text (pdfium text objects in an embedded DejaVu Sans, so any script prints and
the mark stays selectable and searchable) and the picture as an image object, so the page stays
vector; both are drawn above the page's content. Images get the text drawn by Pillow in the same
font and the picture laid over them. Opacity is the text's alpha and scales the picture's alpha.

The picture is the file of another task (named by the `image` option); the worker hands its local
copy to the run functions as `picture`.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import PIL
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw, ImageFont

from engine.converters import Conversion, ConversionFailed, Option, normalize_format
from engine.converters.image import (
    LOSSY_OUTPUTS,
    MAX_DIMENSION,
    PILLOW_FORMATS,
    QUALITY,
    normalize_mode,
    open_image,
    save_image,
)
from engine.converters.pdf import ENGINE_VERSION as PDFIUM_VERSION
from engine.converters.pdf import PAGES, open_pdf, parse_pages
from engine.converters.tools import setting

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

TEXT = Option("text", "string", description="The text of the watermark; give text, image or both.")
IMAGE = Option(
    "image", "string",
    description=(
        "The task (its name in a job, its id otherwise) whose file is stamped as a picture, such as "
        "an imported PNG or JPG logo; give text, image or both."
    ),
)
IMAGE_WIDTH = Option(
    "image_width", "integer", minimum=1, maximum=MAX_DIMENSION,
    description=(
        "Width of the picture: points on PDF pages, pixels on images. The height follows the aspect "
        "ratio unless image_height is given; the picture's own size (a point per pixel) when neither is."
    ),
)
IMAGE_HEIGHT = Option(
    "image_height", "integer", minimum=1, maximum=MAX_DIMENSION,
    description="Height of the picture: points on PDF pages, pixels on images.",
)
IMAGE_WIDTH_PERCENT = Option(
    "image_width_percent", "integer", minimum=1, maximum=100,
    description="Width of the picture in percent of the page or image width, instead of image_width.",
)
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
    description="Opacity of the text and picture in percent, from 1 (barely visible) to 100 (solid).",
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
    TEXT, FONT_SIZE, FONT_COLOR, IMAGE, IMAGE_WIDTH, IMAGE_HEIGHT, IMAGE_WIDTH_PERCENT, OPACITY,
    POSITION_VERTICAL, POSITION_HORIZONTAL, MARGIN_VERTICAL, MARGIN_HORIZONTAL,
)
NOT_A_PICTURE = (
    "The watermark image is not a valid picture; import a PNG, JPG, WebP, GIF, BMP or TIFF file "
    "named with its extension."
)


def check_options(options: dict) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not options.get("text") and not options.get("image"):
        errors["text"] = ["text or image is required: the words to stamp, or the task whose picture to stamp."]
    if options.get("image_width") and options.get("image_width_percent"):
        errors["image_width_percent"] = ["Give image_width or image_width_percent, not both."]
    return errors


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
    """Where along one axis a mark of this size starts, to sit at its start, centre or end."""
    return {"start": low + margin, "center": (low + high - size) / 2, "end": high - margin - size}[where]


def open_picture(path: Path, opacity: int) -> Image.Image:
    """The watermark's picture as RGBA, its alpha scaled by the opacity (percent)."""
    fmt = normalize_format(path.suffix)
    try:
        if fmt not in PILLOW_FORMATS:
            raise ConversionFailed("INVALID_FILE", NOT_A_PICTURE)
        picture = open_image(path, fmt).convert("RGBA")
    except ConversionFailed:
        raise ConversionFailed("INVALID_FILE", NOT_A_PICTURE) from None
    if opacity < 100:
        picture.putalpha(picture.getchannel("A").point(lambda value: round(value * opacity / 100)))
    return picture


def picture_size(natural: tuple[int, int], area_width: float, options: dict) -> tuple[float, float]:
    """The stamped picture's width and height (points or pixels), keeping its aspect ratio unless
    both are given; a point or pixel per picture pixel when neither is."""
    natural_width, natural_height = natural
    width = (
        area_width * options["image_width_percent"] / 100
        if options.get("image_width_percent")
        else options.get("image_width")
    )
    height = options.get("image_height")
    if width and height:
        return width, height
    if width:
        return width, natural_height * width / natural_width
    if height:
        return natural_width * height / natural_height, height
    return float(natural_width), float(natural_height)


@contextmanager
def _pdf_font(document: pdfium.PdfDocument) -> Iterator[Any]:
    """The watermark font embedded in the document (an FPDF_FONT), closed afterwards."""
    font_data = font_path().read_bytes()
    buffer = (ctypes.c_uint8 * len(font_data)).from_buffer_copy(font_data)
    # cid=True: a Unicode font, so text in any script the font covers is kept as written.
    font = pdfium_c.FPDFText_LoadFont(document.raw, buffer, len(font_data), pdfium_c.FPDF_FONT_TRUETYPE, True)
    if not font:
        raise ConversionFailed("CONVERSION_FAILED", "The watermark font could not be loaded.")
    try:
        yield font
    finally:
        pdfium_c.FPDFFont_Close(font)


def watermark_pdf(
    src: Path, workdir: Path, *, output_format: str, options: dict, stem: str, picture: Path | None = None
) -> list[Path]:
    red, green, blue = _rgb(options["font_color"])
    alpha = round(255 * options["opacity"] / 100)
    # FPDF_WIDESTRING: UTF-16LE, NUL-terminated.
    encoded = (options["text"] + "\0").encode("utf-16-le") if options["text"] else b""
    text = ctypes.cast(ctypes.create_string_buffer(encoded, len(encoded)), ctypes.POINTER(ctypes.c_ushort))
    bitmap = _pdf_bitmap(open_picture(picture, options["opacity"])) if picture is not None else None
    dest = workdir / f"{stem}.{output_format.lower()}"
    with open_pdf(src) as document, ExitStack() as cleanup:
        font = cleanup.enter_context(_pdf_font(document)) if options["text"] else None
        for number in parse_pages(options.get("pages"), len(document)):
            page = document[number - 1]
            try:
                if bitmap is not None:
                    _place_picture(document, page, bitmap, options)
                if font is not None:
                    _place_text(document, page, font, text, options, (red, green, blue, alpha))
                if not pdfium_c.FPDFPage_GenerateContent(page.raw):
                    raise ConversionFailed("CONVERSION_FAILED", "The watermark could not be written into the PDF.")
            finally:
                page.close()
        document.save(dest)
    return [dest]


def _pdf_bitmap(picture: Image.Image) -> pdfium.PdfBitmap:
    """The picture as a pdfium bitmap: BGRA keeps its transparency (as a soft mask once embedded),
    BGR when it has none, which keeps the PDF smaller."""
    if picture.getchannel("A").getextrema() == (255, 255):
        picture = picture.convert("RGB")
    return pdfium.PdfBitmap.from_pil(picture)


def _place_picture(
    document: pdfium.PdfDocument, page: pdfium.PdfPage, bitmap: pdfium.PdfBitmap, options: dict
) -> None:
    # An image object is drawn into the unit square its matrix maps onto the page.
    box_left, box_low, box_right, box_high = page.get_cropbox()
    width, height = picture_size((bitmap.width, bitmap.height), box_right - box_left, options)
    x = _align(box_left, box_right, width, options["margin_horizontal"], HORIZONTAL[options["position_horizontal"]])
    y = _align(box_low, box_high, height, options["margin_vertical"], PDF_VERTICAL[options["position_vertical"]])
    # One image object per page: a page owns its objects, so they cannot be shared.
    stamp = pdfium.PdfImage.new(document)
    stamp.set_bitmap(bitmap)
    stamp.set_matrix(pdfium.PdfMatrix(width, 0, 0, height, x, y))
    page.insert_obj(stamp)


def _place_text(
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


def watermark_image(
    src: Path,
    workdir: Path,
    *,
    input_format: str,
    output_format: str,
    options: dict,
    stem: str,
    picture: Path | None = None,
) -> list[Path]:
    target = normalize_format(output_format)
    stamped = open_image(src, input_format).convert("RGBA")
    if picture is not None:
        layer = _picture_layer(stamped.size, open_picture(picture, options["opacity"]), options)
        stamped = Image.alpha_composite(stamped, layer)
    if options["text"]:
        stamped = Image.alpha_composite(stamped, _text_layer(stamped.size, options))
    dest = workdir / f"{stem}.{output_format.lower()}"
    save_image(normalize_mode(stamped, target), dest, target, options)
    return [dest]


def _picture_layer(size: tuple[int, int], picture: Image.Image, options: dict) -> Image.Image:
    width, height = (max(1, round(side)) for side in picture_size(picture.size, size[0], options))
    if width * height > Image.MAX_IMAGE_PIXELS:
        raise ConversionFailed(
            "INVALID_OPTIONS",
            f"A {width}×{height} pixel watermark image is too large; ask for a smaller image_width or image_height.",
        )
    x = _align(0, size[0], width, options["margin_horizontal"], HORIZONTAL[options["position_horizontal"]])
    y = _align(0, size[1], height, options["margin_vertical"], IMAGE_VERTICAL[options["position_vertical"]])
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    # paste, not alpha_composite: it clips a picture reaching past the edges (even a negative offset).
    layer.paste(picture.resize((width, height), Image.Resampling.LANCZOS), (round(x), round(y)))
    return layer


def _text_layer(size: tuple[int, int], options: dict) -> Image.Image:
    font = ImageFont.truetype(str(font_path()), options["font_size"])
    left, top, right, bottom = font.getbbox(options["text"])
    x = _align(0, size[0], right - left, options["margin_horizontal"], HORIZONTAL[options["position_horizontal"]])
    y = _align(0, size[1], bottom - top, options["margin_vertical"], IMAGE_VERTICAL[options["position_vertical"]])
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    alpha = round(255 * options["opacity"] / 100)
    colour = (*_rgb(options["font_color"]), alpha)
    ImageDraw.Draw(layer).text((x - left, y - top), options["text"], font=font, fill=colour)
    return layer


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
