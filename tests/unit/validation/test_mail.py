"""validate_mail on its own: the clean values it returns and the errors it lists."""

import pytest

from mailer.validation.mail import ValidationError, validate_mail


def errors_of(data, **kwargs):
    """The {field: message} errors that validate_mail raises for ``data``."""
    with pytest.raises(ValidationError) as caught:
        validate_mail(data, **kwargs)
    return {error["field"]: error["message"] for error in caught.value.errors}


def test_minimal_mail(mail):
    assert validate_mail(mail) == {
        "from_address": "sender@example.com",
        "to": ["rcpt@example.com"],
        "cc": [],
        "bcc": [],
        "reply_to": None,
        "subject": "Hello",
        "text": "Plain body",
        "html": None,
        "headers": {},
        "tags": [],
        "metadata": {},
        "attachments": [],
        "send_at": None,
    }


def test_address_lists_from_a_string_or_a_list(mail):
    clean = validate_mail(
        {
            **mail,
            "to": "a@example.com, B <b@example.com>",
            "cc": ["c@example.com", "d@example.com, e@example.com"],
        }
    )
    assert clean["to"] == ["a@example.com", "B <b@example.com>"]
    assert clean["cc"] == ["c@example.com", "d@example.com", "e@example.com"]


def test_domains_are_normalised(mail):
    assert validate_mail({**mail, "from": "Sender@Example.COM"})["from_address"] == (
        "Sender@example.com"
    )


def test_display_names_are_kept(mail):
    clean = validate_mail(
        {
            **mail,
            "from": '"Shop, Inc." <shop@example.com>',
            "reply_to": "Help Desk <help@example.com>",
        }
    )
    assert clean["from_address"] == '"Shop, Inc." <shop@example.com>'
    assert clean["reply_to"] == "Help Desk <help@example.com>"


def test_comma_in_a_recipient_display_name_stays_one_recipient(mail):
    # Lists are stored as lists, so a quoted comma does not split one recipient in two.
    clean = validate_mail({**mail, "to": '"Doe, John" <john@example.com>, ann@example.com'})
    assert clean["to"] == ['"Doe, John" <john@example.com>', "ann@example.com"]


def test_empty_optional_fields_are_none(mail):
    clean = validate_mail({**mail, "cc": "", "bcc": [], "reply_to": None, "html": ""})
    assert clean["cc"] == [] and clean["bcc"] == [] and clean["reply_to"] is None
    assert clean["html"] is None


def test_required_fields():
    errors = errors_of({})
    assert set(errors) == {"from", "to", "subject", "text"}
    assert errors["from"] == "This field is required"


def test_single_address_fields_take_exactly_one(mail):
    errors = errors_of(
        {
            **mail,
            "from": "a@example.com, b@example.com",
            "reply_to": ["a@example.com", "b@example.com"],
        }
    )
    assert errors == {"from": "Give exactly one address", "reply_to": "Give exactly one address"}


def test_recipient_limit_per_field(mail):
    to = [f"r{number}@example.com" for number in range(3)]
    assert len(validate_mail({**mail, "to": to}, max_recipients=3)["to"]) == 3
    assert errors_of({**mail, "to": to}, max_recipients=2) == {"to": "At most 2 addresses"}


@pytest.mark.parametrize(
    "value, named",
    [
        ("ok@example.com, broken@", "broken@"),  # getaddresses alone drops it silently
        ("ok@example.com, <>", "<>"),
        ("a@example.com <b@example.com>", "a@example.com <b@example.com>"),
        ("ok@example.com, nope", "nope"),
    ],
)
def test_invalid_address_names_it(value, named, mail):
    assert repr(named) in errors_of({**mail, "cc": value})["cc"]


def test_internationalised_addresses(mail):
    clean = validate_mail({**mail, "to": "Jörg <jörg@exämple.com>, zoë@example.com"})
    assert clean["to"] == ["Jörg <jörg@exämple.com>", "zoë@example.com"]


def test_quoted_commas_do_not_split(mail):
    clean = validate_mail(
        {**mail, "from": '"a\\"b, c" <x@example.com>', "to": "x@example.com,, y@example.com,"}
    )
    assert clean["from_address"] == '"a\\"b, c" <x@example.com>'
    assert clean["to"] == ["x@example.com", "y@example.com"]


def test_subject_length_limit(mail):
    assert errors_of({**mail, "subject": "x" * 999}).keys() == {"subject"}
    assert validate_mail({**mail, "subject": "x" * 998})["subject"] == "x" * 998


@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to", "subject"])
@pytest.mark.parametrize("breaker", ["\r", "\n", "\r\n"])
def test_line_breaks_in_headers(field, breaker, mail):
    value = f"x@example.com{breaker}Bcc: victim@example.com"
    assert "line breaks" in errors_of({**mail, field: value})[field]


def test_a_control_in_any_entry_is_named_before_a_bad_address_in_an_earlier_one(mail):
    # An address list's entries are checked for what no header may hold first, then parsed in
    # order: the first bad address is named only when no entry holds a line break.
    entries = ["not-an-address", "b@example.com", "x@example.com\nBcc: victim@example.com"]
    assert "line breaks" in errors_of({**mail, "to": entries})["to"]
    assert errors_of({**mail, "to": entries[:2]})["to"].startswith("Invalid address 'not-an")
    assert errors_of({**mail, "to": entries[:2]}, max_recipients=1) == errors_of(
        {**mail, "to": entries[:2]}
    )  # no count when an address is bad
    assert errors_of({**mail, "to": [" , ", ""]})["to"] == "No valid address given"


@pytest.mark.parametrize(
    "field", ["from", "to", "cc", "bcc", "reply_to", "subject", "text", "html"]
)
def test_nul_characters(field, mail):
    value = "Bad\x00Name <x@example.com>" if field not in ("subject", "text", "html") else "a\x00"
    assert "NUL" in errors_of({**mail, field: value})[field]


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", 1),
        ("subject", None),
        ("text", ["a"]),
        ("to", {"a": 1}),
        ("to", [1]),
        ("cc", 2.5),
        ("from", False),
    ],
)
def test_wrong_types_name_the_field(field, value, mail):
    data = {**mail, field: value}
    if value is None:
        assert errors_of(data) == {field: "This field is required"}
    else:
        assert field in errors_of(data)


def test_unknown_fields_are_listed(mail):
    assert errors_of({**mail, "attachment": "x", "Subject": "y"}) == {
        "Subject": "Unknown field",
        "attachment": "Unknown field",
    }


def test_fast_path_agrees_with_email_validator():
    """The per-domain cache in validation._checked gives email-validator's own verdicts."""
    import random
    import string

    from email_validator import EmailNotValidError, validate_email

    from mailer.validation.mail import _checked

    rng = random.Random(7)
    chars = string.ascii_letters + string.digits + "._+-"
    domains = [
        "example.com",
        "EXAMPLE.org",
        "bücher.de",
        "x.test",
        "localhost",
        "a..b.com",
        "-bad.com",
        "xn--bcher-kva.de",
        "sub.domain.co.uk",
        "1.2.3.4",
        "[1.2.3.4]",
        "exa_mple.com",
        "example",
        "x" * 250 + ".com",
    ]
    for _ in range(5000):
        local = "".join(rng.choice(chars) for _ in range(rng.randint(1, 70)))
        address = f"{local}@{rng.choice(domains)}"
        try:
            expected = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            expected = None
        checked, _problem = _checked(address)
        assert (checked.normalized if checked else None) == expected, address


# Hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "a@exa mple.com",
        "<a@example.com",
        "a@example.com>",
        "Ann <a@example.com> trailing",
        "x@y.com <z@w.com>",
    ],
)
@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to"])
def test_an_address_parses_exactly_or_is_refused(field, value, mail):
    assert "Invalid address" in errors_of({**mail, field: value})[field]


LINE_BREAKERS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x1b", "\x07", "\x00", "\x7f", "\x9b"]


@pytest.mark.parametrize("char", LINE_BREAKERS + CONTROLS)
@pytest.mark.parametrize(
    "field, template",
    [
        ("subject", "Hello{}Bcc: e@example.net"),
        ("from", "Evil{}Bcc <sender@example.com>"),
        ("to", "Ann{}X <ann@example.com>"),
        ("cc", "cc@example.com{}"),
        ("bcc", "Bob{} <bob@example.com>"),
        ("reply_to", "Help{}Desk <help@example.com>"),
    ],
)
def test_every_line_break_and_control_is_refused_in_headers(field, template, char, mail):
    message = errors_of({**mail, field: template.format(char)})[field]
    assert "line breaks or control characters" in message or "NUL" in message


def test_every_splitlines_break_is_covered():
    # The refused set is exactly what str.splitlines() breaks at, plus the other controls.
    breaks = [chr(code) for code in range(0x30000) if len(f"a{chr(code)}b".splitlines()) > 1]
    assert set(breaks) <= set(LINE_BREAKERS) | {"\r", "\n"}


def test_tab_and_plain_unicode_stay_allowed(mail):
    clean = validate_mail({**mail, "subject": "Prix\tnet — ½ €", "to": "Zoë <zoe@example.com>"})
    assert clean["subject"] == "Prix\tnet — ½ €"


@pytest.mark.parametrize("control", ["\u202e", "\u202a", "\u2066", "\u2069"])
def test_bidirectional_controls_in_display_names_are_refused(control, mail):
    errors = errors_of({**mail, "from": f"Bank{control}moc.elpmaxe <bank@example.com>"})
    assert "bidirectional" in errors["from"]
