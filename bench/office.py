"""DOCX → PDF throughput: the engine's warm LibreOffice pool against one `soffice --convert-to` per file.

    .venv/bin/python bench/office.py [--files 20]

Both convert the same DOCX files in the same run; prints documents per second for each and the
ratio (target: warm at least 4x faster). The pool's one-time start is reported apart, since a
worker pays it once for hundreds of documents.
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

from engine.converters import office  # noqa: E402

PARAGRAPH = "A short business letter with a few paragraphs, as most documents that people convert are. "


def make_documents(folder: Path, count: int) -> list[Path]:
    """count different DOCX files of about two pages, made by LibreOffice from text."""
    documents = []
    for n in range(count):
        text = folder / f"letter-{n}.txt"
        paragraphs = [f"Letter {n}, paragraph {p}. " + PARAGRAPH * 5 for p in range(12)]
        text.write_text("\n\n".join(paragraphs), encoding="utf-8")
        docx = folder / f"letter-{n}.docx"
        documents.append(office.office_convert(text, docx, input_format="txt", output_format="docx"))
        text.unlink()
    return documents


def time_warm(documents: list[Path], out: Path) -> tuple[float, float]:
    """(seconds to start the pool, seconds to convert every document)."""
    pool = office.OfficePool(size=1, max_documents=10_000, timeout=120)
    try:
        started = time.perf_counter()
        pool.processes[0].start()
        startup = time.perf_counter() - started
        started = time.perf_counter()
        for document in documents:
            answer = pool.convert({
                "src": str(document), "dest": str(out / f"{document.stem}.pdf"), "filter": "writer_pdf_Export",
                "service": office.TEXT, "forbid_filters": list(office.TEXT_FILTERS),
            })
            assert answer["ok"], answer
        return startup, time.perf_counter() - started
    finally:
        pool.close()


def time_cold(documents: list[Path], out: Path, profile: Path) -> float:
    command = [
        shutil.which("soffice") or "soffice", "--headless", "--norestore",
        f"-env:UserInstallation={profile.as_uri()}", "--convert-to", "pdf", "--outdir", str(out),
    ]
    # Create the profile first, untimed: the cold path should not pay LibreOffice's first run.
    subprocess.run([*command, str(documents[0])], check=True, capture_output=True)
    started = time.perf_counter()
    for document in documents:
        subprocess.run([*command, str(document)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    if not office.installed():
        sys.exit("LibreOffice with python3-uno is not installed; nothing to measure.")

    with tempfile.TemporaryDirectory(prefix="ccweb-bench-office-") as tmp:
        folder = Path(tmp)
        documents = make_documents(folder, args.files)
        (folder / "warm").mkdir()
        (folder / "cold").mkdir()
        startup, warm = time_warm(documents, folder / "warm")
        cold = time_cold(documents, folder / "cold", folder / "cold-profile")
        for name in ("warm", "cold"):
            produced = len(list((folder / name).glob("*.pdf")))
            assert produced == len(documents), f"{name} made {produced} PDFs for {len(documents)} documents"

    count = len(documents)
    print(f"{count} DOCX files → PDF, one after another")
    print(f"warm pool        {warm:7.2f} s  {count / warm:6.2f} docs/s  (+ {startup:.2f} s to start once)")
    print(f"soffice per file {cold:7.2f} s  {count / cold:6.2f} docs/s")
    print(f"ratio warm/cold throughput: {cold / warm:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
