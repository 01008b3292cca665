"""Hostile documents against the real converters: each tries to read a file outside its task's folder
or to reach the network, the way a logged-in attacker would upload it.

The secrets live beside the task's folder (another user's output, a database file, the worker's
environment); a small HTTP server on 127.0.0.1 records every request a tool makes. Every document
must convert (or fail in words) with no secret in its output and no request made.
"""

import io
import socket
import sqlite3
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed
from tests.files import png_bytes

SECRET = "CCWEB-HOSTILE-SECRET-51d2"


class Recorder:
    """Requests that reached the local server, whoever made them."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.paths.append(f"{self.command} {self.path}")
                body = png_bytes() if self.path.endswith(".png") else b"body { color: red }"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_OPTIONS = do_POST = do_PROPFIND = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """Files of others beside the task's folder, and a secret in the worker's environment."""
    other = tmp_path / "other-user"
    other.mkdir()
    picture = Image.new("RGB", (40, 30), "blue")
    picture_info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    picture_info.add_text("comment", SECRET)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", pnginfo=picture_info)
    (other / "photo.png").write_bytes(buffer.getvalue())
    (other / "notes.txt").write_text(f"{SECRET} in a text file\n")
    (other / "style.css").write_text(f'body::before {{ content: "{SECRET}" }}\n')
    database = sqlite3.connect(other / "db.sqlite3")
    database.execute("CREATE TABLE secrets (value TEXT)")
    database.execute("INSERT INTO secrets VALUES (?)", (SECRET,))
    database.commit()
    database.close()
    monkeypatch.setenv("CCWEB_HOSTILE_SECRET", SECRET)
    return {
        "picture": other / "photo.png",
        "text": other / "notes.txt",
        "css": other / "style.css",
        "database": other / "db.sqlite3",
        "environ": Path("/proc/self/environ"),
    }


def convert(src: Path, input_format: str, output_format: str) -> Path:
    """src (in its task's in/ folder) converted into the task's out/ folder."""
    conversion = converters.find(input_format, output_format)
    assert conversion is not None
    workdir = src.parent.parent / "out"
    workdir.mkdir(exist_ok=True)
    [out] = conversion.run(
        src, workdir, output_format=output_format, options=converters.clean_options(conversion, {}), stem="out"
    )
    return out


def task_input(tmp_path: Path, name: str, content: bytes | str) -> Path:
    folder = tmp_path / "task" / "in"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / name
    src.write_bytes(content.encode() if isinstance(content, str) else content)
    return src


def zip_text(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


# Pixel sizes of the pictures the secrets and the local server would bring.
FETCHED_SIZES = {(40, 30), (64, 48)}


def pdf_text_and_images(path: Path) -> tuple[str, list[tuple[int, int]]]:
    """The PDF's text, and the pixel size of each picture in it."""
    with pdfium.PdfDocument(path) as document:
        text = "".join(document[i].get_textpage().get_text_bounded() for i in range(len(document)))
        images = [
            tuple(image.get_px_size())
            for i in range(len(document))
            for image in document[i].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])
        ]
    return text, images


# --- pandoc: Markdown and HTML → EPUB / DOCX ---------------------------------------------------------


@pytest.mark.parametrize("output_format", ["epub", "docx"])
@pytest.mark.parametrize("key", ["cover-image", "css", "epub-embed-font", "bibliography"])
@pytest.mark.parametrize("secret", ["environ", "database", "picture", "text"])
def test_pandoc_takes_no_file_named_in_front_matter(
    tmp_path: Path, secrets: dict[str, Path], recorder: Recorder, key: str, secret: str, output_format: str
) -> None:
    src = task_input(
        tmp_path, "book.md",
        f"---\ntitle: A book\n{key}: {secrets[secret]}\nstylesheet: {recorder.url}/s.css\n---\n# Chapter\n\nText.\n",
    )

    out = convert(src, "md", output_format)

    content = zip_text(out)
    assert b"Chapter" in content
    assert SECRET.encode() not in content
    assert not [n for n in zip_names(out) if "cover" in n.lower() or "media/" in n or n.endswith(".sqlite3")]
    assert recorder.paths == []


@pytest.mark.parametrize("secret", ["environ", "database", "picture"])
def test_pandoc_takes_no_file_named_by_an_html_page(
    tmp_path: Path, secrets: dict[str, Path], recorder: Recorder, secret: str
) -> None:
    src = task_input(
        tmp_path, "page.html",
        f'<html><head><title>Page</title><meta name="cover-image" content="{secrets[secret]}">'
        f'<link rel="stylesheet" href="{secrets["css"]}"><link rel="stylesheet" href="{recorder.url}/s.css">'
        f'</head><body><h1>Heading</h1><img src="file://{secrets["picture"]}"><img src="{recorder.url}/x.png">'
        f'<iframe src="file://{secrets["text"]}"></iframe></body></html>',
    )

    out = convert(src, "html", "epub")

    content = zip_text(out)
    assert b"Heading" in content
    assert SECRET.encode() not in content
    assert not [n for n in zip_names(out) if "cover" in n.lower() or "media/" in n]
    assert recorder.paths == []


def test_pandoc_lays_out_markdown_as_pdf_without_fetching(
    tmp_path: Path, secrets: dict[str, Path], recorder: Recorder
) -> None:
    src = task_input(
        tmp_path, "page.md",
        f"---\ncss: {secrets['css']}\n---\n# Printed\n\n![x]({recorder.url}/x.png)\n\n"
        f'<link rel="stylesheet" href="{recorder.url}/s.css"><img src="file://{secrets["picture"]}">\n'
        f'<iframe src="file://{secrets["text"]}"></iframe>\n',
    )

    text, images = pdf_text_and_images(convert(src, "md", "pdf"))

    assert "Printed" in text and SECRET not in text
    assert not FETCHED_SIZES & set(images)  # Chromium's broken-image icons only
    assert recorder.paths == []


# --- LibreOffice: HTML, DOCX, ODT, ODS linking to files and URLs --------------------------------------

DOCX_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"""
DOCX_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
 Target="word/document.xml"/></Relationships>"""
DOCX_DOCUMENT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rIdWeb" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
 Target="{url}/linked.png" TargetMode="External"/>
<Relationship Id="rIdFile" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
 Target="file://{picture}" TargetMode="External"/>
<Relationship Id="rIdText" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/subDocument"
 Target="file://{text}" TargetMode="External"/>
</Relationships>"""
DOCX_PICTURE = """<w:p><w:r><w:drawing><wp:inline><wp:extent cx="914400" cy="685800"/><wp:docPr id="{n}" name="p{n}"/>
<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic>
<pic:nvPicPr><pic:cNvPr id="{n}" name="p{n}"/><pic:cNvPicPr/></pic:nvPicPr>
<pic:blipFill><a:blip r:link="{rel}"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>
<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="914400" cy="685800"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr>
</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"""
DOCX_DOCUMENT = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"
 xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
 xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"
 xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"><w:body>
<w:p><w:r><w:t>Linked pictures</w:t></w:r></w:p>{pictures}
<w:p><w:fldSimple w:instr=' INCLUDEPICTURE "{url}/field.png" \\d '><w:r><w:t>picture field</w:t></w:r></w:fldSimple></w:p>
<w:p><w:fldSimple w:instr=' INCLUDETEXT "{text}" '><w:r><w:t>text field</w:t></w:r></w:fldSimple></w:p>
<w:subDoc r:id="rIdText"/>
</w:body></w:document>"""


def make_docx(url: str, secrets: dict[str, Path]) -> bytes:
    pictures = "".join(DOCX_PICTURE.format(n=n, rel=rel) for n, rel in enumerate(("rIdWeb", "rIdFile"), start=1))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as docx:
        docx.writestr("[Content_Types].xml", DOCX_TYPES)
        docx.writestr("_rels/.rels", DOCX_RELS)
        docx.writestr(
            "word/_rels/document.xml.rels",
            DOCX_DOCUMENT_RELS.format(url=url, picture=secrets["picture"], text=secrets["text"]),
        )
        docx.writestr("word/document.xml", DOCX_DOCUMENT.format(pictures=pictures, url=url, text=secrets["text"]))
    return buffer.getvalue()


ODF_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">
 <manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>
 <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"""
ODF_NAMESPACES = """xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
 xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.2\""""
ODT_IMAGE = """<text:p><draw:frame draw:name="f{n}" text:anchor-type="as-char" svg:width="3cm" svg:height="2cm">
<draw:image xlink:href="{href}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></text:p>"""
ODT_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {namespaces}><office:body><office:text>
<text:p>Linked content</text:p>{images}
<text:section text:name="linked"><text:section-source xlink:href="file://{text}" xlink:type="simple"/>
<text:p>section placeholder</text:p></text:section>
<text:section text:name="linked-web"><text:section-source xlink:href="{url}/section.html" xlink:type="simple"/>
<text:p>web section placeholder</text:p></text:section>
</office:text></office:body></office:document-content>"""
ODS_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {namespaces}><office:body><office:spreadsheet>
<table:table table:name="Sheet1"><table:table-row>
<table:table-cell office:value-type="string"><text:p>Linked cells</text:p></table:table-cell>
<table:table-cell table:formula="of:=WEBSERVICE(&quot;{url}/cell&quot;)" office:value-type="string"><text:p>?</text:p></table:table-cell>
<table:table-cell table:formula="of:=['file://{text}'#$Sheet1.A1]" office:value-type="string"><text:p>?</text:p></table:table-cell>
</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"""


def make_odf(mime: str, content: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as odf:
        odf.writestr("mimetype", mime, zipfile.ZIP_STORED)
        odf.writestr("META-INF/manifest.xml", ODF_MANIFEST.format(mime=mime))
        odf.writestr("content.xml", content)
    return buffer.getvalue()


def hostile_office_document(kind: str, url: str, secrets: dict[str, Path]) -> bytes:
    if kind == "html":
        return (
            f'<html><head><link rel="stylesheet" href="{url}/s.css"><link rel="stylesheet" href="file://{secrets["css"]}">'
            f'</head><body><p>Linked content</p><img src="{url}/x.png"><img src="file://{secrets["picture"]}">'
            f'<img src="{secrets["picture"]}"><iframe src="file://{secrets["text"]}"></iframe>'
            f'<iframe src="{url}/frame.html"></iframe><embed src="file://{secrets["text"]}"></body></html>'
        ).encode()
    if kind == "docx":
        return make_docx(url, secrets)
    if kind == "odt":
        hrefs = (f"{url}/linked.png", f"file://{secrets['picture']}", str(secrets["picture"]))
        images = "".join(ODT_IMAGE.format(n=n, href=href) for n, href in enumerate(hrefs))
        content = ODT_CONTENT.format(namespaces=ODF_NAMESPACES, images=images, text=secrets["text"], url=url)
        return make_odf("application/vnd.oasis.opendocument.text", content)
    content = ODS_CONTENT.format(namespaces=ODF_NAMESPACES, url=url, text=secrets["text"])
    return make_odf("application/vnd.oasis.opendocument.spreadsheet", content)


@pytest.mark.parametrize("kind", ["html", "docx", "odt", "ods"])
def test_libreoffice_loads_no_linked_content(
    tmp_path: Path, secrets: dict[str, Path], recorder: Recorder, kind: str
) -> None:
    src = task_input(tmp_path, f"linked.{kind}", hostile_office_document(kind, recorder.url, secrets))

    text, images = pdf_text_and_images(convert(src, kind, "pdf"))

    assert "Linked" in text
    assert SECRET not in text
    assert not FETCHED_SIZES & set(images)  # neither the local picture nor the server's
    assert recorder.paths == []


# --- ffmpeg: a playlist posing as a video ------------------------------------------------------------


def test_ffmpeg_follows_no_playlist_inside_a_video(tmp_path: Path, recorder: Recorder) -> None:
    other = tmp_path / "other-user"
    other.mkdir()
    segment = other / "private.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=64x48:rate=5", "-y", str(segment)],
        check=True,
    )
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:1.0,\n{recorder.url}/segment.ts\n#EXTINF:1.0,\nfile://{segment}\n#EXTINF:1.0,\n{segment}\n"
        "#EXT-X-ENDLIST\n"
    )
    src = task_input(tmp_path, "video.mp4", playlist)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, "mp4", "webm")

    assert failure.value.code == "INVALID_FILE"
    assert recorder.paths == []


# --- Chromium: capture-website may not use WebRTC to reach the machine's network ------------------------

WEBRTC_PAGE = """<!doctype html><html><body><p>WebRTC</p><script>
const pc = new RTCPeerConnection({iceServers: [{urls: "stun:127.0.0.1:%(port)d"},
  {urls: "turn:127.0.0.1:%(port)d?transport=udp", username: "u", credential: "p"}]});
pc.createDataChannel("leak");
pc.createOffer().then(offer => pc.setLocalDescription(offer));
</script></body></html>"""


def test_capture_website_sends_no_webrtc_packet(tmp_path: Path, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = True  # the page itself is served here, on loopback
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    port = udp.getsockname()[1]
    page = (WEBRTC_PAGE % {"port": port}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conversion = converters.find("website", "png", operation="capture-website")
    workdir = tmp_path / "task"
    workdir.mkdir()
    try:
        [shot] = conversion.run(
            f"http://127.0.0.1:{server.server_address[1]}/webrtc.html", workdir, output_format="png",
            options=converters.clean_options(conversion, {"wait_time": 3000}), stem="shot", headers={}, timeout=60,
        )
    finally:
        server.shutdown()
    packets = []
    while True:
        try:
            packets.append(udp.recvfrom(2048))
        except TimeoutError:
            break
    udp.close()

    assert shot.stat().st_size > 0
    assert packets == []


# --- rsvg-convert: drawings claiming huge sizes or nested without end ------------------------------------


@pytest.mark.parametrize("side", ["30000", "200000", "5000in"])
def test_svg_with_a_huge_size_is_painted_within_the_cap(tmp_path: Path, side: str) -> None:
    src = task_input(
        tmp_path, "huge.svg",
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" viewBox="0 0 10 5">'
        '<rect width="10" height="5" fill="red"/></svg>',
    )

    out = convert(src, "svg", "png")

    with Image.open(out) as picture:
        assert max(picture.size) == 8192


@pytest.mark.parametrize(
    "drawing",
    [
        "<g>" * 5000 + "<rect width='5' height='5'/>" + "</g>" * 5000,
        # Each level uses the one below ten times: 10^12 rectangles if nothing stopped it.
        "<defs><rect id='l0' width='1' height='1'/>"
        + "".join(
            f"<g id='l{n}'>" + "".join(f"<use href='#l{n - 1}'/>" for _ in range(10)) + "</g>" for n in range(1, 13)
        )
        + "</defs><use href='#l12'/>",
    ],
    ids=["nested", "exponential-use"],
)
def test_svg_without_end_fails_in_words(tmp_path: Path, drawing: str) -> None:
    src = task_input(
        tmp_path, "deep.svg", f'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">{drawing}</svg>'
    )

    with pytest.raises(ConversionFailed) as failure:
        convert(src, "svg", "png")

    assert failure.value.code == "INVALID_FILE"
    assert failure.value.message.endswith(".")
