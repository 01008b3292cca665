"""The single-file operations: optimize, thumbnail, watermark, and what metadata reports."""

import io
import subprocess
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions
from engine.converters.metadata import read_metadata
from tests.files import pdf_bytes, png_bytes


def run(
    operation: str, src: Path, workdir: Path, input_format: str, output_format: str | None = None, **params
) -> Path:
    output_format = output_format or input_format
    conversion = converters.find(input_format, output_format, operation)
    assert conversion is not None, f"{operation} {input_format} → {output_format} is not registered"
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    [out] = conversion.run(src, workdir, output_format=output_format, options=options, stem="result")
    assert out.name == f"result.{output_format}"
    assert [p.name for p in workdir.iterdir()] == [out.name]  # no temporary file left beside it
    return out


def gradient(size: tuple[int, int] = (300, 200)) -> Image.Image:
    """A photo-like picture: smooth colours with some grain, tens of thousands of them."""
    ramp = Image.linear_gradient("L")
    colours = Image.merge("RGB", (ramp.resize(size), ramp.rotate(90).resize(size), ramp.rotate(180).resize(size)))
    grain = Image.effect_noise(size, 60).convert("RGB")
    return Image.blend(colours, grain, 0.15)


def write(path: Path, img: Image.Image, fmt: str, **params) -> Path:
    img.save(path, fmt, **params)
    return path


def photo_pdf(path: Path) -> Path:
    """One 4-inch square page holding a 1200×1200 px photo at 300 dpi: much to gain from downsampling."""
    gradient((1200, 1200)).save(path, "PDF", resolution=300.0)
    return path


# --- optimize ---------------------------------------------------------------------------------


def test_it_makes_a_pdf_smaller_with_ghostscript(tmp_path: Path) -> None:
    src = photo_pdf(tmp_path / "scan.pdf")

    web = run("optimize", src, tmp_path / "web", "pdf")
    out = run("optimize", src, tmp_path / "out", "pdf", profile="max")

    assert out.stat().st_size < web.stat().st_size < src.stat().st_size / 4
    with pdfium.PdfDocument(out) as document:
        assert len(document) == 1
        assert document[0].get_size() == pytest.approx((288, 288), abs=1)  # 4 inches, as before


def test_it_returns_the_original_when_it_cannot_do_better(tmp_path: Path) -> None:
    src = tmp_path / "tiny.jpg"
    write(src, gradient((40, 30)), "JPEG", quality=10, optimize=True)

    out = run("optimize", src, tmp_path / "out", "jpg", quality=90)

    assert out.read_bytes() == src.read_bytes()


def test_it_recompresses_a_jpeg_progressively(tmp_path: Path) -> None:
    src = write(tmp_path / "photo.jpg", gradient(), "JPEG", quality=100)

    out = run("optimize", src, tmp_path / "out", "jpg")

    assert out.stat().st_size < src.stat().st_size / 2
    with Image.open(out) as img:
        assert (img.format, img.size) == ("JPEG", (300, 200))
        assert img.info.get("progressive") == 1


def test_it_shrinks_a_png_to_a_palette_or_keeps_every_pixel(tmp_path: Path) -> None:
    src = write(tmp_path / "chart.png", gradient(), "PNG")

    lossy = run("optimize", src, tmp_path / "lossy", "png")
    lossless = run("optimize", src, tmp_path / "lossless", "png", quality=100)

    assert lossy.stat().st_size < src.stat().st_size / 2
    with Image.open(lossy) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "P", (300, 200))
        assert len(img.getcolors()) <= 205
    with Image.open(lossless) as img, Image.open(src) as original:
        assert img.convert("RGB").tobytes() == original.convert("RGB").tobytes()


def test_it_offers_optimize_for_pdf_jpg_and_png_only() -> None:
    listed = {(c.input_format, c.output_format, c.engine) for c in converters.available("optimize")}

    assert listed == {("pdf", "pdf", "ghostscript"), ("jpg", "jpg", "pillow"), ("png", "png", "pillow")}
    assert converters.find("jpeg", "jpeg", "optimize") is not None


@pytest.mark.parametrize(("input_format", "content", "message"), [
    ("pdf", b"%PDF-1.7 this is not really a PDF", "The PDF could not be opened: it is damaged or not a PDF."),
    ("pdf", png_bytes(), "The PDF could not be opened: it is damaged or not a PDF."),
    ("jpg", png_bytes(), "The file is not a valid JPG image."),
    ("png", b"", "The file is empty; upload a PNG file with content."),
])
def test_it_refuses_to_optimize_a_broken_file(tmp_path: Path, input_format: str, content: bytes, message: str) -> None:
    src = tmp_path / f"broken.{input_format}"
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as error:
        run("optimize", src, tmp_path / "out", input_format)

    assert (error.value.code, error.value.message) == ("INVALID_FILE", message)


def test_it_stops_ghostscript_at_the_timeout(tmp_path: Path, settings) -> None:
    settings.ENGINE_TOOL_TIMEOUT = 0.01
    src = photo_pdf(tmp_path / "scan.pdf")

    with pytest.raises(ConversionFailed) as error:
        run("optimize", src, tmp_path / "out", "pdf")

    assert error.value.code == "TIMEOUT"
    gs = subprocess.run(["pgrep", "-f", f"OutputFile={tmp_path}"], capture_output=True, text=True)
    assert gs.stdout == ""


# --- thumbnail ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "size"), [
    ({"width": 100, "height": 100}, (100, 50)),
    ({"width": 100, "height": 100, "fit": "crop"}, (100, 100)),
    ({"width": 50, "height": 80, "fit": "scale"}, (50, 80)),
    ({"height": 40}, (80, 40)),
    ({}, (256, 128)),
    ({"width": 2000}, (400, 200)),  # max never enlarges
])
def test_it_makes_thumbnails_of_the_asked_size(tmp_path: Path, params: dict, size: tuple[int, int]) -> None:
    src = write(tmp_path / "wide.png", gradient((400, 200)), "PNG")

    out = run("thumbnail", src, tmp_path / "out", "png", "jpg", **params)

    with Image.open(out) as img:
        assert (img.format, img.size) == ("JPEG", size)


def test_it_crops_around_the_centre(tmp_path: Path) -> None:
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    img.paste((0, 0, 255), (100, 0, 200, 100))
    src = write(tmp_path / "flag.png", img, "PNG")

    out = run("thumbnail", src, tmp_path / "out", "png", "webp", width=50, height=50, fit="crop", quality=95)

    with Image.open(out) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (50, 50))
        assert thumb.convert("RGB").getpixel((5, 25)) == pytest.approx((0, 0, 255), abs=20)


def test_it_makes_a_thumbnail_of_a_pdf_first_page(tmp_path: Path) -> None:
    src = tmp_path / "three.pdf"
    src.write_bytes(pdf_bytes(3))  # 200×280 pt pages, the first one (0, 120, 200)

    out = run("thumbnail", src, tmp_path / "out", "pdf", "png", width=100)

    with Image.open(out) as img:
        assert (img.format, img.size) == ("PNG", (100, 140))
        assert img.convert("RGB").getpixel((50, 70)) == pytest.approx((0, 120, 200), abs=3)


def test_it_refuses_thumbnails_of_a_broken_pdf_or_bad_options(tmp_path: Path) -> None:
    src = tmp_path / "broken.pdf"
    src.write_bytes(b"%PDF-1.4\n%%EOF")

    with pytest.raises(ConversionFailed) as error:
        run("thumbnail", src, tmp_path / "out", "pdf", "png")
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(converters.find("png", "png", "thumbnail"), {"fit": "stretch", "width": -1})

    assert error.value.code == "INVALID_FILE"
    assert set(invalid.value.errors) == {"fit", "width"}
    assert converters.find("pdf", "pdf", "thumbnail") is None  # thumbnails are pictures


# --- watermark ----------------------------------------------------------------------------------


def page_texts(path: Path) -> list[str]:
    with pdfium.PdfDocument(path) as document:
        return [document[i].get_textpage().get_text_bounded() for i in range(len(document))]


def test_it_stamps_searchable_text_on_every_pdf_page(tmp_path: Path) -> None:
    src = tmp_path / "contract.pdf"
    src.write_bytes(pdf_bytes(3))

    out = run("watermark", src, tmp_path / "out", "pdf", text="Überprüft — ΔΣ", font_size=16)

    assert page_texts(out) == ["Überprüft — ΔΣ"] * 3


def test_it_stamps_only_the_asked_pages_where_asked(tmp_path: Path) -> None:
    src = tmp_path / "contract.pdf"
    src.write_bytes(pdf_bytes(3))

    out = run(
        "watermark", src, tmp_path / "out", "pdf", text="DRAFT", pages="2-", font_size=20,
        position_vertical="top", position_horizontal="right", margin_vertical=10, margin_horizontal=15,
    )

    assert page_texts(out) == ["", "DRAFT", "DRAFT"]
    with pdfium.PdfDocument(out) as document:
        textpage = document[1].get_textpage()
        left, bottom, _, _ = textpage.get_charbox(0)
        _, _, right, top = textpage.get_charbox(4)
    assert right == pytest.approx(200 - 15, abs=3)
    assert top == pytest.approx(280 - 10, abs=6)
    assert left > 100 and bottom > 240


def test_it_blends_the_pdf_mark_by_its_opacity(tmp_path: Path) -> None:
    src = tmp_path / "page.pdf"
    src.write_bytes(pdf_bytes(1))  # background (0, 120, 200)

    out = run("watermark", src, tmp_path / "out", "pdf", text="█", font_size=120, opacity=50, font_color="#000000")

    with pdfium.PdfDocument(out) as document:
        picture = document[0].render(scale=1).to_pil().convert("RGB")
    assert picture.getpixel((100, 140)) == pytest.approx((0, 60, 100), abs=4)


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_it_stamps_images_with_blended_text(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"photo.{fmt}"
    white = Image.new("RGB", (400, 200), (255, 255, 255))
    write(src, white, {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt], quality=100)

    out = run(
        "watermark", src, tmp_path / "out", fmt, text="█", font_size=100, opacity=50, font_color="ff0000", quality=100
    )

    with Image.open(out) as img:
        assert img.size == (400, 200)
        rgb = img.convert("RGB")
        assert rgb.getpixel((200, 100)) == pytest.approx((255, 128, 128), abs=6)  # half-transparent red on white
        assert rgb.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)


def test_it_places_image_text_by_position_and_margins(tmp_path: Path) -> None:
    src = write(tmp_path / "photo.png", Image.new("RGB", (400, 200), (255, 255, 255)), "PNG")

    out = run(
        "watermark", src, tmp_path / "out", "png", text="█", font_size=40, opacity=100,
        position_vertical="bottom", position_horizontal="left", margin_vertical=5, margin_horizontal=7,
    )

    with Image.open(out) as img:
        left, top, right, bottom = Image.eval(img.convert("L"), lambda v: 255 - v).getbbox()
    assert (left, bottom) == (pytest.approx(7, abs=1), pytest.approx(195, abs=1))
    assert right < 60 and top > 140


@pytest.mark.parametrize(("params", "field"), [
    ({}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "x", "font_color": "red"}, "font_color"),
    ({"text": "x", "opacity": 0}, "opacity"),
    ({"text": "x", "position_vertical": "middle"}, "position_vertical"),
    ({"text": "x", "pages": "one"}, "pages"),
])
def test_it_rejects_watermark_options_that_do_not_fit(params: dict, field: str) -> None:
    with pytest.raises(InvalidOptions) as error:
        converters.clean_options(converters.find("pdf", "pdf", "watermark"), params)

    assert list(error.value.errors) == [field]


def test_it_refuses_to_watermark_a_broken_file(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(png_bytes())

    with pytest.raises(ConversionFailed) as error:
        run("watermark", src, tmp_path / "out", "jpg", text="x")

    assert (error.value.code, error.value.message) == ("INVALID_FILE", "The file is not a valid JPG image.")


# --- metadata -----------------------------------------------------------------------------------


def test_it_reads_an_images_size_and_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Fujifilm"  # Make
    exif[0x0110] = "X100V"  # Model
    src = write(tmp_path / "photo.jpg", gradient((64, 48)), "JPEG", exif=exif, dpi=(300, 300))

    info = read_metadata(src)

    assert info["FileType"] == "JPG" and info["MIMEType"] == "image/jpeg"
    assert (info["ImageWidth"], info["ImageHeight"]) == ("64", "48")
    assert (info["Make"], info["Model"], info["XResolution"]) == ("Fujifilm", "X100V", "300")
    assert all(isinstance(value, str) for value in info.values())


def test_it_reads_a_pdfs_pages_and_document_information(tmp_path: Path) -> None:
    src = tmp_path / "report.pdf"
    buffer = io.BytesIO()
    pages = [Image.new("RGB", (200, 280)), Image.new("RGB", (200, 280))]
    pages[0].save(
        buffer, "PDF", save_all=True, append_images=pages[1:], resolution=72, title="Annual report", author="Alice"
    )
    src.write_bytes(buffer.getvalue())

    info = read_metadata(src)

    assert info["FileType"] == "PDF" and info["MIMEType"] == "application/pdf"
    assert (info["PageCount"], info["PageWidth"], info["PageHeight"]) == ("2", "200", "280")
    assert (info["Title"], info["Author"]) == ("Annual report", "Alice")


def test_it_reads_a_videos_streams(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-metadata", "title=Test card",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src)],
        check=True, timeout=60,
    )

    info = read_metadata(src)

    assert info["FileType"] == "MP4" and info["MIMEType"] == "video/mp4"
    assert float(info["Duration"]) == pytest.approx(1, abs=0.1)
    assert (info["VideoCodec"], info["ImageWidth"], info["ImageHeight"]) == ("h264", "160", "120")
    assert (info["AudioCodec"], info["AudioSampleRate"]) == ("aac", "44100")
    assert info["Title"] == "Test card"


@pytest.mark.parametrize(("content", "message"), [
    (b"", "The file is empty; upload a TXT file with content."),
    (b"just some words\n", "The metadata of this TXT file cannot be read: it is damaged or of an unknown kind."),
])
def test_it_refuses_what_it_cannot_read_metadata_of(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "notes.txt"
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as error:
        read_metadata(src)

    assert (error.value.code, error.value.message) == ("INVALID_FILE", message)
