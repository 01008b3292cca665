"""PDF → images: the engine's pdfium converter against poppler's pdftoppm and pdftocairo, equal work.

    .venv/bin/python bench/pdf.py [--pages 30] [--dpi 150] [--rounds 3]

Comparisons on the same file, at the same dpi, each tool writing one file per page:
- PNG at equal compression: poppler's tools write PNG at zlib's best compression (their zlib
  streams say so: FLG 0xDA), so pdfium's pages are saved by Pillow at compress_level 9 too, against
  `pdftoppm -png` and `pdftocairo -png`. The engine's own pdf → png conversion, which saves at
  level 6 (four times faster to write, 3% bigger), is shown beside them for reference.
- raw rendering, no compression on either side: pdfium's pages saved as PPM against `pdftoppm`
  (PPM is its default output), and as uncompressed TIFF against `pdftocairo -tiff
  -tiffcompression none`.
Runs alternate the order of the tools round by round (no tool always gets the warmer cache); the
best of the rounds counts. Prints pages per second and the ratios (target: pdfium ≥ 1x both).
The document is a text-heavy PDF made by LibreOffice when it is installed (like real office
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccweb.settings")

import django  # noqa: E402

django.setup()

import pypdfium2 as pdfium  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from engine import converters  # noqa: E402
from engine.converters import office  # noqa: E402

PARAGRAPH = (
    "The engine converts documents with real tools. This paragraph is here to give every page a "
    "realistic amount of text, with different words, widths and line breaks, so that rendering "
    "costs what it costs on an ordinary report. "
)
POINTS_PER_INCH = 72


def make_document(folder: Path, pages: int) -> Path:
    if office.installed():
        text = folder / "report.txt"
        # About 45 lines of 80 characters fill an A4 page of LibreOffice's default text layout.
        lines = [f"{n:4d}. {PARAGRAPH[(n * 7) % 60:][:70]}" for n in range(pages * 48)]
        text.write_text("\n".join(lines), encoding="utf-8")
        return office.office_convert(text, folder / "report.pdf", input_format="txt", output_format="pdf")
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
    with pdfium.PdfDocument(pdf) as document:
        return len(document)


def pdfium_pages(pdf: Path, out: Path, dpi: int, suffix: str, **params: object) -> None:
    with pdfium.PdfDocument(pdf) as document:
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=dpi / POINTS_PER_INCH, rev_byteorder=True)
            bitmap.to_pil().save(out / f"page-{index + 1}.{suffix}", **params)
            bitmap.close()
            page.close()


def pdfium_png(pdf: Path, out: Path, dpi: int) -> None:
    pdfium_pages(pdf, out, dpi, "png", compress_level=9)


def engine_png(pdf: Path, out: Path, dpi: int) -> None:
    conversion = converters.find("pdf", "png")
    options = converters.clean_options(conversion, {"pixel_density": dpi})
    conversion.run(pdf, out, output_format="png", options=options, stem="page")


def pdftoppm_png(pdf: Path, out: Path, dpi: int) -> None:
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(out / "page")], check=True)


def pdftocairo_png(pdf: Path, out: Path, dpi: int) -> None:
    subprocess.run(["pdftocairo", "-png", "-r", str(dpi), str(pdf), str(out / "page")], check=True)


def pdfium_ppm(pdf: Path, out: Path, dpi: int) -> None:
    pdfium_pages(pdf, out, dpi, "ppm")


def pdftoppm_ppm(pdf: Path, out: Path, dpi: int) -> None:
    subprocess.run(["pdftoppm", "-r", str(dpi), str(pdf), str(out / "page")], check=True)


def pdfium_tiff(pdf: Path, out: Path, dpi: int) -> None:
    pdfium_pages(pdf, out, dpi, "tif", compression="raw")


def pdftocairo_tiff(pdf: Path, out: Path, dpi: int) -> None:
    subprocess.run(
        ["pdftocairo", "-tiff", "-tiffcompression", "none", "-r", str(dpi), str(pdf), str(out / "page")], check=True
    )


Tool = Callable[[Path, Path, int], None]


def measure(tools: dict[str, Tool], pdf: Path, folder: Path, dpi: int, rounds: int, pages: int) -> dict:
    """Best seconds and bytes written per tool; the order of the tools rotates every round."""
    names = list(tools)
    best = {name: float("inf") for name in names}
    written = dict.fromkeys(names, 0)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            out = folder / f"{name}-{round_}"
            out.mkdir()
            started = time.perf_counter()
            tools[name](pdf, out, dpi)
            best[name] = min(best[name], time.perf_counter() - started)
            files = [p for p in out.iterdir() if p.suffix in (".png", ".ppm", ".tif")]
            assert len(files) == pages, f"{name} wrote {len(files)} images for {pages} pages"
            written[name] = sum(p.stat().st_size for p in files)
            shutil.rmtree(out)
    return {name: (best[name], written[name]) for name in names}


def report(title: str, results: dict, pages: int, baseline: str, reference: tuple[str, ...] = ()) -> None:
    print(title)
    for name, (seconds, size) in results.items():
        print(f"  {name:22s} {seconds:7.3f} s  {pages / seconds:7.1f} pages/s  {size / 1e6:7.2f} MB written")
    mine = results[baseline][0]
    for name, (seconds, _) in results.items():
        if name != baseline and name not in reference:
            print(f"  ratio {baseline}/{name} throughput: {seconds / mine:.2f}x (target >= 1x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs of each tool")
    args = parser.parse_args()
    for tool in ("pdftoppm", "pdftocairo"):
        if not shutil.which(tool):
            sys.exit(f"{tool} (poppler-utils) is not installed; nothing to compare with.")

    with tempfile.TemporaryDirectory(prefix="ccweb-bench-pdf-") as tmp:
        folder = Path(tmp)
        pdf = make_document(folder, args.pages)
        pages = page_count(pdf)
        png = measure(
            {
                "pdfium": pdfium_png, "pdftoppm": pdftoppm_png, "pdftocairo": pdftocairo_png,
                "engine (level 6)": engine_png,
            },
            pdf, folder, args.dpi, args.rounds, pages,
        )
        ppm = measure({"pdfium": pdfium_ppm, "pdftoppm": pdftoppm_ppm}, pdf, folder, args.dpi, args.rounds, pages)
        tiff = measure(
            {"pdfium": pdfium_tiff, "pdftocairo": pdftocairo_tiff}, pdf, folder, args.dpi, args.rounds, pages
        )

    kind = "LibreOffice text" if office.installed() else "Pillow images"
    print(f"document: {pages} pages ({kind}), {args.dpi} dpi, best of {args.rounds} rounds, order rotating")
    report("PNG at zlib level 9 on every side:", png, pages, "pdfium", reference=("engine (level 6)",))
    report("raw rendering, uncompressed PPM on both sides:", ppm, pages, "pdfium")
    report("raw rendering, uncompressed TIFF on both sides:", tiff, pages, "pdfium")


if __name__ == "__main__":
    main()
