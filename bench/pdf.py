"""PDF → PNG rasterization: the engine's pdfium converter against poppler's pdftoppm, same files, same dpi.

    .venv/bin/python bench/pdf.py [--pages 30] [--dpi 150] [--rounds 3]

Prints pages per second for both and their ratio (target: pdfium at least as fast, ratio >= 1).
The test document is a text-heavy PDF made by LibreOffice when it is installed (like real office
exports), otherwise image pages made by Pillow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccweb.settings")

import django  # noqa: E402

django.setup()

from PIL import Image, ImageDraw  # noqa: E402

from engine import converters  # noqa: E402
from engine.converters import office  # noqa: E402

PARAGRAPH = (
    "The engine converts documents with real tools. This paragraph is here to give every page a "
    "realistic amount of text, with different words, widths and line breaks, so that rendering "
    "costs what it costs on an ordinary report. "
)


def make_document(folder: Path, pages: int) -> Path:
    if office.installed():
        text = folder / "report.txt"
        # About 45 lines of 80 characters fill an A4 page of LibreOffice's default text layout.
        lines = [f"{n:4d}. {PARAGRAPH[(n * 7) % 60:][:70]}" for n in range(pages * 48)]
        text.write_text("\n".join(lines), encoding="utf-8")
        pdf = office.office_convert(text, folder / "report.pdf", input_format="txt", output_format="pdf")
        return pdf
    images = []
    for n in range(pages):
        page = Image.new("RGB", (1240, 1754), "white")
        draw = ImageDraw.Draw(page)
        for line in range(60):
            draw.text((80, 80 + line * 27), f"Page {n + 1}, line {line + 1}: {PARAGRAPH[:90]}", fill="black")
        images.append(page)
    pdf = folder / "report.pdf"
    images[0].save(pdf, "PDF", resolution=150.0, save_all=True, append_images=images[1:])
    return pdf


def page_count(pdf: Path) -> int:
    import pypdfium2 as pdfium

    with pdfium.PdfDocument(pdf) as document:
        return len(document)


def time_pdfium(pdf: Path, out: Path, dpi: int) -> float:
    conversion = converters.find("pdf", "png")
    options = converters.clean_options(conversion, {"pixel_density": dpi})
    started = time.perf_counter()
    conversion.run(pdf, out, output_format="png", options=options, stem="page")
    return time.perf_counter() - started


def time_pdftoppm(pdf: Path, out: Path, dpi: int) -> float:
    started = time.perf_counter()
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(out / "page")], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs of each tool")
    args = parser.parse_args()
    if not shutil.which("pdftoppm"):
        sys.exit("pdftoppm (poppler-utils) is not installed; nothing to compare with.")

    with tempfile.TemporaryDirectory(prefix="ccweb-bench-pdf-") as tmp:
        folder = Path(tmp)
        pdf = make_document(folder, args.pages)
        pages = page_count(pdf)
        best = {"pdfium": float("inf"), "pdftoppm": float("inf")}
        for round_ in range(args.rounds):
            # Alternate the order so neither tool always gets the warmer file cache.
            runs = [("pdfium", time_pdfium), ("pdftoppm", time_pdftoppm)]
            for name, run in runs if round_ % 2 == 0 else runs[::-1]:
                out = folder / f"{name}-{round_}"
                out.mkdir()
                best[name] = min(best[name], run(pdf, out, args.dpi))
                produced = len(list(out.glob("*.png")))
                assert produced == pages, f"{name} wrote {produced} images for {pages} pages"
                shutil.rmtree(out)

    kind = "LibreOffice text" if office.installed() else "Pillow images"
    print(f"document: {pages} pages ({kind}), {args.dpi} dpi, PNG")
    for name, seconds in best.items():
        print(f"{name:9s} {seconds:7.3f} s  {pages / seconds:7.1f} pages/s")
    print(f"ratio pdfium/pdftoppm throughput: {best['pdftoppm'] / best['pdfium']:.2f}x (target >= 1x)")


if __name__ == "__main__":
    main()
