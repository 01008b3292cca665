"""Markdown and HTML with pandoc: md → html, docx, epub, pdf (laid out by Chromium) and html → epub.

Markdown is read as GitHub-flavoured Markdown, the dialect people write READMEs in. pandoc embeds
the files a document names into docx and epub outputs — images, and through its metadata a cover
image (`cover-image:` in front matter, `<meta name="cover-image">` in HTML), stylesheets (`css:`),
fonts — from any path or URL; an uploaded document could so copy the server's files into its
output. Three fences, each enough on its own: a Lua filter drops every such metadata key, keeps
only images carried in the document itself (data: URIs) and drops raw HTML; pandoc runs with
`--sandbox` (it reads nothing but the files on its command line); and it runs inside the engine's
sandbox (the task's folder, no network). html → pdf and html → docx stay with LibreOffice
(engine/converters/office.py).

The pandoc is the one pypandoc-binary ships (3.x): Debian bookworm's 2.17 cannot write docx or epub
with --sandbox, as it then cannot read its own templates.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

from engine.converters import Conversion, ConversionFailed, Option, normalize_format, require_content
from engine.converters.chromium import PAPER_SIZES, print_to_pdf
from engine.converters.chromium import installed as chromium_installed
from engine.converters.sandbox import Sandbox
from engine.converters.tools import run_tool, tool_timeout, version_line
from engine.processes import temp_folder

logger = logging.getLogger(__name__)

LABELS: dict[str, str] = {"md": "Markdown", "html": "HTML"}
READERS: dict[str, str] = {"md": "gfm", "html": "html"}
WRITERS: dict[str, str] = {"html": "html5", "docx": "docx", "epub": "epub3"}

# Metadata through which pandoc reads files or URLs into its output (cover, stylesheets, fonts,
# bibliographies, templates, highlighting definitions).
FILE_METADATA = (
    "cover-image", "epub-cover-image", "css", "stylesheet", "epub-embed-font", "epub-fonts", "epub-metadata",
    "bibliography", "csl", "citation-abbreviations", "abbreviations", "reference-doc", "template",
    "include-before-body", "include-after-body", "include-in-header", "highlight-style", "syntax-definition",
    "syntax-definitions", "logo",
)
OFFLINE_FILTER = "local FILE_METADATA = {" + ", ".join(f'"{key}"' for key in FILE_METADATA) + "}" + """
function Meta(meta)
  for _, key in ipairs(FILE_METADATA) do meta[key] = nil end
  return meta
end
function Image(img)
  if img.src:sub(1, 5) ~= "data:" then return img.caption end
end
function RawInline(raw) if raw.format:match("html") then return {} end end
function RawBlock(raw) if raw.format:match("html") then return {} end end
"""

PAGE_SIZE = Option(
    "page_size", "enum", default="a4", possible_values=tuple(PAPER_SIZES),
    description="Paper size of the PDF, unless the document's CSS sets one with @page.",
)


def pandoc_binary() -> str | None:
    """pypandoc-binary's pandoc; a pandoc on PATH only when that package is missing."""
    try:
        import pypandoc
    except ImportError:
        return shutil.which("pandoc")
    bundled = Path(pypandoc.__file__).with_name("files") / "pandoc"
    return str(bundled) if bundled.is_file() else shutil.which("pandoc")


@functools.cache
def installed() -> bool:
    return bool(pandoc_binary())


def pdf_installed() -> bool:
    return installed() and chromium_installed()


@functools.cache
def pandoc_version() -> str:
    words = version_line(pandoc_binary() or "pandoc").split()  # "pandoc 3.9"
    return words[1] if len(words) > 1 else ""


def check_text(src: Path, input_format: str) -> None:
    """Refuse what is not UTF-8 text: pandoc would read a mislabelled image as Latin-1 gibberish."""
    label = LABELS[input_format]
    require_content(src, label)
    data = src.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConversionFailed(
            "INVALID_FILE", f"The file is not a UTF-8 text file; save the {label} as UTF-8 and upload it again."
        ) from None
    if b"\0" in data:
        raise ConversionFailed("INVALID_FILE", f"The file is not a {label} text file: it holds binary data.")


def pandoc(src: Path, dest: Path, *, input_format: str, output_format: str, title: str) -> Path:
    """src turned by pandoc into dest, with nothing read from outside the document."""
    tmp = temp_folder("pandoc")
    binary = pandoc_binary() or "pandoc"
    try:
        offline = tmp / "offline.lua"
        offline.write_text(OFFLINE_FILTER, encoding="utf-8")
        args = [binary, "--sandbox", "--from", READERS[input_format], "--to", WRITERS[output_format],
                "--standalone", "--output", str(dest.resolve())]
        if output_format == "html":
            args += ["--metadata", f"pagetitle={title}"]
        else:
            args += ["--lua-filter", str(offline)]
        if output_format == "epub" and input_format == "md":
            args += ["--metadata", f"title={title}"]  # an EPUB must have a title; Markdown has none to give
        # Run in an empty folder: relative image paths then point at nothing of ours.
        result = run_tool(
            [*args, str(src.resolve())],
            timeout=tool_timeout(),
            cwd=tmp,
            sandbox=Sandbox.of(tmp, src.parent, dest.parent, readable=[binary]),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if result.returncode != 0 or not dest.exists() or dest.stat().st_size == 0:
        logger.info("pandoc failed on %s → %s: %s", input_format, output_format, result.stderr[-2000:])
        raise ConversionFailed(
            "CONVERSION_FAILED",
            f"pandoc could not convert this {LABELS[input_format]} file to {output_format.upper()}.",
        )
    return dest


def convert_markup(
    src: Path, workdir: Path, *, input_format: str, output_format: str, options: dict, stem: str
) -> list[Path]:
    target = normalize_format(output_format)
    check_text(src, input_format)
    dest = workdir / f"{stem}.{output_format.lower()}"
    if target != "pdf":
        return [pandoc(src, dest, input_format=input_format, output_format=target, title=stem)]
    page = workdir / f".{stem}.print.html"
    pandoc(src, page, input_format=input_format, output_format="html", title=stem)
    try:
        print_to_pdf(page.read_bytes(), dest, timeout=tool_timeout(), paper=options.get("page_size") or "a4")
    finally:
        page.unlink()
    return [dest]


def _conversion(input_format: str, output_format: str) -> Conversion:
    return Conversion(
        operation="convert",
        input_format=input_format,
        output_format=output_format,
        engine="pandoc",
        engine_version=pandoc_version(),
        group="document",
        options=(PAGE_SIZE,) if output_format == "pdf" else (),
        run=functools.partial(convert_markup, input_format=input_format),
        is_installed=pdf_installed if output_format == "pdf" else installed,
    )


CONVERSIONS: list[Conversion] = [
    *(_conversion("md", target) for target in ("html", "pdf", "docx", "epub")),
    _conversion("html", "epub"),
]
