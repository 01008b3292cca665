"""The README's table of what the engine converts says exactly what /v2/convert/formats offers.

The table's conversions column is read as written for people: clauses separated by ";", each
"inputs → targets", targets being formats, "themselves" and "each other" (the clause's other
inputs); words in parentheses only explain, except the options named in `backticks`, which must
be exactly the options of the row's conversions."""

import re
from pathlib import Path

import pytest

from engine import converters

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| family | tool | conversions |"
FORMAT = re.compile(r"[a-z0-9]+")


def table() -> dict[str, str]:
    """{family: conversions cell} of the README's engine table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        family, _tool, conversions = (cell.strip() for cell in line.strip("|").split("|"))
        rows[family] = conversions
    return rows


def formats(text: str, where: str) -> list[str]:
    names = [name.strip() for name in re.split(r",|\band\b", text) if name.strip()]
    for name in names:
        assert name in ("themselves", "each other") or FORMAT.fullmatch(name), f"{where}: {name!r} is not a format"
    return names


def pairs_of(cell: str) -> set[tuple[str, str]]:
    pairs = set()
    for clause in re.sub(r"\([^)]*\)", "", cell).split(";"):
        assert clause.count("→") == 1, f"{clause!r} is not 'inputs → targets'"
        left, right = clause.split("→")
        inputs = formats(left, clause)
        for target in formats(right, clause):
            if target == "themselves":
                pairs |= {(i, i) for i in inputs}
            elif target == "each other":
                pairs |= {(i, o) for i in inputs for o in inputs if i != o}
            else:
                pairs |= {(i, target) for i in inputs}
    return pairs


def test_it_reads_the_tables_wording_as_meant():
    assert pairs_of("a, b → themselves and each other; c → d, e (`x`; f)") == {
        ("a", "a"), ("b", "b"), ("a", "b"), ("b", "a"), ("c", "d"), ("c", "e"),
    }
    with pytest.raises(AssertionError):
        pairs_of("a, b in any direction")


def test_the_readme_lists_exactly_the_conversions_the_engine_offers():
    listed = {pair for cell in table().values() for pair in pairs_of(cell)}
    offered = {(c.input_format, c.output_format) for c in converters.available("convert")}
    assert offered, "the engine offers no conversion here: its tools are missing"
    assert not listed - offered, f"README.md lists conversions the engine does not offer: {sorted(listed - offered)}"
    assert not offered - listed, f"README.md does not list conversions the engine offers: {sorted(offered - listed)}"


@pytest.mark.parametrize("family", list(table()))
def test_each_row_names_exactly_the_options_of_its_conversions(family):
    cell = table()[family]
    named = set(re.findall(r"`([a-z_]+)`", cell))
    declared = set()
    for input_format, output_format in pairs_of(cell):
        conversion = converters.find(input_format, output_format)
        if conversion is not None:
            declared |= {option.name for option in conversion.options}
    assert named == declared, f"the {family} row names {sorted(named)}; its conversions take {sorted(declared)}"
