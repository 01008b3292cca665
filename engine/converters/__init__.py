"""The engine's converters: one module per tool family, behind one registry.

Each family module declares its conversions (formats, engine, options, run function); the registry
answers "can we do X → Y?" (`find`), lists what this machine can do (`available`, which feeds
/v2/convert/formats) and validates task options against the same declarations (`clean_options`), so
the listing and the validation can never disagree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Names users commonly type for the same format; the registry only stores the canonical one.
ALIASES: dict[str, str] = {"jpeg": "jpg", "tif": "tiff", "htm": "html"}

OPTION_TYPES = frozenset({"string", "integer", "float", "boolean", "enum"})


def _always_installed() -> bool:
    return True


@dataclass(frozen=True)
class Option:
    """One option a conversion accepts, as listed by /v2/convert/formats?include=options."""

    name: str
    type: str  # "string" | "integer" | "float" | "boolean" | "enum"
    default: Any = None
    possible_values: tuple | None = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    # For strings: the syntax a value must match in full (checked when the task is created).
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"Option {self.name!r} has unknown type {self.type!r}.")
        if self.type == "enum" and not self.possible_values:
            raise ValueError(f"Enum option {self.name!r} needs possible_values.")

    def as_api(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "possible_values": list(self.possible_values) if self.possible_values else None,
        }


@dataclass(frozen=True)
class Conversion:
    """One (operation, input format, output format) the engine can perform, and how."""

    operation: str
    input_format: str
    output_format: str
    engine: str
    engine_version: str
    group: str
    options: tuple[Option, ...]
    # run(src, workdir, *, output_format, options, stem) -> output files; called in a worker process.
    run: Callable[..., list[Path]]
    # Whether the tool behind `run` exists on this machine (LibreOffice may be missing, Pillow never).
    is_installed: Callable[[], bool] = field(default=_always_installed, compare=False, repr=False)
    # Whether `run` takes a keyword `progress: Callable[[int], None]` to report percent as it works.
    reports_progress: bool = field(default=False, compare=False, repr=False)
    # Rules across options (trim_end after trim_start...): cleaned options -> errors per field.
    check: Callable[[dict], dict[str, list[str]]] | None = field(default=None, compare=False, repr=False)

    def as_api(self, *, include_options: bool = False) -> dict:
        data: dict[str, Any] = {
            "operation": self.operation,
            "input_format": self.input_format,
            "output_format": self.output_format,
            "engine": self.engine,
            "credits": 1,
            "meta": {"group": self.group},
        }
        if include_options:
            data["options"] = [option.as_api() for option in self.options]
        return data


class ConversionFailed(Exception):
    """A conversion could not produce its output; `message` is shown to the user as is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidOptions(Exception):
    """Task options that do not fit the conversion's declared options (an API 422)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("The given data was invalid.")
        self.errors = errors


def normalize_format(name: str) -> str:
    name = (name or "").strip().lower().lstrip(".")
    return ALIASES.get(name, name)


def require_content(src: Path, label: str) -> None:
    """Fail early and plainly on an empty upload; every tool reports it in its own obscure way."""
    if src.stat().st_size == 0:
        raise ConversionFailed("INVALID_FILE", f"The file is empty; upload a {label} file with content.")


# ---------------------------------------------------------------------------------------------
# The registry

_registry: dict[tuple[str, str, str], Conversion] = {}


def register(conversions: Iterable[Conversion]) -> None:
    for conversion in conversions:
        key = (conversion.operation, conversion.input_format, conversion.output_format)
        if key in _registry:
            raise ValueError(f"Two converters claim {key}.")
        _registry[key] = conversion


def find(input_format: str, output_format: str, operation: str = "convert") -> Conversion | None:
    """The conversion for this pair, or None. Aliases such as "jpeg" resolve to "jpg"."""
    return _registry.get((operation, normalize_format(input_format), normalize_format(output_format)))


def available(operation: str | None = None) -> list[Conversion]:
    """The conversions this machine can run now, in a stable order (family, then registration)."""
    return [
        conversion
        for conversion in _registry.values()
        if (operation is None or conversion.operation == operation) and conversion.is_installed()
    ]


# ---------------------------------------------------------------------------------------------
# Option validation

_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bounds_error(option: Option) -> str:
    if option.minimum is not None and option.maximum is not None:
        return f"{option.name} must be between {option.minimum:g} and {option.maximum:g}."
    if option.minimum is not None:
        return f"{option.name} must be at least {option.minimum:g}."
    return f"{option.name} must be at most {option.maximum:g}."


def _coerce(option: Option, value: Any) -> Any:
    """The value in the option's type; raises ValueError with the user-facing message."""
    if option.type == "integer":
        if isinstance(value, bool):
            raise ValueError(f"{option.name} must be a whole number.")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError(f"{option.name} must be a whole number.")
    elif option.type == "float":
        if isinstance(value, bool):
            raise ValueError(f"{option.name} must be a number.")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{option.name} must be a number.") from None
        if not math.isfinite(value):
            raise ValueError(f"{option.name} must be a finite number.")
    elif option.type == "boolean":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        elif isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        if not isinstance(value, bool):
            raise ValueError(f"{option.name} must be true or false.")
        return value
    elif option.type == "enum":
        allowed = {str(v).lower(): v for v in option.possible_values or ()}
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            listed = ", ".join(str(v) for v in option.possible_values or ())
            raise ValueError(f"{option.name} must be one of: {listed}.")
        return allowed[value.strip().lower()]
    else:
        if not isinstance(value, str):
            raise ValueError(f"{option.name} must be text.")
        value = value.strip()
        if option.pattern and not re.fullmatch(option.pattern, value):
            raise ValueError(f"{option.name} has an invalid format: {value!r}.")
        return value

    if (option.minimum is not None and value < option.minimum) or (
        option.maximum is not None and value > option.maximum
    ):
        raise ValueError(_bounds_error(option))
    return value


def clean_options(conversion: Conversion, params: dict) -> dict:
    """Every declared option with a clean value: the given one (validated, coerced) or the default.

    Keys that are not declared options are ignored, because task payloads also carry input,
    output_format, filename, engine, timeout and more. A null or blank value means "use the default",
    as a blank form field or a JSON null would. The conversion's `check` then judges the options
    together (an end before a start), so those errors are 422s at creation time too.
    """
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for option in conversion.options:
        value = params.get(option.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            cleaned[option.name] = option.default
            continue
        try:
            cleaned[option.name] = _coerce(option, value)
        except ValueError as error:
            errors[option.name] = [str(error)]
    if not errors and conversion.check is not None:
        errors = conversion.check(cleaned)
    if errors:
        raise InvalidOptions(errors)
    return cleaned


# The families register themselves on import; they import the names above, so this comes last.
from engine.converters import image, image_formats, markup, media, office, optimize, pdf, svg  # noqa: E402
from engine.converters import thumbnail, watermark  # noqa: E402
from engine.converters import web  # noqa: E402

register(image.CONVERSIONS)
register(pdf.CONVERSIONS)
register(office.CONVERSIONS)
register(media.CONVERSIONS)
register(markup.CONVERSIONS)
register(svg.CONVERSIONS)
register(image_formats.CONVERSIONS)
register(optimize.CONVERSIONS)
register(thumbnail.CONVERSIONS)
register(watermark.CONVERSIONS)
register(web.CONVERSIONS)
