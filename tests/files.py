"""Small real input files, made by the tests themselves."""

import io

from PIL import Image


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int, int] = (200, 40, 40, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def pdf_bytes(pages: int = 3) -> bytes:
    """A PDF with `pages` pages of different colours, made by Pillow."""
    images = [Image.new("RGB", (200, 280), (40 * n % 255, 120, 200)) for n in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return buffer.getvalue()
