"""More raster formats with Pillow: ico, avif and heic/heif, to and from the formats of
engine/converters/image.py.

AVIF needs a Pillow built with libavif, HEIC/HEIF the pillow-heif plugin (libheif with its HEVC
decoder and encoder); their conversions are listed only where this machine can both read and write them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import PIL
from PIL import Image, features

try:
    import pillow_heif
except ImportError:  # listed as absent, not an error: /v2/convert/formats shows what is installed
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

from engine.converters import Conversion, Option, normalize_format
from engine.converters.image import (
    PILLOW_FORMATS,
    QUALITY,
    RESIZE_OPTIONS,
    normalize_mode,
    open_image,
    resize,
    save_image,
)

EXTRA_FORMATS: dict[str, str] = {"ico": "ICO", "avif": "AVIF", "heic": "HEIF", "heif": "HEIF"}
LABELS: dict[str, str] = {"ico": "ICO", "avif": "AVIF", "heic": "HEIC", "heif": "HEIF"}
LOSSY = ("jpg", "webp", "avif", "heic", "heif")
# Icon sizes written into an .ico, as Windows picks among them; Pillow keeps those the picture can fill.
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


@functools.cache
def supported(fmt: str) -> bool:
    """Whether this Pillow reads and writes fmt (AVIF depends on how Pillow was built, HEIC/HEIF
    on the pillow-heif plugin)."""
    if fmt == "avif" and not features.check("avif"):
        return False
    if fmt in ("heic", "heif") and pillow_heif is None:
        return False
    Image.init()
    name = EXTRA_FORMATS[fmt]
    return name in Image.OPEN and name in Image.SAVE


def save_extra(img: Image.Image, dest: Path, output_format: str, options: dict) -> None:
    if output_format == "ico":
        if img.width != img.height:
            # Icons are square: centre the picture on a transparent square rather than squash it.
            square = Image.new("RGBA", (max(img.size),) * 2, (0, 0, 0, 0))
            square.paste(img, ((square.width - img.width) // 2, (square.height - img.height) // 2))
            img = square
        fitting = [size for size in ICO_SIZES if size[0] <= img.width]
        img.save(dest, "ICO", sizes=fitting or [img.size])  # a picture under 16 px stays one icon of its size
    else:
        img.save(dest, EXTRA_FORMATS[output_format], quality=options.get("quality") or QUALITY.default)


def convert_extra(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    target = normalize_format(output_format)
    if input_format in EXTRA_FORMATS:
        img = open_image(src, input_format, pillow_format=EXTRA_FORMATS[input_format], label=LABELS[input_format])
    else:
        img = open_image(src, input_format)
    img = resize(normalize_mode(img, target), options)
    dest = workdir / f"{stem}.{output_format.lower()}"
    if target in EXTRA_FORMATS:
        save_extra(img, dest, target, options)
    else:
        save_image(img, dest, target, options)
    return [dest]


def _all_supported(formats: tuple[str, ...]) -> bool:
    return all(supported(fmt) for fmt in formats)


def _conversion(input_format: str, output_format: str) -> Conversion:
    options: tuple[Option, ...] = RESIZE_OPTIONS + ((QUALITY,) if output_format in LOSSY else ())
    extras = [fmt for fmt in (input_format, output_format) if fmt in EXTRA_FORMATS]
    return Conversion(
        operation="convert",
        input_format=input_format,
        output_format=output_format,
        engine="pillow",
        engine_version=PIL.__version__,
        group="document" if output_format == "pdf" else "image",
        options=options,
        run=functools.partial(convert_extra, input_format=input_format),
        is_installed=functools.partial(_all_supported, tuple(extras)),
    )


CONVERSIONS: list[Conversion] = [
    *(_conversion(extra, target) for extra in EXTRA_FORMATS for target in [*PILLOW_FORMATS, *EXTRA_FORMATS, "pdf"]),
    *(_conversion(source, extra) for source in PILLOW_FORMATS for extra in EXTRA_FORMATS),
]
