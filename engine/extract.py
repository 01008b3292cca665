"""archive/extract: every regular file inside zip and tar archives becomes a file of its own.

Archives come from anyone, so nothing in them decides where bytes go: each member is streamed to
a numbered file in the work folder and keeps only its own name (folders dropped, repeated names
numbered like `archive` numbers them). Links, devices, folders and paths that climb out (`..`,
absolute) are skipped; what is written in total is capped by the engine's upload limit, so a
small zip bomb cannot fill the disk.
"""

from __future__ import annotations

import lzma
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from engine.combine import ARCHIVE_ENGINE, unique_name
from engine.converters import ConversionFailed
from engine.storage import clean_filename

EXTRACT_FORMATS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")
# What a file name may end with, longest first so .tar.gz is not taken for .gz.
SUFFIXES = {
    ".tar.bz2": "tar.bz2",
    ".tar.gz": "tar.gz",
    ".tar.xz": "tar.xz",
    ".tbz2": "tar.bz2",
    ".zip": "zip",
    ".tar": "tar",
    ".tbz": "tar.bz2",
    ".tgz": "tar.gz",
    ".txz": "tar.xz",
}
ALIASES = {suffix.lstrip("."): fmt for suffix, fmt in SUFFIXES.items()}
# Members of one task's archives, folders and skipped entries included.
MAX_ENTRIES = 10_000
# Python's own zipfile and tarfile, like `archive`.
EXTRACT_ENGINE = ARCHIVE_ENGINE
CHUNK = 1024 * 1024
# Finder's resource forks: in every zip made on a Mac, never a file anyone packed.
MAC_METADATA = "__MACOSX"
# What a broken or truncated archive raises while it is read.
READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def format_called(input_format: str) -> str | None:
    """The archive format an `input_format` names (tgz is tar.gz), None for any other."""
    return ALIASES.get(input_format.strip().lower().lstrip("."))


def format_named(filename: str) -> str | None:
    """The archive format a file name ends with, None when it names none."""
    name = filename.lower()
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


def is_safe_path(name: str) -> bool:
    """False for member names that would land outside the folder they are extracted into."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return False
    return ".." not in PurePosixPath(name).parts


@dataclass
class Extraction:
    """The files taken out of one task's archives so far, and what may still be written."""

    folder: Path
    max_bytes: int
    written: int = 0
    entries: int = 0
    members: list[tuple[str, Path]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    def count_entries(self, number: int = 1) -> None:
        self.entries += number
        if self.entries > MAX_ENTRIES:
            raise ConversionFailed(
                "INVALID_FILE",
                f"The archive holds more than {MAX_ENTRIES:,} entries, more than the engine extracts; "
                "split it into smaller archives.",
            )

    def make_room(self, size: int) -> None:
        """Fail before writing when the sizes an archive declares already pass the limit."""
        if self.written + size > self.max_bytes:
            raise self._too_large()

    def spend(self, size: int) -> None:
        self.written += size
        if self.written > self.max_bytes:
            raise self._too_large()

    def _too_large(self) -> ConversionFailed:
        return ConversionFailed(
            "FILE_TOO_LARGE",
            f"The archive expands to more than {self.max_bytes:,} bytes, the engine's file size limit; "
            "split it into smaller archives.",
        )

    def add(self, name: str, content: IO[bytes]) -> None:
        """Stream one member into the work folder, counting every byte against the limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / str(len(self.members))
        with target.open("wb") as sink:
            shutil.copyfileobj(content, _Counted(sink, self), length=CHUNK)
        filename = unique_name(clean_filename(PurePosixPath(name.replace("\\", "/")).name), self.used)
        self.members.append((filename, target))

    def extract(self, src: Path, *, input_format: str | None) -> None:
        """Every regular file of the archive at src; its format from input_format, its name or its bytes."""
        fmt = (format_called(input_format) if input_format else None) or format_named(src.name)
        if fmt is None:
            fmt = "zip" if zipfile.is_zipfile(src) else "tar"
            label = "ZIP or TAR"
        else:
            label = fmt.upper()
        try:
            if fmt == "zip":
                self._extract_zip(src)
            else:
                self._extract_tar(src)
        except READ_ERRORS as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the disk, not the archive (decompressors raise OSError without an errno)
            raise ConversionFailed(
                "INVALID_FILE",
                f"The file {src.name} is not a valid {label} archive; "
                f"archive/extract takes {', '.join(EXTRACT_FORMATS)} files.",
            ) from None

    def _extract_zip(self, src: Path) -> None:
        with zipfile.ZipFile(src) as zipped:
            self.count_entries(len(zipped.infolist()))
            wanted = [info for info in zipped.infolist() if _is_zip_file(info)]
            # The sizes the archive declares stop a bomb before anything is written; the bytes
            # counted while writing stop one that lies about them.
            self.make_room(sum(info.file_size for info in wanted))
            for info in wanted:
                if info.flag_bits & 0x1:
                    raise ConversionFailed(
                        "INVALID_FILE",
                        f"{info.filename} in {src.name} is password-protected; the engine cannot extract "
                        "encrypted archives.",
                    )
                with zipped.open(info) as content:
                    self.add(info.filename, content)

    def _extract_tar(self, src: Path) -> None:
        # Stream mode reads the archive once, front to back, whatever its compression.
        with tarfile.open(src, "r|*") as tar:
            for member in tar:
                self.count_entries()
                if not member.isreg() or not _is_wanted(member.name):
                    continue  # folders, links, hard links, devices and climbing paths
                self.make_room(member.size)
                content = tar.extractfile(member)
                if content is None:
                    continue
                with content:
                    self.add(member.name, content)


def _is_wanted(name: str) -> bool:
    return is_safe_path(name) and PurePosixPath(name.replace("\\", "/")).parts[:1] != (MAC_METADATA,)


def _is_zip_file(info: zipfile.ZipInfo) -> bool:
    """A regular file: not a folder, not a symbolic link or other special file by its Unix mode."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    return not info.is_dir() and kind in (0, stat.S_IFREG) and _is_wanted(info.filename)


class _Counted:
    """A file to write that charges every byte to the extraction's limit first."""

    def __init__(self, sink: IO[bytes], extraction: Extraction) -> None:
        self.sink = sink
        self.extraction = extraction

    def write(self, data: bytes) -> int:
        self.extraction.spend(len(data))
        return self.sink.write(data)
