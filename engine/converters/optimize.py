"""The optimize operation: a smaller file in the same format. PDF with Ghostscript, jpg and png with Pillow.

An optimized file is never larger than the upload: when recompressing does not help (an already
optimized file), the original comes back unchanged.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import PIL
from PIL import Image

from engine.converters import Conversion, ConversionFailed, Option, normalize_format
from engine.converters.image import normalize_mode, open_image
from engine.converters.pdf import open_pdf
from engine.converters.sandbox import Sandbox
from engine.converters.tools import run_tool, tool_timeout, version_line

logger = logging.getLogger(__name__)

# CloudConvert's profiles → Ghostscript's presets (images downsampled to 150, 300, 300 dpi kept
# near-lossless, and 72 dpi).
PDF_PROFILES: dict[str, str] = {"web": "/ebook", "print": "/printer", "archive": "/prepress", "max": "/screen"}
PROFILE = Option(
    "profile", "enum", default="web", possible_values=tuple(PDF_PROFILES),
    description=(
        "web: images at 150 dpi; print: 300 dpi; archive: quality kept, only structure and fonts "
        "compacted; max: smallest file, images at 72 dpi."
    ),
)
JPG_QUALITY = Option(
    "quality", "integer", default=75, minimum=1, maximum=100,
    description="JPEG quality, from 1 (smallest file) to 100 (best image).",
)
PNG_QUALITY = Option(
    "quality", "integer", default=80, minimum=1, maximum=100,
    description=(
        "100 keeps every pixel (lossless recompression); lower values reduce the picture to a palette "
        "of fewer colours (at 80, about 200), which usually makes it far smaller."
    ),
)


@functools.cache
def gs_installed() -> bool:
    return bool(shutil.which("gs"))


@functools.cache
def gs_version() -> str:
    return version_line(shutil.which("gs") or "gs")  # "10.00.0"


def _smallest(original: Path, candidate: Path, dest: Path) -> list[Path]:
    """dest holds whichever is smaller: the recompressed candidate or the original."""
    if candidate.exists() and 0 < candidate.stat().st_size < original.stat().st_size:
        candidate.replace(dest)
    else:
        candidate.unlink(missing_ok=True)
        shutil.copyfile(original, dest)
    return [dest]


def optimize_pdf(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    with open_pdf(src):
        pass  # pdfium tells damaged and password-protected files apart, with clearer words than Ghostscript
    dest = workdir / f"{stem}.{output_format.lower()}"
    candidate = workdir / f".{stem}.optimizing.pdf"
    result = run_tool(
        [
            "gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", "-dCompatibilityLevel=1.7",
            f"-dPDFSETTINGS={PDF_PROFILES[options.get('profile') or PROFILE.default]}",
            "-dDetectDuplicateImages=true", f"-sOutputFile={candidate}", str(src),
        ],
        timeout=tool_timeout(),
        sandbox=Sandbox.of(src.parent, workdir),
    )
    if result.returncode != 0:
        logger.info("gs failed: %s", result.stderr[-2000:])
        candidate.unlink(missing_ok=True)
        raise ConversionFailed("CONVERSION_FAILED", "Ghostscript could not optimize this PDF; it may be damaged.")
    return _smallest(src, candidate, dest)


def optimize_image(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    img = open_image(src, input_format)
    icc = img.info.get("icc_profile")  # colours stay right on wide-gamut photos
    dest = workdir / f"{stem}.{output_format.lower()}"
    candidate = workdir / f".{stem}.optimizing.{output_format.lower()}"
    quality = options.get("quality") or (JPG_QUALITY if input_format == "jpg" else PNG_QUALITY).default
    extra = {"icc_profile": icc} if icc else {}
    if input_format == "jpg":
        normalize_mode(img, "jpg").save(candidate, "JPEG", quality=quality, optimize=True, progressive=True, **extra)
    else:
        if quality < 100:
            img = normalize_mode(img, "png")
            colours = max(2, round(256 * quality / 100))
            img = img.quantize(colors=colours, dither=Image.Dither.FLOYDSTEINBERG)
        img.save(candidate, "PNG", optimize=True, **extra)
    return _smallest(src, candidate, dest)


def _conversion(fmt: str) -> Conversion:
    if fmt == "pdf":
        return Conversion(
            operation="optimize", input_format="pdf", output_format="pdf", engine="ghostscript",
            engine_version=gs_version(), group="document", options=(PROFILE,), run=optimize_pdf,
            is_installed=gs_installed,
        )
    return Conversion(
        operation="optimize", input_format=fmt, output_format=fmt, engine="pillow", engine_version=PIL.__version__,
        group="image", options=(JPG_QUALITY if fmt == "jpg" else PNG_QUALITY,),
        run=functools.partial(optimize_image, input_format=normalize_format(fmt)),
    )


CONVERSIONS: list[Conversion] = [_conversion(fmt) for fmt in ("pdf", "jpg", "png")]
