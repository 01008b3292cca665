"""SVG drawings with librsvg's rsvg-convert: svg → png, jpg, webp (through Pillow) and pdf (vectors kept).

The drawing is piped in on stdin: librsvg then has no folder to resolve references against and loads
no file the SVG names, so an uploaded drawing cannot pull the server's files into its output
(given a path, it would read any file beside or below it); and rsvg-convert runs in the engine's
sandbox, which holds no file of ours at all. A drawing can also claim any size: one declaring
200,000 px a side would take minutes and gigabytes to paint. So a drawing larger than MAX_SIDE is
painted scaled down to fit it, and rsvg-convert runs with a ceiling on its memory and processor
time (deep nesting is refused by its XML parser beyond 256 levels).
"""

from __future__ import annotations

import functools
import io
import logging
import re
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from PIL import Image

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, require_content
from engine.converters.image import QUALITY, normalize_mode, save_image
from engine.converters.sandbox import Sandbox
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
# rsvg-convert's ceilings: a MAX_SIDE² picture needs 256 MiB, its drawing a fraction more.
RSVG_MEMORY = 2 * 1024**3
RSVG_CPU_SECONDS = 120
# CSS pixels per unit of an SVG length.
UNITS = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "em": 16.0, "ex": 8.0}
LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(px|pt|pc|in|cm|mm|em|ex)?\s*$")


@functools.cache
def installed() -> bool:
    return bool(shutil.which("rsvg-convert"))


@functools.cache
def rsvg_version() -> str:
    words = version_line(shutil.which("rsvg-convert") or "rsvg-convert").split()  # "rsvg-convert version 2.54.7"
    return words[-1] if words else ""


def _length(value: str | None) -> float | None:
    match = LENGTH.match(value or "")
    return float(match.group(1)) * UNITS[match.group(2) or ""] if match else None


def intrinsic_size(data: bytes) -> tuple[float, float] | None:
    """The drawing's own size in CSS pixels, from its root element (width/height, else viewBox)."""
    parser = ElementTree.XMLPullParser(events=("start",))
    try:
        for offset in range(0, len(data), 65536):
            parser.feed(data[offset:offset + 65536])
            for _, root in parser.read_events():
                width, height = _length(root.get("width")), _length(root.get("height"))
                box = [float(n) for n in re.split(r"[\s,]+", (root.get("viewBox") or "").strip()) if n][2:4]
                if len(box) == 2 and box[0] > 0 and box[1] > 0:
                    # One side given: the other follows the viewBox's proportions.
                    if width and not height:
                        height = width * box[1] / box[0]
                    elif height and not width:
                        width = height * box[0] / box[1]
                    width, height = width or box[0], height or box[1]
                return (width, height) if width and height else None
    except (ElementTree.ParseError, ValueError):
        return None  # rsvg-convert says what is wrong with it, in its own words
    return None


def _fitted(data: bytes, width: int | None, height: int | None) -> tuple[int | None, int | None]:
    """The size to paint at: as asked, or the drawing's own scaled down to fit MAX_SIDE."""
    if width or height:
        return width, height
    size = intrinsic_size(data)
    if size is None or max(size) <= MAX_SIDE:
        return None, None
    scale = MAX_SIDE / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def render_svg(src: Path, *, to: str, options: dict) -> bytes:
    """The drawing as PNG or PDF bytes, or ConversionFailed when it is not a readable SVG."""
    require_content(src, "SVG")
    data = src.read_bytes()
    args = ["rsvg-convert", "--format", to]
    width, height = _fitted(data, options.get("width"), options.get("height"))
    if width:
        args += ["--width", str(width)]
    if height:
        args += ["--height", str(height)]
    if bool(width) != bool(height):
        args.append("--keep-aspect-ratio")  # one side given: the other follows the drawing
    result = run_tool(
        args,
        timeout=tool_timeout(),
        input=data,
        sandbox=Sandbox.of(memory_limit=RSVG_MEMORY, cpu_seconds=RSVG_CPU_SECONDS),
    )
    if result.returncode < 0 or result.returncode > 128:  # killed by a signal: a ceiling was hit
        raise ConversionFailed(
            "INVALID_FILE", "The SVG drawing is too complex to render within the engine's limits; simplify it."
        )
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
