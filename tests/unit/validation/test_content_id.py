"""An attachment's ``content_id`` (issue 23): it makes the file an inline part the HTML shows
as ``cid:<id>``; validation takes a bare id and names the field of one it refuses."""

import pytest

from mailer.validation.extras import MAX_CONTENT_ID
from mailer.validation.mail import ValidationError, validate_mail

LOGO = {"filename": "logo.png", "content_type": "image/png", "content": "UE5H"}  # "PNG"


def errors_of(data):
    """The {field: message} errors that validate_mail raises for ``data``."""
    with pytest.raises(ValidationError) as caught:
        validate_mail(data)
    assert caught.value.status == 400
    return {error["field"]: error["message"] for error in caught.value.errors}


@pytest.mark.parametrize(
    "content_id", ["logo", "logo@example.com", "image001.png@01D9C5A1.2B3C4D50", "a" * 255]
)
def test_a_bare_content_id_makes_an_inline_part(mail, content_id):
    clean = validate_mail({**mail, "attachments": [{**LOGO, "content_id": content_id}]})
    assert clean["attachments"] == [
        {
            "filename": "logo.png",
            "content_type": "image/png",
            "content": b"PNG",
            "content_id": content_id,
        }
    ]


@pytest.mark.parametrize("content_id", [None, ""])
def test_no_content_id_is_an_attached_file(mail, content_id):
    clean = validate_mail({**mail, "attachments": [{**LOGO, "content_id": content_id}]})
    assert "content_id" not in clean["attachments"][0]


@pytest.mark.parametrize(
    "content_id, words",
    [
        ("<logo@example.com>", "without angle brackets"),
        ("logo\r\nBcc: x@example.com", "line breaks"),
        ("logo\n", "line breaks"),
        ("a" * (MAX_CONTENT_ID + 1), f"at most {MAX_CONTENT_ID} characters"),
        ("my logo", "no spaces"),
        ("images/logo", "slashes"),
        ("<logo", "angle brackets"),
        ("lögo", "Letters, digits"),
        (5, "Must be a string"),
    ],
)
def test_a_content_id_that_is_not_a_bare_token_is_refused_naming_the_field(mail, content_id, words):
    attachments = [{"filename": "a.txt", "content": "aGk="}, {**LOGO, "content_id": content_id}]
    errors = errors_of({**mail, "attachments": attachments})
    assert list(errors) == ["attachments[1].content_id"]
    assert words in errors["attachments[1].content_id"]


def test_two_parts_with_one_content_id_are_refused(mail):
    attachments = [{**LOGO, "content_id": "logo"}, {**LOGO, "content_id": "x"}]
    attachments.append({**LOGO, "content_id": "logo"})
    errors = errors_of({**mail, "attachments": attachments})
    assert errors == {
        "attachments[2].content_id": "attachments[0] has this content_id already: each inline "
        "part needs an id of its own"
    }


def test_an_unknown_attachment_field_is_still_refused(mail):
    errors = errors_of({**mail, "attachments": [{**LOGO, "cid": "logo"}]})
    assert errors == {"attachments[0]": "Must be {filename, content_type, content, content_id}"}
