"""The thumbnail operation: a small png, jpg or webp picture of an image, or of a PDF's first page."""

from __future__ import annotations

import functools
from pathlib import Path

import PIL
from PIL import Image, ImageOps

from engine.converters import Conversion, Option, normalize_format
from engine.converters.image import PILLOW_FORMATS, QUALITY, normalize_mode, open_image, save_image
from engine.converters.pdf import ENGINE_VERSION as PDFIUM_VERSION
from engine.converters.pdf import POINTS_PER_INCH, open_pdf

OUTPUTS = ("png", "jpg", "webp")
DEFAULT_SIDE = 256
MAX_SIDE = 4096
# Pages are rendered no finer than this, however large a thumbnail of a tiny page is asked for.
MAX_RENDER_DPI = 600

WIDTH = Option(
    "width", "integer", minimum=1, maximum=MAX_SIDE,
    description=f"Thumbnail width in pixels; without width and height it fits in {DEFAULT_SIDE}×{DEFAULT_SIDE}.",
)
HEIGHT = Option(
    "height", "integer", minimum=1, maximum=MAX_SIDE,
    description=f"Thumbnail height in pixels; without width and height it fits in {DEFAULT_SIDE}×{DEFAULT_SIDE}.",
)
FIT = Option(
    "fit", "enum", default="max", possible_values=("max", "crop", "scale"),
    description=(
        "max fits the picture inside width × height, crop fills exactly that size and cuts off what sticks out, "
        "scale stretches it to exactly that size."
    ),
)


def target_size(size: tuple[int, int], options: dict) -> tuple[int, int]:
    """The thumbnail's size in pixels; a missing side follows the picture's proportions."""
    width, height = size
    want_w, want_h = options.get("width"), options.get("height")
    if not want_w and not want_h:
        want_w = want_h = DEFAULT_SIDE
    fit = options.get("fit") or "max"
    if fit == "max" or not (want_w and want_h):
        ratio = min(r for r in (want_w and want_w / width, want_h and want_h / height) if r)
        if fit == "max":
            ratio = min(ratio, 1.0)  # a thumbnail never enlarges a small picture
        return max(1, round(width * ratio)), max(1, round(height * ratio))
    return want_w, want_h


def make_thumbnail(img: Image.Image, options: dict) -> Image.Image:
    size = target_size(img.size, options)
    if options.get("fit") == "crop":
        return ImageOps.fit(img, size, Image.Resampling.LANCZOS)
    return img.resize(size, Image.Resampling.LANCZOS) if size != img.size else img


def first_page(src: Path, options: dict) -> Image.Image:
    """Page 1, rendered just fine enough for the thumbnail, on white."""
    with open_pdf(src) as document:
        page = document[0]
        try:
            width, height = page.get_size()
            want_w, want_h = target_size((round(width), round(height)), {**options, "fit": "scale"})
            scale = min(max(want_w / width, want_h / height), MAX_RENDER_DPI / POINTS_PER_INCH)
            bitmap = page.render(scale=scale, rev_byteorder=True)
            image = bitmap.to_pil().copy()  # the bitmap's buffer is freed below
            bitmap.close()
        finally:
            page.close()
    return image


def thumbnail(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    target = normalize_format(output_format)
    img = first_page(src, options) if input_format == "pdf" else open_image(src, input_format)
    img = make_thumbnail(normalize_mode(img, target), options)
    dest = workdir / f"{stem}.{output_format.lower()}"
    save_image(img, dest, target, options)
    return [dest]


def _conversion(input_format: str, output_format: str) -> Conversion:
    return Conversion(
        operation="thumbnail",
        input_format=input_format,
        output_format=output_format,
        engine="pdfium" if input_format == "pdf" else "pillow",
        engine_version=PDFIUM_VERSION if input_format == "pdf" else PIL.__version__,
        group="image",
        options=(WIDTH, HEIGHT, FIT, *((QUALITY,) if output_format != "png" else ())),
        run=functools.partial(thumbnail, input_format=input_format),
    )


CONVERSIONS: list[Conversion] = [
    _conversion(source, target) for source in [*PILLOW_FORMATS, "pdf"] for target in OUTPUTS
]
