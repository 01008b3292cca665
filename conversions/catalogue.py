"""What the API can convert, as the new-conversion page needs it: outputs grouped by category,
only the outputs valid for an input, and the options declared for each (input, output) pair."""

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlsplit

GROUP_LABELS = {
    "image": "Images",
    "document": "Documents",
    "spreadsheet": "Spreadsheets",
    "presentation": "Presentations",
    "audio": "Audio",
    "video": "Video",
    "ebook": "E-books",
    "archive": "Archives",
}


def input_format_of(name: str) -> str:
    """The input format the API will assume: the file name's extension, lower case."""
    suffix = PurePosixPath(urlsplit(name).path if "://" in name else name).suffix.lower().lstrip(".")
    return {"jpeg": "jpg", "tif": "tiff", "htm": "html"}.get(suffix, suffix)


@dataclass
class Catalogue:
    """Built from the items of GET /v2/convert/formats?include=options."""

    items: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pairs: dict[tuple[str, str], dict] = {
            (str(i["input_format"]), str(i["output_format"])): i
            for i in self.items
            if i.get("operation", "convert") == "convert"
        }

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def knows_input(self, input_format: str) -> bool:
        return any(inp == input_format for inp, _ in self._pairs)

    def converts(self, input_format: str, output_format: str) -> bool:
        return (input_format, output_format) in self._pairs

    def group_of(self, output_format: str) -> str:
        groups = [(i.get("meta") or {}).get("group", "other") for (_, out), i in self._pairs.items() if out == output_format]
        # An output's category is the one most of its conversions report (pdf is a document even from an image).
        return max(set(groups), key=groups.count) if groups else "other"

    def output_choices(self) -> list[tuple[str, list[tuple[str, str]]]]:
        by_group: dict[str, set[str]] = defaultdict(set)
        for _, out in self._pairs:
            by_group[self.group_of(out)].add(out)
        return [
            (GROUP_LABELS.get(group, group.capitalize()), [(f, f.upper()) for f in sorted(outputs)])
            for group, outputs in sorted(by_group.items())
        ]

    def output_formats(self) -> list[str]:
        return sorted({out for _, out in self._pairs})

    def options_for(self, input_format: str, output_format: str) -> list[dict]:
        """Declared options of the pair; with the input unknown, of every conversion to the output."""
        if input_format:
            items = [self._pairs[(input_format, output_format)]] if self.converts(input_format, output_format) else []
        else:
            items = [i for (_, out), i in self._pairs.items() if out == output_format]
        return _unique_options(items)

    def all_options(self) -> list[dict]:
        return _unique_options(self._pairs.values())

    def for_browser(self) -> dict:
        """{input: {output: [option names]}} for convert.js, which filters the page by the files chosen."""
        pairs: dict[str, dict[str, list[str]]] = defaultdict(dict)
        for (inp, out), item in self._pairs.items():
            pairs[inp][out] = [o["name"] for o in item.get("options") or []]
        return {"pairs": pairs, "groups": {out: self.group_of(out) for _, out in self._pairs}}


def _unique_options(items) -> list[dict]:
    seen: dict[str, dict] = {}
    for item in items:
        for option in item.get("options") or []:
            seen.setdefault(option["name"], option)
    return list(seen.values())
