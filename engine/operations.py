"""What each operation does when its task runs in the worker (import/upload runs in the upload view).

Each function gets a claimed task and a fresh work folder, stores its output files through
`store_output` (moved out of the work folder) or `store_file`, and returns them with the task's
`result`; the runner records the outcome.
Expected failures raise ConversionFailed (its code and sentence become the task's).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.db.models import Case, IntegerField, When

from engine import combine, converters, extract, signing
from engine.converters import ConversionFailed, web
from engine.converters.tools import tool_timeout
from engine.models import File, Task
from engine.storage import download_to, engine_storage, store_file, store_output
from engine.uploads import max_upload_size
from engine.validation import EXPORT_OPERATIONS, image_reference, input_list, is_uuid


@dataclass
class Outcome:
    files: list[File]
    result: dict | None = None
    # What the catalogue lists per conversion (imports and exports are free, as on CloudConvert).
    credits: int = 0


def picture_task_id(task: Task) -> str | None:
    """The task whose file a watermark stamps as its picture, None when there is none.

    depends_on holds it last, after the tasks of `input` (validation keeps it out of `input`).
    A retry made after one of these tasks was deleted holds fewer, and then which one is the
    picture cannot be told: the task fails rather than stamp the wrong file."""
    if image_reference(task.payload, task.operation) is None:
        return None
    if len(task.depends_on) != len(input_list(task.payload.get("input")) or []) + 1:
        raise ConversionFailed(
            "INPUT_TASK_FAILED", "The watermark's image task or one of its input tasks has been deleted."
        )
    return task.depends_on[-1]


def input_files(task: Task) -> list[File]:
    """The files of the tasks this one reads, in the order of its `input` (never a watermark's picture)."""
    ids = task.depends_on[:-1] if picture_task_id(task) else task.depends_on
    order = Case(*[When(task_id=pk, then=i) for i, pk in enumerate(ids)], output_field=IntegerField())
    files = list(File.objects.filter(task_id__in=ids).order_by(order, "created_at", "filename"))
    if not files:
        raise ConversionFailed("INPUT_TASK_FAILED", "The input task produced no files to work on.")
    return files


def picture_file(task: Task, workdir: Path) -> Path | None:
    """A local copy of the picture a watermark stamps (the first file of its image task)."""
    if (task_id := picture_task_id(task)) is None:
        return None
    file = File.objects.filter(task_id=task_id).order_by("created_at", "filename").first()
    if file is None:
        raise ConversionFailed("INPUT_TASK_FAILED", "The watermark's image task produced no file to stamp.")
    return download_to(file, workdir / "picture")


def import_base64(task: Task, workdir: Path) -> Outcome:
    content = base64.b64decode(task.payload["file"])
    return Outcome(files=[store_file(task, task.payload["filename"], io.BytesIO(content))])


def import_raw(task: Task, workdir: Path) -> Outcome:
    content = task.payload["file"].encode()
    return Outcome(files=[store_file(task, task.payload["filename"], io.BytesIO(content))])


def import_url(task: Task, workdir: Path) -> Outcome:
    from engine.fetch import fetch_url

    if (own := _own_file(task.payload["url"])) is not None:
        with engine_storage().open(own.path, "rb") as handle:
            return Outcome(files=[store_file(task, task.payload.get("filename") or own.filename, handle)])
    target = workdir / "download"
    filename = fetch_url(task.payload["url"], target, headers=task.payload.get("headers") or {})
    return Outcome(files=[store_output(task, task.payload.get("filename") or filename, target)])


def import_s3(task: Task, workdir: Path) -> Outcome:
    from engine.s3 import import_objects  # boto3 is loaded only by the tasks that need it

    return Outcome(files=import_objects(task, workdir))


def export_s3(task: Task, workdir: Path) -> Outcome:
    from engine.s3 import export_objects

    return Outcome(files=[], result=export_objects(task, input_files(task)))


def _own_file(url: str) -> File | None:
    """The stored file behind one of this engine's own export URLs, None for any other URL.

    Copied from storage rather than over HTTP: ccweb retries a job by importing its original through
    the export URL, and the engine often sits on 127.0.0.1, where import/url may not go."""
    link = signing.own_download(url)
    if link is None:
        return None
    file_id, valid = link
    if not valid:
        raise ConversionFailed(
            "INVALID_SIGNATURE",
            "The engine's download link is invalid or has expired; export the file again for a fresh link.",
        )
    file = File.objects.filter(pk=file_id).first() if is_uuid(file_id) else None
    if file is None or not engine_storage().exists(file.path):
        raise ConversionFailed("IMPORT_FAILED", "The file behind the engine's download link has been deleted.")
    return file


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


def _options_for(task: Task, conversion: converters.Conversion) -> dict:
    """The task's options as the conversion declares them (a task error when they are invalid),
    and the task marked with the engine that will run it: recorded with its outcome, and at once
    for a conversion long enough to follow by its progress (a write per task spared the quick ones)."""
    try:
        options = converters.clean_options(conversion, task.payload)
    except converters.InvalidOptions as error:
        details = " ".join(message for messages in error.errors.values() for message in messages)
        raise ConversionFailed("INVALID_OPTIONS", f"The options are invalid: {details}") from None
    if conversion.reports_progress and (task.engine, task.engine_version) != (
        conversion.engine, conversion.engine_version
    ):
        Task.objects.filter(pk=task.pk).update(engine=conversion.engine, engine_version=conversion.engine_version)
    task.engine, task.engine_version = conversion.engine, conversion.engine_version
    return options


def process(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """convert and the other registry operations: each input file through the matching converter."""
    payload = task.payload
    sources = input_files(task)
    output_format = converters.normalize_format(payload.get("output_format") or "")
    # Only a watermark's converter takes a picture; the others are called as they always were.
    picture = {"picture": path} if (path := picture_file(task, workdir)) is not None else {}
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
        options = _options_for(task, conversion)
        src = download_to(source, workdir / f"in-{index}")
        out_dir = workdir / f"out-{index}"
        out_dir.mkdir()
        stem = PurePosixPath(payload.get("filename") or source.filename).stem or "output"
        # A converter that follows its tool's progress reports it as its share of all the files.
        reporting = (
            {"progress": lambda percent: progress((100 * index + percent) // len(sources))}
            if conversion.reports_progress
            else {}
        )
        produced += conversion.run(
            src, out_dir, output_format=conversion.output_format, options=options, stem=stem, **reporting, **picture
        )
        credits += int(conversion.as_api()["credits"])
        if index + 1 < len(sources):  # after the last file, the task's end says 100 %
            progress(int(100 * (index + 1) / len(sources)))
    if not produced:
        raise ConversionFailed("CONVERSION_FAILED", "The conversion produced no output file.")
    pattern = payload.get("filename")
    files = [
        store_output(task, _output_name(pattern, path, i, len(produced)), path)
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
        combine.write_archive(sources, archive, "zip")
        files = [store_output(task, task.payload.get("filename") or "archive.zip", archive)]
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


def merge_files(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """All pages of all input files, in input order, as one PDF."""
    sources = input_files(task)
    pdfs: list[Path] = []
    for index, source in enumerate(sources):
        src = download_to(source, workdir / f"in-{index}")
        pdfs += combine.as_pdfs(src, workdir / f"pdf-{index}")
        progress(int(90 * (index + 1) / len(sources)))
    target = workdir / "merged.pdf"
    combine.merge_pdfs(pdfs, target)
    task.engine, task.engine_version = combine.MERGE_ENGINE
    return Outcome(files=[store_output(task, task.payload.get("filename") or "merged.pdf", target)], credits=1)


def archive_files(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """All input files in one zip or tar archive; names repeated across inputs get a number."""
    output_format = converters.normalize_format(task.payload["output_format"])
    target = workdir / f"archive.{output_format}"
    combine.write_archive(input_files(task), target, output_format)
    task.engine, task.engine_version = combine.ARCHIVE_ENGINE
    filename = task.payload.get("filename") or target.name
    return Outcome(files=[store_output(task, filename, target)], credits=1)


def extract_archives(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """Every regular file inside the input archives as an output file of its own (folders dropped)."""
    sources = input_files(task)
    extraction = extract.Extraction(folder=workdir / "extracted", max_bytes=max_upload_size())
    for index, source in enumerate(sources):
        src = download_to(source, workdir / f"in-{index}")
        extraction.extract(src, input_format=task.payload.get("input_format"))
        progress(int(90 * (index + 1) / len(sources)))
    if not extraction.members:
        raise ConversionFailed(
            "INVALID_FILE", "The archive holds no files to extract (only folders, links or unsafe paths)."
        )
    task.engine, task.engine_version = extract.EXTRACT_ENGINE
    # Stored only once all is extracted: a task that fails halfway leaves nothing in storage.
    files = [store_output(task, name, path) for name, path in extraction.members]
    return Outcome(files=files, credits=1)


def capture_website(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """The page at `url` as Chromium shows it: a pdf, png or jpg."""
    from engine.runner import task_timeout  # the runner imports this module

    payload = task.payload
    output_format = converters.normalize_format(payload.get("output_format") or "")
    conversion = converters.find("website", output_format, task.operation)
    if conversion is None or not conversion.is_installed():
        raise ConversionFailed(
            "INVALID_CONVERSION_TYPE", f"This engine cannot capture websites as {output_format or 'files'}."
        )
    options = _options_for(task, conversion)
    # Chromium is stopped at the task's own deadline, not only its result dropped afterwards.
    timeout = min(task_timeout(task), tool_timeout())
    (path,) = conversion.run(
        payload["url"],
        workdir,
        output_format=output_format,
        options=options,
        stem=web.default_stem(payload["url"]),
        headers=payload.get("headers") or {},
        timeout=timeout,
    )
    return Outcome(files=[store_output(task, payload.get("filename") or path.name, path)], credits=1)


IMPORTS: dict[str, Callable[[Task, Path], Outcome]] = {
    "import/base64": import_base64,
    "import/raw": import_raw,
    "import/url": import_url,
    "import/s3": import_s3,
}


def read_metadata(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    """`metadata`: what the first input file is (sizes, pages, duration, EXIF...), as scalars."""
    from engine.converters.metadata import read_metadata as read

    source = input_files(task)[0]
    src = download_to(source, workdir / "in")
    fmt = task.payload.get("input_format") or PurePosixPath(source.filename).suffix
    return Outcome(files=[], result={"metadata": read(src, fmt)})


# Operations that work on the whole task at once rather than one converter per input file.
WHOLE_TASK: dict[str, Callable[[Task, Path, Callable[[int], None]], Outcome]] = {
    "merge": merge_files,
    "archive": archive_files,
    "archive/extract": extract_archives,
    "capture-website": capture_website,
    "metadata": read_metadata,
}


def perform(task: Task, workdir: Path, progress: Callable[[int], None]) -> Outcome:
    if task.operation in IMPORTS:
        return IMPORTS[task.operation](task, workdir)
    if task.operation in WHOLE_TASK:
        return WHOLE_TASK[task.operation](task, workdir, progress)
    if task.operation == "export/s3":
        return export_s3(task, workdir)
    if task.operation in EXPORT_OPERATIONS:
        return export_url(task, workdir)
    return process(task, workdir, progress)
