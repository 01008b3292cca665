"""SVG drawings with librsvg's rsvg-convert: svg → png, jpg, webp (through Pillow) and pdf (vectors kept).

The drawing is piped in on stdin: librsvg then has no folder to resolve references against and loads
no file the SVG names, so an uploaded drawing cannot pull the server's files into its output
(given a path, it would read any file beside or below it).
"""

from __future__ import annotations

import functools
import io
import logging
import shutil
from pathlib import Path

from PIL import Image

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, require_content
from engine.converters.image import QUALITY, normalize_mode, save_image
from engine.converters.tools import run_tool, tool_timeout, version_line

logger = logging.getLogger(__name__)

# Each side of the picture, in pixels: 8192² RGBA pixels is 256 MiB, the most one drawing may take.
MAX_SIDE = 8192
WIDTH = Option(
    "width", "integer", minimum=1, maximum=MAX_SIDE,
    description="Output width in pixels; the height follows the drawing's proportions unless also given.",
)
HEIGHT = Option(
    "height", "integer", minimum=1, maximum=MAX_SIDE,
    description="Output height in pixels; the width follows the drawing's proportions unless also given.",
)
RASTER_OUTPUTS = ("png", "jpg", "webp")


@functools.cache
def installed() -> bool:
    return bool(shutil.which("rsvg-convert"))


@functools.cache
def rsvg_version() -> str:
    words = version_line(shutil.which("rsvg-convert") or "rsvg-convert").split()  # "rsvg-convert version 2.54.7"
    return words[-1] if words else ""


def render_svg(src: Path, *, to: str, options: dict) -> bytes:
    """The drawing as PNG or PDF bytes, or ConversionFailed when it is not a readable SVG."""
    require_content(src, "SVG")
    args = ["rsvg-convert", "--format", to]
    width, height = options.get("width"), options.get("height")
    if width:
        args += ["--width", str(width)]
    if height:
        args += ["--height", str(height)]
    if bool(width) != bool(height):
        args.append("--keep-aspect-ratio")  # one side given: the other follows the drawing
    result = run_tool(args, timeout=tool_timeout(), input=src.read_bytes())
    if result.returncode != 0 or not result.stdout:
        logger.info("rsvg-convert failed: %s", result.stderr[-2000:])
        raise ConversionFailed("INVALID_FILE", "The file is not a valid SVG drawing, or it is damaged.")
    return result.stdout


def convert_svg(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    target = normalize_format(output_format)
    dest = workdir / f"{stem}.{output_format.lower()}"
    if target == "pdf":
        dest.write_bytes(render_svg(src, to="pdf", options={}))
        return [dest]
    png = render_svg(src, to="png", options=options)
    if target == "png":
        dest.write_bytes(png)
        return [dest]
    with Image.open(io.BytesIO(png), formats=["PNG"]) as img:
        img.load()
        save_image(normalize_mode(img, target), dest, target, options)
    return [dest]


def _conversion(output_format: str) -> Conversion:
    if output_format == "pdf":
        options: tuple[Option, ...] = ()
    else:
        options = (WIDTH, HEIGHT, *((QUALITY,) if output_format != "png" else ()))
    return Conversion(
        operation="convert",
        input_format="svg",
        output_format=output_format,
        engine="rsvg",
        engine_version=rsvg_version(),
        group="document" if output_format == "pdf" else "image",
        options=options,
        run=convert_svg,
        is_installed=installed,
    )


CONVERSIONS: list[Conversion] = [_conversion(target) for target in (*RASTER_OUTPUTS, "pdf")]
