"""The converter registry: lookup, listing for /v2/convert/formats, and option validation."""

from pathlib import Path

import pytest

from engine import converters
from engine.converters import Conversion, InvalidOptions, Option


def _unused_run(src: Path, workdir: Path, *, output_format: str, options: dict, stem: str) -> list[Path]:
    raise AssertionError("never run")


def make_conversion(*options: Option) -> Conversion:
    return Conversion("convert", "x", "y", "test", "1", "document", options, _unused_run)


def test_it_finds_a_conversion_by_formats_whatever_the_case_or_alias() -> None:
    conversion = converters.find("PNG", "jpeg")

    assert conversion is converters.find("png", "jpg")
    assert (conversion.input_format, conversion.output_format, conversion.operation) == ("png", "jpg", "convert")
    assert conversion.engine == "pillow"


def test_it_finds_nothing_for_an_unknown_pair_or_operation() -> None:
    assert converters.find("png", "mp3") is None
    assert converters.find("exe", "pdf") is None
    assert converters.find("png", "jpg", operation="teleport") is None


def test_it_lists_the_conversions_this_machine_can_run() -> None:
    listed = converters.available("convert")
    pairs = {(c.input_format, c.output_format) for c in listed}

    assert {("png", "jpg"), ("jpg", "webp"), ("tiff", "gif"), ("bmp", "pdf"), ("pdf", "png"), ("pdf", "jpg")} <= pairs
    assert len(pairs) == len(listed)  # no pair listed twice
    assert all(c.operation == "convert" for c in listed)
    assert {c.operation for c in converters.available()} >= {"convert", "optimize", "thumbnail", "watermark"}
    assert converters.available("teleport") == []


def test_it_leaves_out_conversions_whose_tool_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = Conversion(
        "convert", "zzz", "pdf", "nowhere", "0", "document", (), _unused_run, is_installed=lambda: False
    )
    monkeypatch.setitem(converters._registry, ("convert", "zzz", "pdf"), missing)

    assert missing not in converters.available()
    assert converters.find("zzz", "pdf") is missing  # still known, so a task gets a clear error


def test_it_describes_a_conversion_as_the_api_lists_it() -> None:
    assert converters.find("pdf", "png").as_api() == {
        "operation": "convert",
        "input_format": "pdf",
        "output_format": "png",
        "engine": "pdfium",
        "credits": 1,
        "meta": {"group": "image"},
    }


def test_it_includes_the_declared_options_when_asked() -> None:
    listed = converters.find("png", "jpg").as_api(include_options=True)

    assert listed["options"] == [
        {"name": "width", "type": "integer", "default": None, "possible_values": None},
        {"name": "height", "type": "integer", "default": None, "possible_values": None},
        {"name": "fit", "type": "enum", "default": "max", "possible_values": ["max", "upscale", "scale"]},
        {"name": "quality", "type": "integer", "default": 85, "possible_values": None},
    ]
    pdf_options = {o["name"]: o for o in converters.find("pdf", "png").as_api(include_options=True)["options"]}
    assert pdf_options["pixel_density"]["default"] == 150
    assert pdf_options["pages"] == {"name": "pages", "type": "string", "default": None, "possible_values": None}


def test_it_fills_defaults_and_ignores_keys_that_are_not_options() -> None:
    payload = {"input": "import-1", "output_format": "jpg", "filename": "a.jpg", "engine": "pillow", "width": 640}

    cleaned = converters.clean_options(converters.find("png", "jpg"), payload)

    assert cleaned == {"width": 640, "height": None, "fit": "max", "quality": 85}


def test_it_coerces_values_sent_as_text() -> None:
    cleaned = converters.clean_options(
        converters.find("pdf", "jpg"), {"pixel_density": "300", "quality": 70.0, "pages": " 1-2 "}
    )

    assert cleaned == {"pages": "1-2", "pixel_density": 300, "quality": 70}


def test_it_treats_null_and_blank_as_the_default() -> None:
    cleaned = converters.clean_options(converters.find("pdf", "png"), {"pages": "", "pixel_density": None})

    assert cleaned == {"pages": None, "pixel_density": 150}


def test_it_reports_every_bad_field_at_once() -> None:
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(converters.find("png", "webp"), {"quality": 101, "width": 1.5, "fit": 3})

    assert invalid.value.errors == {
        "quality": ["quality must be between 1 and 100."],
        "width": ["width must be a whole number."],
        "fit": ["fit must be one of: max, upscale, scale."],
    }


@pytest.mark.parametrize("value", [True, "yes please", 2.5])
def test_it_rejects_booleans_and_fractions_as_integers(value: object) -> None:
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(converters.find("png", "jpg"), {"quality": value})

    assert list(invalid.value.errors) == ["quality"]


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("false", False), ("1", True), (0, False)])
def test_it_accepts_the_usual_spellings_of_booleans(value: object, expected: bool) -> None:
    conversion = make_conversion(Option("strip", "boolean", default=False))

    assert converters.clean_options(conversion, {"strip": value}) == {"strip": expected}


@pytest.mark.parametrize("value", ["maybe", 2, [True]])
def test_it_rejects_anything_else_as_a_boolean(value: object) -> None:
    conversion = make_conversion(Option("strip", "boolean", default=False))

    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(conversion, {"strip": value})

    assert invalid.value.errors == {"strip": ["strip must be true or false."]}


def test_it_checks_floats_and_their_bounds() -> None:
    conversion = make_conversion(Option("zoom", "float", default=1.0, minimum=0.1, maximum=4))

    assert converters.clean_options(conversion, {"zoom": "2.5"}) == {"zoom": 2.5}
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(conversion, {"zoom": "nan"})
    assert invalid.value.errors == {"zoom": ["zoom must be a finite number."]}
    with pytest.raises(InvalidOptions) as invalid:
        converters.clean_options(conversion, {"zoom": 5})
    assert invalid.value.errors == {"zoom": ["zoom must be between 0.1 and 4."]}


def test_it_refuses_to_register_a_pair_twice() -> None:
    with pytest.raises(ValueError, match="png"):
        converters.register([converters.find("png", "jpg")])


def test_it_refuses_an_option_of_unknown_type() -> None:
    with pytest.raises(ValueError, match="colour"):
        Option("colour", "rgb")
