"""What each operation does when its task runs in the worker (import/upload runs in the upload view).

Each function gets a claimed task and a fresh work folder, stores its output files through
`store_file`, and returns them with the task's `result`; the runner records the outcome.
Expected failures raise ConversionFailed (its code and sentence become the task's).
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.db.models import Case, IntegerField, When

from engine import converters, signing
from engine.converters import ConversionFailed
from engine.models import File, Task
from engine.storage import clean_filename, download_to, engine_storage, store_file
from engine.validation import EXPORT_OPERATIONS


@dataclass
class Outcome:
    files: list[File]
    result: dict | None = None
    # What the catalogue lists per conversion (imports and exports are free, as on CloudConvert).
    credits: int = 0


def input_files(task: Task) -> list[File]:
    """The files of the tasks this one reads, in the order of its `input`."""
    order = Case(
        *[When(task_id=pk, then=i) for i, pk in enumerate(task.depends_on)], output_field=IntegerField()
    )
    files = list(File.objects.filter(task_id__in=task.depends_on).order_by(order, "created_at", "filename"))
    if not files:
        raise ConversionFailed("INPUT_TASK_FAILED", "The input task produced no files to work on.")
    return files


def import_base64(task: Task, workdir: Path) -> Outcome:
    content = base64.b64decode(task.payload["file"])
    return Outcome(files=[store_file(task, task.payload["filename"], io.BytesIO(content))])


def import_raw(task: Task, workdir: Path) -> Outcome:
    content = task.payload["file"].encode()
    return Outcome(files=[store_file(task, task.payload["filename"], io.BytesIO(content))])


def import_url(task: Task, workdir: Path) -> Outcome:
    from engine.fetch import fetch_url

    target = workdir / "download"
    filename = fetch_url(task.payload["url"], target, headers=task.payload.get("headers") or {})
    return Outcome(files=[store_file(task, task.payload.get("filename") or filename, target)])


def _output_name(pattern: str | None, produced: Path, index: int, total: int) -> str:
    """The user's `filename` for the output: as is for one file, with %d numbering for several."""
    if not pattern:
        return produced.name
    if total == 1:
        return pattern
    if "%d" in pattern:
        return pattern.replace("%d", str(index + 1), 1)
    stem, suffix = PurePosixPath(pattern).stem, PurePosixPath(pattern).suffix
    return f"{stem}-{index + 1}{suffix}"


def process(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """convert and the other registry operations: each input file through the matching converter."""
    payload = task.payload
    sources = input_files(task)
    output_format = converters.normalize_format(payload.get("output_format") or "")
    produced: list[Path] = []
    credits = 0
    for index, source in enumerate(sources):
        input_format = converters.normalize_format(
            payload.get("input_format") or PurePosixPath(source.filename).suffix
        )
        conversion = converters.find(input_format, output_format or input_format, task.operation)
        if conversion is None or not conversion.is_installed():
            raise ConversionFailed(
                "INVALID_CONVERSION_TYPE",
                f"This engine cannot {task.operation} {input_format or 'files without an extension'} "
                f"to {output_format or input_format}; check the input file and output format.",
            )
        try:
            options = converters.clean_options(conversion, payload)
        except converters.InvalidOptions as error:
            details = " ".join(message for messages in error.errors.values() for message in messages)
            raise ConversionFailed("INVALID_OPTIONS", f"The options are invalid: {details}") from None
        task.engine, task.engine_version = conversion.engine, conversion.engine_version
        Task.objects.filter(pk=task.pk).update(engine=task.engine, engine_version=task.engine_version)
        src = download_to(source, workdir / f"in-{index}")
        out_dir = workdir / f"out-{index}"
        out_dir.mkdir()
        stem = PurePosixPath(payload.get("filename") or source.filename).stem or "output"
        produced += conversion.run(
            src, out_dir, output_format=conversion.output_format, options=options, stem=stem
        )
        credits += int(conversion.as_api()["credits"])
        progress(int(100 * (index + 1) / len(sources)))
    if not produced:
        raise ConversionFailed("CONVERSION_FAILED", "The conversion produced no output file.")
    pattern = payload.get("filename")
    files = [
        store_file(task, _output_name(pattern, path, i, len(produced)), path)
        for i, path in enumerate(produced)
    ]
    return Outcome(files=files, credits=credits)


def export_url(task: Task, workdir: Path) -> Outcome:
    """Signed, expiring download URLs for the input files (or one ZIP of them)."""
    inline = task.payload.get("inline") is True
    sources = input_files(task)
    files: list[File] = []
    if task.payload.get("archive_multiple_files") is True and len(sources) > 1:
        archive = workdir / "archive.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            used: set[str] = set()
            for source in sources:
                name = _unique(clean_filename(source.filename), used)
                with engine_storage().open(source.path, "rb") as handle, zipped.open(name, "w") as entry:
                    while chunk := handle.read(1024 * 1024):
                        entry.write(chunk)
        files = [store_file(task, task.payload.get("filename") or "archive.zip", archive)]
        sources = files
    result = {
        "files": [
            {
                "filename": f.filename,
                "size": f.size,
                "url": signing.download_url(str(f.id), f.filename, inline=inline),
            }
            for f in sources
        ]
    }
    return Outcome(files=files, result=result)


def _unique(name: str, used: set[str]) -> str:
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{PurePosixPath(name).stem}-{number}{PurePosixPath(name).suffix}"
    used.add(candidate)
    return candidate


IMPORTS: dict[str, Callable[[Task, Path], Outcome]] = {
    "import/base64": import_base64,
    "import/raw": import_raw,
    "import/url": import_url,
}


def perform(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    if task.operation in IMPORTS:
        return IMPORTS[task.operation](task, workdir)
    if task.operation in EXPORT_OPERATIONS:
        return export_url(task, workdir)
    return process(task, workdir, progress)
