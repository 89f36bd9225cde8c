"""validate_mail against hostile input (issue 19, items 6-8): encoded display names, addresses
the parser would rewrite or fails on, bidirectional controls in subjects and file names. Each
case is a 400 naming the field, never a silent rewrite nor a 500."""

import base64
import random

import pytest

from mailer.validation.mail import ValidationError, validate_mail


def errors_of(data):
    """The {field: message} errors that validate_mail raises for ``data``."""
    with pytest.raises(ValidationError) as caught:
        validate_mail(data)
    return {error["field"]: error["message"] for error in caught.value.errors}


# --- Item 6: display names are checked as decoded --------------------------------------------

ENCODED_SMUGGLERS = {
    "NEL": "=?utf-8?q?Shop=C2=85Bcc:_x=40evil.example?= <shop@example.com>",
    "CRLF": "=?utf-8?q?Shop=0D=0ABcc:_x=40evil.example?= <shop@example.com>",
    "LF in base64": "=?utf-8?b?U2hvcApCY2M6IHhAZXZpbC5leGFtcGxl?= <shop@example.com>",
    "LS": "=?utf-8?q?Shop=E2=80=A8Bcc:_x?= <shop@example.com>",
    "PS": "=?utf-8?q?Shop=E2=80=A9Bcc:_x?= <shop@example.com>",
    "ESC": "=?utf-8?q?Shop=1B[31m?= <shop@example.com>",
    "RLO": "=?utf-8?q?Bank=E2=80=AEmoc.elpmaxe?= <bank@example.com>",
    "LRI": "=?utf-8?q?Bank=E2=81=A6x?= <bank@example.com>",
    "PDI": "=?utf-8?q?Bank=E2=81=A9x?= <bank@example.com>",
    "undecodable": "=?utf-8?q?Shop=FF?= <shop@example.com>",
}


@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to"])
@pytest.mark.parametrize("value", ENCODED_SMUGGLERS.values(), ids=ENCODED_SMUGGLERS.keys())
def test_encoded_display_names_are_checked_as_decoded(field, value, mail):
    errors = errors_of({**mail, field: value})
    assert list(errors) == [field]


def test_plain_encoded_display_names_still_decode(mail):
    clean = validate_mail({**mail, "from": "=?utf-8?q?J=C3=B6rg?= <jorg@example.com>"})
    assert clean["from_address"] == "Jörg <jorg@example.com>"


# --- Item 7: an address is stored as sent, or refused ----------------------------------------

REWRITTEN = [
    "a @example.com",
    "a@ example.com",
    "(c) a@example.com",
    "a@example.com (c)",
    "a(c)@example.com",
    "\u00a0a@example.com",
    "a@example.com\u00a0",
    "\u2003a@example.com",
    "a@example.com\u3000",
    "g: a@example.com;",
    "g: Ann <a@example.com>;",
    '"a"@example.com',
    '"a.b"@example.com',
    "<a@example.com> (c)",
    "< a@example.com>",
    "<a@example.com >",
    "Ann <a @example.com>",
    "Ann <(c)a@example.com>",
    "Ann (c) <a@example.com>",
    "Ann <a@example.com> (c)",
    "Ann  Lee <a@example.com>",
    "Ann\tLee <a@example.com>",
    '"Ann" Lee <a@example.com>',
    "=?utf-8?q?A?= =?utf-8?q?B?= <a@example.com>",
]


@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to"])
@pytest.mark.parametrize("value", REWRITTEN)
def test_an_address_the_parser_would_rewrite_is_refused(field, value, mail):
    errors = errors_of({**mail, field: value})
    assert list(errors) == [field]
    assert repr(value) in errors[field] or repr(value.strip(" \t")) in errors[field]


@pytest.mark.parametrize("value", ["<", '<"', "\\@", "g:Ann ;a;.", ".\u00a0 \u00e9\u00e9:"])
def test_entries_the_parser_fails_on_are_refused_not_500s(value, mail):
    # The standard library's parser raises IndexError, AttributeError or TypeError on these.
    assert errors_of({**mail, "to": value})["to"] == f"Invalid address {value!r}"


@pytest.mark.parametrize(
    "value, stored",
    [
        ("  a@example.com\t", "a@example.com"),  # whitespace around it goes
        ("<a@example.com>", "a@example.com"),
        ("Ann<a@example.com>", "Ann <a@example.com>"),
        ('"Ann" <a@example.com>', "Ann <a@example.com>"),  # the same name, unquoted
        ('"Ann  Lee" <a@example.com>', '"Ann  Lee" <a@example.com>'),
        ('" Ann" <a@example.com>', '" Ann" <a@example.com>'),
        ('"Ann\tLee" <a@example.com>', '"Ann\tLee" <a@example.com>'),
        ('"Doe, John" <john@example.com>', '"Doe, John" <john@example.com>'),
        ("Ann <A@EXAMPLE.COM>", "Ann <A@example.com>"),  # domains compare case-insensitively
        ("Zoë\u00a0Lee <zoe@example.com>", "Zoë\u00a0Lee <zoe@example.com>"),
    ],
)
def test_what_is_kept_reads_back_as_sent(value, stored, mail):
    assert validate_mail({**mail, "to": value})["to"] == [stored]
    assert validate_mail({**mail, "to": stored})["to"] == [stored]  # and stays so


def _letters(text):
    """What an address list says, without the syntax a rendering may change: quotes,
    brackets, backslashes, spaces, tabs and commas (empty entries are skipped); the domain's
    case aside."""
    return "".join(char for char in text if char not in '"<>\\ \t,').lower()


def test_whatever_is_accepted_says_what_was_sent():
    # Random entries from the characters the RFC 5322 parser treats specially: each one it
    # accepts comes back saying the same, and is accepted again unchanged.
    alphabet = ["a", "b", "@", ".", " ", "\t", '"', "(", ")", "<", ">", ",", ":", ";", "\\"]
    alphabet += ["\u00a0", "\u2003", "é", "Ann ", "x@example.com", "@example.com"]
    chance = random.Random(19)
    accepted = 0
    for _ in range(5000):
        value = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 8)))
        data = {"from": "s@example.com", "subject": "s", "text": "t", "to": value}
        try:
            stored = validate_mail(data)["to"]
        except ValidationError:
            continue
        accepted += 1
        assert _letters("".join(stored)) == _letters(value), value
        assert validate_mail({**data, "to": stored})["to"] == stored, value
    assert accepted > 50  # enough of them parse to mean something


# --- Item 8: bidirectional controls in subjects and file names -------------------------------

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


def attachment(filename):
    """One attachment named ``filename``."""
    return {"filename": filename, "content": base64.b64encode(b"%PDF").decode()}


@pytest.mark.parametrize("control", BIDI + ["\u200e", "\u200f", "\u061c"])
def test_bidi_controls_and_marks_are_refused_in_file_names(control, mail):
    errors = errors_of({**mail, "attachments": [attachment(f"invoice{control}fdp.exe")]})
    assert list(errors) == ["attachments[0].filename"]
    assert "bidirectional" in errors["attachments[0].filename"]


@pytest.mark.parametrize("control", BIDI)
def test_bidi_controls_are_refused_in_subjects(control, mail):
    errors = errors_of({**mail, "subject": f"Your invoice{control}fdp.exe"})
    assert list(errors) == ["subject"] and "bidirectional" in errors["subject"]


def test_right_to_left_text_keeps_its_marks_in_subjects(mail):
    subject = "\u05e9\u05dc\u05d5\u05dd\u200f 2024"  # Hebrew with an RLM, as RTL text has
    assert validate_mail({**mail, "subject": subject})["subject"] == subject
    named = validate_mail({**mail, "attachments": [attachment("\u05e9\u05dc\u05d5\u05dd.pdf")]})
    assert named["attachments"][0]["filename"] == "\u05e9\u05dc\u05d5\u05dd.pdf"
