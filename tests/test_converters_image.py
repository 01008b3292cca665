"""Image conversions with Pillow, on real files made here and opened again to check the result."""

import io
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from engine import converters
from engine.converters import ConversionFailed, InvalidOptions

IMAGE_FORMATS = ["png", "jpg", "webp", "gif", "bmp", "tiff"]
PILLOW_NAMES = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF"}


def make_image(path: Path, fmt: str, size: tuple[int, int] = (64, 32), color=(200, 30, 30)) -> Path:
    Image.new("RGB", size, color).save(path, PILLOW_NAMES[fmt])
    return path


def convert(src: Path, workdir: Path, input_format: str, output_format: str, **params) -> list[Path]:
    conversion = converters.find(input_format, output_format)
    assert conversion is not None, f"{input_format} → {output_format} is not registered"
    options = converters.clean_options(conversion, params)
    workdir.mkdir(exist_ok=True)
    return conversion.run(src, workdir, output_format=output_format, options=options, stem="result")


@pytest.mark.parametrize("output_format", [*IMAGE_FORMATS, "pdf"])
@pytest.mark.parametrize("input_format", IMAGE_FORMATS)
def test_it_converts_between_every_image_format(tmp_path: Path, input_format: str, output_format: str) -> None:
    src = make_image(tmp_path / f"in.{input_format}", input_format, size=(64, 32))

    [out] = convert(src, tmp_path / "out", input_format, output_format)

    assert out.name == f"result.{output_format}"
    if output_format == "pdf":
        with pdfium.PdfDocument(out) as document:
            assert len(document) == 1
            width, height = document[0].get_size()
            assert width / height == pytest.approx(2, rel=1e-3)
    else:
        with Image.open(out) as img:
            assert img.format == PILLOW_NAMES[output_format]
            assert img.size == (64, 32)


def test_it_accepts_jpeg_as_an_alias_of_jpg(tmp_path: Path) -> None:
    src = make_image(tmp_path / "photo.jpeg", "jpg")

    assert converters.find("jpeg", "png") is converters.find("jpg", "png")
    [out] = convert(src, tmp_path / "out", "jpeg", "jpeg")

    assert out.name == "result.jpeg"
    with Image.open(out) as img:
        assert img.format == "JPEG"


def test_it_flattens_transparency_onto_white_for_jpg(tmp_path: Path) -> None:
    src = tmp_path / "clear.png"
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 10, 20))
    img.save(src)

    [out] = convert(src, tmp_path / "out", "png", "jpg", quality=100)

    with Image.open(out) as result:
        assert result.mode == "RGB"
        assert all(channel > 245 for channel in result.getpixel((15, 10)))  # was transparent
        red, green, blue = result.getpixel((3, 10))
        assert blue > 200 and red < 40 and green < 40  # opaque pixels are kept


def test_it_keeps_transparency_for_png_and_webp(tmp_path: Path) -> None:
    src = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(src)

    [out] = convert(src, tmp_path / "out", "png", "webp")

    with Image.open(out) as result:
        assert result.mode == "RGBA"
        assert result.getpixel((4, 4))[3] == 0


def test_it_takes_the_first_frame_of_an_animated_gif(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), color) for color in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)

    [out] = convert(src, tmp_path / "out", "gif", "png")

    with Image.open(out) as result:
        assert getattr(result, "n_frames", 1) == 1
        red, green, blue = result.convert("RGB").getpixel((8, 8))
        assert red > 200 and green < 50 and blue < 50


def test_it_turns_phone_photos_upright(tmp_path: Path) -> None:
    src = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    Image.new("RGB", (40, 20), (10, 10, 10)).save(src, "JPEG", exif=exif)

    [out] = convert(src, tmp_path / "out", "jpg", "png")

    with Image.open(out) as result:
        assert result.size == (20, 40)


def test_it_makes_smaller_jpgs_at_lower_quality(tmp_path: Path) -> None:
    src = tmp_path / "noise.png"
    Image.effect_noise((128, 128), 60).convert("RGB").save(src)

    [low] = convert(src, tmp_path / "low", "png", "jpg", quality=10)
    [high] = convert(src, tmp_path / "high", "png", "jpg", quality=95)

    assert low.stat().st_size < high.stat().st_size / 2


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 50}, (50, 25)),
        ({"height": 10}, (20, 10)),
        ({"width": 50, "height": 10}, (20, 10)),  # fits inside both, aspect kept
        ({"width": 400}, (100, 50)),  # no upscale unless asked
        ({"width": 400, "fit": "upscale"}, (400, 200)),
        ({"width": 30, "height": 30, "fit": "scale"}, (30, 30)),
    ],
)
def test_it_resizes_keeping_the_aspect_ratio_unless_told(tmp_path: Path, params: dict, size: tuple) -> None:
    src = make_image(tmp_path / "in.png", "png", size=(100, 50))

    [out] = convert(src, tmp_path / "out", "png", "webp", **params)

    with Image.open(out) as result:
        assert result.size == size


def test_it_reports_a_corrupt_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, "PNG")
    src = tmp_path / "broken.png"
    src.write_bytes(buffer.getvalue()[:200])

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", "jpg")

    assert failure.value.code == "INVALID_FILE"
    assert failure.value.message == "The file is not a valid PNG image."


def test_it_reports_an_empty_file(tmp_path: Path) -> None:
    src = tmp_path / "empty.jpg"
    src.write_bytes(b"")

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "jpg", "png")

    assert failure.value.code == "INVALID_FILE"
    assert "empty" in failure.value.message


def test_it_reports_a_file_that_is_not_what_its_name_says(tmp_path: Path) -> None:
    src = make_image(tmp_path / "really-a-jpeg.png", "jpg")

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", "gif")

    assert failure.value.message == "The file is not a valid PNG image."


def test_it_refuses_decompression_bombs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_image(tmp_path / "big.png", "png", size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", "jpg")

    assert failure.value.code == "INVALID_FILE"
    assert "too large" in failure.value.message


def test_it_refuses_to_upscale_past_the_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_image(tmp_path / "small.png", "png", size=(10, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)

    with pytest.raises(ConversionFailed) as failure:
        convert(src, tmp_path / "out", "png", "png", width=1000, fit="upscale")

    assert "too large" in failure.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [({"quality": 0}, "quality"), ({"quality": "high"}, "quality"), ({"width": -3}, "width"), ({"fit": "crop"}, "fit")],
)
def test_it_rejects_bad_option_values_by_field(params: dict, field: str) -> None:
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(converters.find("png", "jpg"), params)

    assert list(invalid.value.errors) == [field]
    assert field in invalid.value.errors[field][0]


def test_it_makes_a_one_page_pdf_with_the_scan_size(tmp_path: Path) -> None:
    src = tmp_path / "scan.png"
    Image.new("RGB", (300, 600), (255, 255, 255)).save(src, dpi=(300, 300))

    [out] = convert(src, tmp_path / "out", "png", "pdf")

    with pdfium.PdfDocument(out) as document:
        assert len(document) == 1
        assert document[0].get_size() == pytest.approx((72, 144), rel=1e-3)  # 1 × 2 inches
