"""Raster images with Pillow: png, jpg, webp, gif, bmp, tiff in any direction, and image → pdf."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, require_content

# Our format name → Pillow's format name (the only decoder we let open the file, so a JPEG
# uploaded as "png" is reported as mislabelled instead of silently converted).
PILLOW_FORMATS: dict[str, str] = {
    "png": "PNG",
    "jpg": "JPEG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}
LABELS: dict[str, str] = {"png": "PNG", "jpg": "JPG", "webp": "WebP", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF"}

# Formats without useful transparency: transparent pixels are laid onto white, as a viewer shows them.
OPAQUE_OUTPUTS = frozenset({"jpg", "bmp", "pdf"})
LOSSY_OUTPUTS = frozenset({"jpg", "webp"})

# Bounds on requested sizes; the pixel count is also held under Pillow's decompression-bomb limit.
MAX_DIMENSION = 20000

QUALITY = Option(
    "quality", "integer", default=85, minimum=1, maximum=100,
    description="Compression quality, from 1 (smallest file) to 100 (best image).",
)
WIDTH = Option(
    "width", "integer", minimum=1, maximum=MAX_DIMENSION,
    description="Output width in pixels; the height follows the aspect ratio unless also given.",
)
HEIGHT = Option(
    "height", "integer", minimum=1, maximum=MAX_DIMENSION,
    description="Output height in pixels; the width follows the aspect ratio unless also given.",
)
FIT = Option(
    "fit", "enum", default="max", possible_values=("max", "upscale", "scale"),
    description=(
        "How width and height apply: max fits inside them without enlarging, upscale fits inside "
        "them and may enlarge, scale forces exactly that size."
    ),
)
RESIZE_OPTIONS = (WIDTH, HEIGHT, FIT)


def open_image(src: Path, input_format: str, *, pillow_format: str | None = None, label: str | None = None) -> Image.Image:
    """The fully decoded first frame of src (for an icon, its largest size), or ConversionFailed
    saying why it cannot be read. pillow_format and label name formats beyond this module's."""
    label = label or LABELS[input_format]
    require_content(src, label)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; we refuse from the limit on.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(src, formats=[pillow_format or PILLOW_FORMATS[input_format]]) as img:
                img.load()  # decode now, inside the try: truncated data only fails here
                return ImageOps.exif_transpose(img)  # phone photos are stored sideways
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ConversionFailed(
            "INVALID_FILE",
            f"The image is too large to convert safely (over {Image.MAX_IMAGE_PIXELS:,} pixels).",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ConversionFailed("INVALID_FILE", f"The file is not a valid {label} image.") from None


def _target_size(size: tuple[int, int], options: dict[str, Any]) -> tuple[int, int]:
    width, height = size
    want_w, want_h, fit = options.get("width"), options.get("height"), options.get("fit") or "max"
    if not want_w and not want_h:
        return size
    if fit == "scale" and want_w and want_h:
        return want_w, want_h
    ratio = min(r for r in (want_w and want_w / width, want_h and want_h / height) if r)
    if ratio > 1 and fit == "max":
        return size
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def resize(img: Image.Image, options: dict[str, Any]) -> Image.Image:
    size = _target_size(img.size, options)
    if size == img.size:
        return img
    if size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
        raise ConversionFailed(
            "INVALID_OPTIONS",
            f"{size[0]}×{size[1]} pixels is too large; ask for at most {Image.MAX_IMAGE_PIXELS:,} pixels.",
        )
    return img.resize(size, Image.Resampling.LANCZOS)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def normalize_mode(img: Image.Image, output_format: str) -> Image.Image:
    """A mode the output format can store and resizing can filter (palette images cannot)."""
    if output_format in OPAQUE_OUTPUTS and _has_alpha(img):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if img.mode in ("RGB", "RGBA", "L"):
        return img
    if img.mode == "LA":
        return img.convert("RGBA")
    return img.convert("RGBA" if _has_alpha(img) else "RGB")


def save_image(img: Image.Image, dest: Path, output_format: str, options: dict[str, Any]) -> None:
    params: dict[str, Any] = {}
    if output_format in LOSSY_OUTPUTS:
        params["quality"] = options.get("quality") or QUALITY.default
    if output_format == "tiff":
        params["compression"] = "tiff_lzw"  # uncompressed TIFFs are needlessly huge
    if output_format == "pdf":
        # Keep a scan's physical size (a 300 dpi A4 stays A4). Files without a believable density
        # (TIFF writers often store 1 dpi) get 72 dpi: one point per pixel.
        dpi = float(img.info.get("dpi", (72, 72))[0] or 72)
        params["resolution"] = dpi if 50 <= dpi <= 2400 else 72.0
        fmt = "PDF"
    else:
        fmt = PILLOW_FORMATS[output_format]
    img.save(dest, fmt, **params)


def convert_image(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    """One image in, one image (or one-page PDF) out. Animated inputs give their first frame."""
    target = normalize_format(output_format)
    img = open_image(src, input_format)
    dpi = img.info.get("dpi")
    img = resize(normalize_mode(img, target), options)
    if dpi:
        img.info["dpi"] = dpi
    dest = workdir / f"{stem}.{output_format.lower()}"
    save_image(img, dest, target, options)
    return [dest]


def _conversion(input_format: str, output_format: str) -> Conversion:
    options = RESIZE_OPTIONS + ((QUALITY,) if output_format in LOSSY_OUTPUTS else ())
    return Conversion(
        operation="convert",
        input_format=input_format,
        output_format=output_format,
        engine="pillow",
        engine_version=PIL.__version__,
        group="document" if output_format == "pdf" else "image",
        options=options,
        run=functools.partial(convert_image, input_format=input_format),
    )


CONVERSIONS: list[Conversion] = [
    _conversion(source, target) for source in PILLOW_FORMATS for target in [*PILLOW_FORMATS, "pdf"]
]
