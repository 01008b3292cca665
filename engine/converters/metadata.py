"""What the metadata operation reports about a file: a flat mapping of names to strings.

The result is data, not a file, so it does not fit the registry's run functions (which return files);
the metadata operation calls read_metadata and puts the mapping in the task's `result.metadata`.
Values are scalar strings, as the Java SDK maps them (PROTOCOL §10.12); names follow ExifTool's,
which CloudConvert's own metadata operation reports: FileType, MIMEType, ImageWidth, PageCount...
"""

from __future__ import annotations

import json
import mimetypes
import warnings
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from engine.converters import ConversionFailed, normalize_format, require_content
from engine.converters.media import INPUT_PROTOCOLS, PROBE_TIMEOUT
from engine.converters.pdf import open_pdf
from engine.converters.sandbox import Sandbox
from engine.converters.tools import run_tool

# Metadata of PDFs as pdfium names it → ExifTool's names.
PDF_KEYS: dict[str, str] = {
    "Title": "Title", "Author": "Author", "Subject": "Subject", "Keywords": "Keywords", "Creator": "Creator",
    "Producer": "Producer", "CreationDate": "CreateDate", "ModDate": "ModifyDate",
}
MAX_VALUE_LENGTH = 1000  # a maker note or a thumbnail blob is no use in a JSON result


def _clean(data: dict[str, object]) -> dict[str, str]:
    """Only non-empty scalars, as text."""
    cleaned: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, bytes) or value is None:
            continue
        text = str(value).strip().replace("\x00", "")
        if text:
            cleaned[key] = text[:MAX_VALUE_LENGTH]
    return cleaned


def _base(path: Path, file_type: str) -> dict[str, object]:
    return {
        "FileName": path.name,
        "FileSize": path.stat().st_size,
        "FileType": file_type.upper(),
        "MIMEType": mimetypes.guess_type(f"x.{file_type}")[0] or "application/octet-stream",
    }


def _pdf(path: Path) -> dict[str, object]:
    with open_pdf(path) as document:
        info: dict[str, object] = {
            **_base(path, "pdf"),
            "PDFVersion": f"{document.get_version() / 10:.1f}" if document.get_version() else None,
            "PageCount": len(document),
        }
        width, height = document.get_page_size(0)
        info["PageWidth"], info["PageHeight"] = f"{width:g}", f"{height:g}"
        for key, value in document.get_metadata_dict(skip_empty=True).items():
            if key in PDF_KEYS:
                info[PDF_KEYS[key]] = value
    return info


def _image(path: Path) -> dict[str, object] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # the header is enough: nothing is decoded
                info: dict[str, object] = {
                    **_base(path, normalize_format(img.format or "")),
                    "MIMEType": img.get_format_mimetype() or "application/octet-stream",
                    "ImageWidth": img.width,
                    "ImageHeight": img.height,
                    "ColorMode": img.mode,
                    "FrameCount": getattr(img, "n_frames", 1),
                }
                if dpi := img.info.get("dpi"):
                    info["XResolution"], info["YResolution"] = (f"{float(d):g}" for d in dpi)
                exif = img.getexif()
                for tag, value in [*exif.items(), *exif.get_ifd(ExifTags.IFD.Exif).items()]:
                    info.setdefault(ExifTags.TAGS.get(tag, f"Tag{tag:04x}"), value)
                return info
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None


def _media(path: Path) -> dict[str, object] | None:
    result = run_tool(
        ["ffprobe", "-v", "error", *INPUT_PROTOCOLS, "-of", "json", "-show_format", "-show_streams", str(path)],
        timeout=PROBE_TIMEOUT,
        sandbox=Sandbox.of(path.parent),
    )
    try:
        data = json.loads(result.stdout or b"{}")
    except ValueError:
        return None
    container, streams = data.get("format") or {}, data.get("streams") or []
    if result.returncode != 0 or not container or not streams:
        return None
    suffix = normalize_format(path.suffix) or container.get("format_name", "").split(",")[0]
    info: dict[str, object] = {
        **_base(path, suffix), "Duration": container.get("duration"), "BitRate": container.get("bit_rate")
    }
    # ffprobe guesses still-image "streams" from the file name alone: one without a size is no picture.
    video = next((s for s in streams if s.get("codec_type") == "video" and s.get("width")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        return None
    if video:
        info.update(
            VideoCodec=video.get("codec_name"), ImageWidth=video.get("width"), ImageHeight=video.get("height"),
            VideoFrameRate=video.get("avg_frame_rate"),
        )
    if audio:
        info.update(
            AudioCodec=audio.get("codec_name"), AudioSampleRate=audio.get("sample_rate"),
            AudioChannels=audio.get("channels"),
        )
    for key, value in (container.get("tags") or {}).items():
        # "major_brand" → "MajorBrand", "title" → "Title", as ExifTool spells them
        info.setdefault("".join(part[:1].upper() + part[1:] for part in key.split("_")), value)
    return info


def read_metadata(path: Path, input_format: str | None = None) -> dict[str, str]:
    """Names → values describing the file at path (a PDF, an image, a video or a sound file).

    The kind is told from the content, not the extension; input_format (or the file's extension)
    only names the format in the error when nothing can read the file."""
    label = (normalize_format(input_format or path.suffix) or "file").upper()
    require_content(path, label)
    with path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" in head:
        return _clean(_pdf(path))
    info = _image(path) or _media(path)
    if info is None:
        raise ConversionFailed(
            "INVALID_FILE", f"The metadata of this {label} file cannot be read: it is damaged or of an unknown kind."
        )
    return _clean(info)
