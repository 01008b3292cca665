"""SVG with rsvg-convert, and ico/avif/heic with Pillow (heic through pillow-heif): drawings and pictures made here, outputs opened again."""

from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions, image_formats
from tests.files import png_bytes

DRAWING = """<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60" viewBox="0 0 120 60">
  <rect x="0" y="0" width="60" height="60" fill="#0000ff"/>
  <text x="65" y="35" font-family="DejaVu Sans" font-size="14">ccweb</text>
</svg>"""


def convert(src: Path, workdir: Path, input_format: str, output_format: str, **params) -> Path:
    conversion = converters.find(input_format, output_format)
    assert conversion is not None, f"{input_format} → {output_format} is not registered"
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    [out] = conversion.run(src, workdir, output_format=output_format, options=options, stem="result")
    assert out.name == f"result.{output_format}"
    return out


@pytest.fixture
def drawing(tmp_path: Path) -> Path:
    src = tmp_path / "logo.svg"
    src.write_text(DRAWING, encoding="utf-8")
    return src


@pytest.mark.parametrize(("output_format", "pillow_name"), [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_it_renders_a_drawing_at_its_own_size(
    tmp_path: Path, drawing: Path, output_format: str, pillow_name: str
) -> None:
    out = convert(drawing, tmp_path / "out", "svg", output_format)

    with Image.open(out) as img:
        assert img.format == pillow_name
        assert img.size == (120, 60)
        red, green, blue = img.convert("RGB").getpixel((30, 30))
        assert blue > 200 and red < 40 and green < 40
        if output_format == "jpg":
            assert img.convert("RGB").getpixel((119, 0)) == pytest.approx((255, 255, 255), abs=3)  # white, not black


def test_it_scales_a_drawing_keeping_its_proportions(tmp_path: Path, drawing: Path) -> None:
    wide = convert(drawing, tmp_path / "a", "svg", "png", width=480)
    exact = convert(drawing, tmp_path / "b", "svg", "png", width=100, height=100)

    with Image.open(wide) as img:
        assert img.size == (480, 240)
    with Image.open(exact) as img:
        assert img.size == (100, 100)


def test_it_keeps_a_drawing_as_vectors_in_a_pdf(tmp_path: Path, drawing: Path) -> None:
    out = convert(drawing, tmp_path / "out", "svg", "pdf")

    with pdfium.PdfDocument(out) as document:
        assert len(document) == 1
        assert document[0].get_size() == pytest.approx((90, 45), abs=1)  # 120×60 px at 96 dpi, in points
        assert "ccweb" in document[0].get_textpage().get_text_bounded()


def test_it_does_not_load_files_a_drawing_names(tmp_path: Path) -> None:
    (tmp_path / "red.png").write_bytes(png_bytes((60, 60), (255, 0, 0, 255)))
    src = tmp_path / "nosy.svg"
    src.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="60" height="60">'
        '<image href="red.png" width="60" height="60"/>'
        f'<image xlink:href="file://{tmp_path}/red.png" width="60" height="60"/>'
        "</svg>"
    )

    out = convert(src, tmp_path / "out", "svg", "png")

    with Image.open(out) as img:
        assert img.getpixel((30, 30))[3] == 0  # still transparent: the picture was not read


@pytest.mark.parametrize("content", [b"", b"not a drawing", png_bytes(), b"<svg xmlns='http://www.w3.org/2000/svg'><rect"])
def test_it_refuses_what_is_not_a_drawing(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "broken.svg"
    src.write_bytes(content)

    with pytest.raises(ConversionFailed) as error:
        convert(src, tmp_path / "out", "svg", "png")

    assert error.value.code == "INVALID_FILE"
    expected = "empty" if not content else "The file is not a valid SVG drawing, or it is damaged."
    assert expected in error.value.message


def test_it_bounds_the_size_asked_for_a_drawing() -> None:
    with pytest.raises(InvalidOptions) as error:
        converters.clean_options(converters.find("svg", "png"), {"width": 100000})

    assert list(error.value.errors) == ["width"]


def test_it_makes_a_multi_size_square_icon(tmp_path: Path) -> None:
    src = tmp_path / "logo.png"
    src.write_bytes(png_bytes((300, 100), (0, 128, 0, 255)))

    out = convert(src, tmp_path / "out", "png", "ico")

    with Image.open(out) as icon:
        assert icon.format == "ICO"
        assert icon.info["sizes"] == {(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)}
        assert icon.size == (256, 256)
        icon.load()
        assert icon.getpixel((128, 128)) == (0, 128, 0, 255)
        assert icon.getpixel((128, 5))[3] == 0  # padded with transparency, not stretched


def test_it_reads_an_icon_at_its_largest_size(tmp_path: Path) -> None:
    src = tmp_path / "favicon.ico"
    Image.new("RGBA", (48, 48), (200, 0, 0, 255)).save(src, "ICO", sizes=[(16, 16), (48, 48)])

    out = convert(src, tmp_path / "out", "ico", "png")

    with Image.open(out) as img:
        assert (img.format, img.size) == ("PNG", (48, 48))


def test_it_converts_to_and_from_avif(tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    src.write_bytes(png_bytes((64, 48), (10, 120, 200, 255)))

    avif = convert(src, tmp_path / "a", "png", "avif", quality=60, width=32)
    back = convert(avif, tmp_path / "b", "avif", "jpg")

    with Image.open(avif) as img:
        assert (img.format, img.size) == ("AVIF", (32, 24))
    with Image.open(back) as img:
        assert (img.format, img.size) == ("JPEG", (32, 24))
        assert img.getpixel((16, 12)) == pytest.approx((10, 120, 200), abs=12)


def test_it_converts_a_phone_photo_from_heic_and_back(tmp_path: Path) -> None:
    src = tmp_path / "IMG_0001.heic"
    photo = Image.new("RGB", (80, 60), (200, 40, 40))
    exif = photo.getexif()
    exif[0x0112] = 6  # stored sideways, as phones do: shown turned 90° clockwise
    photo.save(src, "HEIF", quality=90, exif=exif.tobytes())

    jpg = convert(src, tmp_path / "a", "heic", "jpg", quality=80)
    heic = convert(jpg, tmp_path / "b", "jpg", "heic", width=30)

    with Image.open(jpg) as img:
        assert (img.format, img.size) == ("JPEG", (60, 80))  # upright
        assert img.getpixel((30, 40)) == pytest.approx((200, 40, 40), abs=12)
    with Image.open(heic, formats=["HEIF"]) as img:
        assert (img.format, img.size) == ("HEIF", (30, 40))
        assert img.convert("RGB").getpixel((15, 20)) == pytest.approx((200, 40, 40), abs=16)


def test_it_lists_avif_ico_and_heic_only_as_this_machine_supports_them(monkeypatch) -> None:
    listed = {(c.input_format, c.output_format) for c in converters.available("convert")}

    assert image_formats.supported("ico") and image_formats.supported("avif") and image_formats.supported("heic")
    expected = {
        ("png", "ico"), ("ico", "webp"), ("avif", "png"), ("jpg", "avif"), ("ico", "avif"), ("avif", "pdf"),
        ("heic", "jpg"), ("heif", "png"), ("png", "heic"), ("heic", "pdf"),
    }
    assert expected <= listed
    jpg_options = {o.name for o in converters.find("heic", "jpg").options}
    assert {"quality", "width", "height", "fit"} <= jpg_options

    image_formats.supported.cache_clear()
    monkeypatch.setattr(image_formats, "pillow_heif", None)  # a machine without the plugin
    try:
        listed = {(c.input_format, c.output_format) for c in converters.available("convert")}
        assert ("heic", "jpg") not in listed and ("png", "avif") in listed
    finally:
        image_formats.supported.cache_clear()


@pytest.mark.parametrize(
    ("input_format", "message"),
    [("ico", "not a valid ICO image"), ("avif", "not a valid AVIF image"), ("heic", "not a valid HEIC image")],
)
def test_it_reports_a_mislabelled_icon_or_avif(tmp_path: Path, input_format: str, message: str) -> None:
    src = tmp_path / f"fake.{input_format}"
    src.write_bytes(png_bytes())

    with pytest.raises(ConversionFailed) as error:
        convert(src, tmp_path / "out", input_format, "png")

    assert error.value.code == "INVALID_FILE"
    assert message in error.value.message
