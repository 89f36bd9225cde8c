"""docs/configuration.md lists every setting of ``mailer/config.py``, with its default.

The settings have one definition, ``DEFAULTS``; the table under "## Settings" documents them.
A setting added to ``DEFAULTS`` and not to the table, one documented and not defined, or a
default that differs from the one in the code fails here, naming the setting.
"""

import re
from pathlib import Path

import pytest

from mailer.config import CHOICES, DEFAULTS, convert

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SECTION = "## Settings"
ROW = re.compile(r"^\|\s*`(?P<name>[A-Z][A-Z0-9_]*)`\s*\|(?P<default>[^|]*)\|(?P<meaning>.*)\|\s*$")
CODE = re.compile(r"`([^`]*)`")
EMPTY = "*empty*"  # how the table writes an empty default


def settings_rows(text):
    """``{name: (default cell, meaning cell)}`` of the table under the Settings heading."""
    lines = text.splitlines()
    start = lines.index(SECTION)
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        match = ROW.match(line)
        if match:
            if match["name"] in rows:
                raise AssertionError(f"{match['name']} is documented twice")
            rows[match["name"]] = (match["default"].strip(), match["meaning"].strip())
    return rows


def documented_default(cell):
    """The default a cell gives: the empty string for ``*empty*``, else its first code span."""
    if cell.startswith(EMPTY):
        return ""
    match = CODE.search(cell)
    return match.group(1) if match else cell


@pytest.fixture(scope="module")
def rows():
    return settings_rows(PAGE.read_text())


def test_every_setting_is_documented(rows):
    missing = sorted(set(DEFAULTS) - set(rows))
    assert not missing, f"add to {PAGE.name}'s Settings table: {', '.join(missing)}"


def test_every_documented_setting_is_defined(rows):
    unknown = sorted(set(rows) - set(DEFAULTS))
    assert not unknown, f"documented in {PAGE.name} but not in mailer/config.py: {unknown}"


def test_documented_defaults_are_the_code_s(rows):
    wrong = {}
    for name, (cell, _) in rows.items():
        if name in DEFAULTS:
            try:
                value = convert(documented_default(cell), DEFAULTS[name])
            except (TypeError, ValueError):
                value = cell
            if value != DEFAULTS[name]:
                wrong[name] = (cell, DEFAULTS[name])
    assert not wrong, f"defaults in {PAGE.name} differ from mailer/config.py: {wrong}"


def test_settings_of_a_few_words_name_each_word(rows):
    for name, allowed in CHOICES.items():
        _, meaning = rows[name]
        assert all(f"`{word}`" in meaning for word in allowed), (name, allowed)


def test_the_parser_reads_rows_and_stops_at_the_next_section():
    text = "\n".join(
        [
            "## Settings",
            "| setting | default | meaning |",
            "|---|---|---|",
            "| `A_SETTING` | `5` (five) | what it does |",
            "| `B_SETTING` | *empty* (`A_SETTING`) | another |",
            "## Next",
            "| `NOT_A_SETTING` | `1` | elsewhere |",
        ]
    )
    rows = settings_rows(text)
    assert rows == {
        "A_SETTING": ("`5` (five)", "what it does"),
        "B_SETTING": ("*empty* (`A_SETTING`)", "another"),
    }
    assert documented_default(rows["A_SETTING"][0]) == "5"
    assert documented_default(rows["B_SETTING"][0]) == ""
    assert documented_default("10 MB") == "10 MB"
