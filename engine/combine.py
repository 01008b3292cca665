"""merge and archive: the files of several tasks become one file, a PDF or a zip/tar archive."""

from __future__ import annotations

import platform
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pypdfium2 as pdfium

from engine import converters
from engine.converters import ConversionFailed, pdf
from engine.converters.pdf import open_pdf
from engine.models import File
from engine.storage import clean_filename, engine_storage

MERGE_FORMATS = ("pdf",)
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz", "tar.bz2")
TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2"}
# (engine, engine_version) as the tasks report them; archives are Python's own zipfile and tarfile.
MERGE_ENGINE = ("pdfium", pdf.ENGINE_VERSION)
ARCHIVE_ENGINE = ("archive", platform.python_version())


def as_pdfs(src: Path, workdir: Path) -> list[Path]:
    """src when it is a PDF; otherwise what the engine's own converter to PDF makes of it, so
    merge takes every format `convert` can turn into a PDF (images, office documents, ...)."""
    input_format = converters.normalize_format(PurePosixPath(src.name).suffix)
    if input_format == "pdf":
        return [src]
    conversion = converters.find(input_format, "pdf") if input_format else None
    if conversion is None or not conversion.is_installed():
        raise ConversionFailed(
            "INVALID_CONVERSION_TYPE",
            f"{src.name} cannot be merged: merge takes PDFs, images and documents the engine can convert to PDF.",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    options = converters.clean_options(conversion, {})
    return conversion.run(src, workdir, output_format="pdf", options=options, stem=src.stem or "page")


def merge_pdfs(sources: list[Path], target: Path) -> int:
    """target: every page of the sources, in order; returns the number of pages."""
    merged = pdfium.PdfDocument.new()
    try:
        for source in sources:
            with open_pdf(source) as document:
                merged.import_pages(document)
        merged.save(target)
        return len(merged)
    finally:
        merged.close()


def unique_name(name: str, used: set[str]) -> str:
    """name, or name-2, name-3... when an earlier member of the same archive took it."""
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{PurePosixPath(name).stem}-{number}{PurePosixPath(name).suffix}"
    used.add(candidate)
    return candidate


def write_archive(files: list[File], target: Path, output_format: str) -> None:
    """target: one archive of the stored files, streamed from storage (they may be large)."""
    storage = engine_storage()
    used: set[str] = set()
    members = [(unique_name(clean_filename(f.filename), used), f) for f in files]
    if output_format == "zip":
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for name, file in members:
                info = zipfile.ZipInfo(name, date_time=file.created_at.timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                # Sizes past 2 GiB need zip64 headers, which zipfile only writes when told up front.
                with storage.open(file.path, "rb") as handle, zipped.open(
                    info, "w", force_zip64=file.size >= zipfile.ZIP64_LIMIT
                ) as entry:
                    while chunk := handle.read(1024 * 1024):
                        entry.write(chunk)
        return
    with tarfile.open(target, TAR_MODES[output_format]) as tar:
        for name, file in members:
            info = tarfile.TarInfo(name)
            info.size = storage.size(file.path)
            info.mtime = int(file.created_at.timestamp())
            info.mode = 0o644
            with storage.open(file.path, "rb") as handle:
                tar.addfile(info, handle)
