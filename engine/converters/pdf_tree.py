"""A PDF's page tree walked on its own, before pdfium reads pages: loops are found here.

pdfium follows /Kids without remembering where it has been: a list that contains one of its
ancestors makes it meet the same pages again and again, up to 1024 levels down. A 12 KB file can so
pass for a million pages, and looking each one up takes minutes (tests/test_engine_hostile_pdf.py
has such files). pdfium's API does not tell which object a page is, so the tree is read here from
pdfium's own re-serialisation of the document: one classic xref table, every object written out
plainly (object streams unpacked, damaged cross-references already repaired the way pdfium sees
them). Only the catalog and the page tree's nodes are parsed; content streams are never looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# pdfium's own limits: how deep a page tree, and how deep arrays and dictionaries inside one object.
MAX_DEPTH = 1024
MAX_NESTING = 64
_SPACE = rb"\x00\t\n\x0c\r "
_REGULAR = rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]"
_TOKEN = re.compile(
    rb"(?:[" + _SPACE + rb"]+|%[^\r\n]*)*"  # whitespace and comments before a token
    rb"(<<|>>|\[|\]|\(|<|/" + _REGULAR + rb"*|" + _REGULAR + rb"+)"
)
_INTEGER = re.compile(rb"[+-]?\d+")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_XREF_ENTRY = re.compile(rb"[" + _SPACE + rb"]*(\d{10}) (\d{5}) ([nf])")
_STARTXREF = re.compile(rb"startxref[" + _SPACE + rb"]*(\d+)")
_STRING_SYNTAX = re.compile(rb"[()\\]")


def _name(token: bytes) -> bytes:
    """A name without its slash, #xx escapes decoded: /K#69ds is /Kids to pdfium too."""
    return _NAME_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), token[1:])


class UnreadableTree(Exception):
    """The page tree could not be read here (syntax this reader does not know)."""


class BrokenTree(Exception):
    """The page tree loops, shares a branch, or nests deeper than pdfium follows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Ref:
    number: int
    generation: int


class _Other:
    """A value the walk never needs (strings, numbers, booleans, null)."""


OTHER = _Other()


class Reader:
    """Objects of a PDF with a classic cross-reference table, parsed on demand."""

    def __init__(self, data: bytes | memoryview | Any) -> None:
        self.data = data
        self.offsets: dict[int, int] = {}
        self.trailer: dict[bytes, Any] = {}
        match = _STARTXREF.match(data, max(0, data.rfind(b"startxref", max(0, len(data) - 1024))))
        if match is None:
            raise UnreadableTree("no startxref")
        self._read_xref(int(match.group(1)))

    def _read_xref(self, offset: int) -> None:
        """The one cross-reference table pdfium writes (no incremental sections, no streams)."""
        position = self._expect(offset, b"xref")
        while True:
            token, after = self._token(position)
            if token == b"trailer":
                break
            count, position = self._token(after)
            if not (_INTEGER.fullmatch(token) and _INTEGER.fullmatch(count)):
                raise UnreadableTree("malformed xref subsection")
            for number in range(int(token), int(token) + int(count)):
                entry = _XREF_ENTRY.match(self.data, position)
                if entry is None:
                    raise UnreadableTree("malformed xref entry")
                position = entry.end()
                if entry.group(3) == b"n":
                    self.offsets[number] = int(entry.group(1))
        trailer, _ = self._value(after)
        if not isinstance(trailer, dict) or b"Prev" in trailer or b"XRefStm" in trailer:
            raise UnreadableTree("trailer")
        self.trailer = trailer

    def _token(self, position: int) -> tuple[bytes, int]:
        match = _TOKEN.match(self.data, position)
        if match is None:
            raise UnreadableTree(f"no token at {position}")
        return bytes(match.group(1)), match.end()

    def _expect(self, position: int, keyword: bytes) -> int:
        token, position = self._token(position)
        if token != keyword:
            raise UnreadableTree(f"expected {keyword!r}")
        return position

    def _value(self, position: int, nesting: int = 0) -> tuple[Any, int]:
        if nesting > MAX_NESTING:
            raise UnreadableTree("nested too deeply")
        token, position = self._token(position)
        if token == b"<<":
            result: dict[bytes, Any] = {}
            while True:
                key, after = self._token(position)
                if key == b">>":
                    return result, after
                if not key.startswith(b"/"):
                    raise UnreadableTree("dictionary key")
                result[_name(key)], position = self._value(after, nesting + 1)
        if token == b"[":
            items = []
            while True:
                token, after = self._token(position)
                if token == b"]":
                    return items, after
                item, position = self._value(position, nesting + 1)
                items.append(item)
        if token == b"(":
            return OTHER, self._skip_string(position)
        if token == b"<":
            end = self.data.find(b">", position)
            if end < 0:
                raise UnreadableTree("hex string")
            return OTHER, end + 1
        if token.startswith(b"/"):
            return _name(token), position
        if _INTEGER.fullmatch(token):
            # "12 0 R" is a reference: two integers and R.
            generation, after = self._token(position)
            if _INTEGER.fullmatch(generation):
                keyword, end = self._token(after)
                if keyword == b"R":
                    return Ref(int(token), int(generation)), end
            return int(token), position
        if token in (b">>", b"]", b"{", b"}"):
            raise UnreadableTree(f"unexpected {token!r}")
        return OTHER, position

    def _skip_string(self, position: int) -> int:
        depth = 1
        while depth:
            match = _STRING_SYNTAX.search(self.data, position)
            if match is None:
                raise UnreadableTree("unterminated string")
            char, position = match.group(0), match.end()
            if char == b"\\":
                position += 1
            else:
                depth += 1 if char == b"(" else -1
        return position

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, Ref):
            return value
        offset = self.offsets.get(value.number)
        if offset is None:
            return None  # a free or missing object is null, as in pdfium
        number, position = self._token(offset)
        _generation, position = self._token(position)
        position = self._expect(position, b"obj")
        if number != str(value.number).encode():
            raise UnreadableTree(f"object {value.number} is not at its offset")
        return self._value(position)[0]


def count_pages(data: bytes | memoryview | Any) -> int:
    """The leaves of the page tree of a PDF as pdfium saves it; BrokenTree when a /Kids list leads
    back to a node already met (a loop, or one branch listed twice), or nests deeper than pdfium
    follows; UnreadableTree when the syntax is beyond this reader."""
    reader = Reader(data)
    catalog = reader.resolve(reader.trailer.get(b"Root"))
    root = catalog.get(b"Pages") if isinstance(catalog, dict) else None
    if not isinstance(reader.resolve(root), dict):
        raise UnreadableTree("no page tree")
    leaves = 0
    met: set[Ref] = set()  # a node written inline cannot be listed twice; one by reference can
    pending: list[tuple[Any, dict, int]] = [(root, reader.resolve(root), 1)]
    while pending:
        reference, node, depth = pending.pop()
        if isinstance(reference, Ref):
            if reference in met:
                raise BrokenTree("loop")
            met.add(reference)
        if depth > MAX_DEPTH:
            raise BrokenTree("depth")
        kids = reader.resolve(node.get(b"Kids"))
        for kid in kids if isinstance(kids, list) else []:
            child = reader.resolve(kid)
            if isinstance(child, dict) and b"Kids" in child:  # a node, as pdfium tells them
                pending.append((kid, child, depth + 1))
            elif isinstance(child, dict):
                leaves += 1
    return leaves
