"""Small previews of converted images and PDFs for the dashboard."""

import io
import logging
from typing import IO

from PIL import Image, UnidentifiedImageError

try:
    import pillow_heif
except ImportError:
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

logger = logging.getLogger(__name__)

SIZE = (96, 96)
IMAGE_SUFFIXES = {"png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff", "tif", "ico", "avif"}
if pillow_heif is not None:
    IMAGE_SUFFIXES |= {"heic", "heif"}


def thumbnail_png(source: IO[bytes], filename: str) -> bytes | None:
    """A PNG preview of an image or of a PDF's first page; None for anything else or on failure."""
    suffix = filename.rsplit(".", 1)[-1].lower()
    try:
        if suffix == "pdf":
            import pypdfium2

            pdf = pypdfium2.PdfDocument(source)
            try:
                image = pdf[0].render(scale=0.5).to_pil()
            finally:
                pdf.close()
        elif suffix in IMAGE_SUFFIXES:
            image = Image.open(source)
            image.seek(0)
        else:
            return None
        image = image.convert("RGBA")
        image.thumbnail(SIZE)
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()
    # pypdfium2's PdfiumError is a RuntimeError.
    except (OSError, ValueError, RuntimeError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        logger.info("no thumbnail for %s: %r", filename, error)
        return None
