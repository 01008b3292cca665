"""All of a job's files as one zip, streamed from our copies (or the API's links meanwhile)."""

import shutil
import zipfile
from pathlib import PurePosixPath
from tempfile import SpooledTemporaryFile
from typing import IO

from conversions.cloudconvert.client import get_client
from conversions.models import ConversionJob, OutputFile

# Small archives stay in memory; bigger ones spill to a temporary file.
SPOOL_MAX_MEMORY = 16 * 1024 * 1024


def zip_filename(job: ConversionJob) -> str:
    """photo.pdf → png gives photo-png.zip."""
    stem = PurePosixPath(job.input_filename).stem or "conversion"
    return f"{stem}-{job.output_format}.zip"


def zip_of_outputs(outputs: list[OutputFile]) -> IO[bytes]:
    archive = SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
    # Converted files are mostly compressed formats already: storing them is as small and faster.
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for output in outputs:
            with zf.open(output.filename, "w") as entry:
                if output.file:
                    with output.file.open("rb") as source:
                        shutil.copyfileobj(source, entry)
                else:
                    get_client().download(output.remote_url, entry)
    archive.seek(0)
    return archive
