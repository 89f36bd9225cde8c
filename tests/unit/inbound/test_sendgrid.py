"""SendGrid's Inbound Parse posts (default and raw) read into an ``InboundMail``."""

import json

import pytest

from mailer.inbound.fields import Malformed, parse_form
from mailer.inbound.sendgrid import inbound
from unit.inbound.payloads import (
    FORWARDED,
    IMAGE,
    SENDGRID_CHARSETS,
    SENDGRID_PARSED,
    SENDGRID_RAW,
    posted,
)


def test_the_documented_default_post():
    mail = inbound(posted(SENDGRID_PARSED))
    assert mail.source == "sendgrid"
    assert (mail.envelope_from, mail.envelope_to) == (
        "envelope-from@example.org",
        ("test@inbound.example.com",),
    )
    assert mail.from_address == "Displayed From <from+test@example.org>"
    assert mail.to == ("Test Inbound <test@inbound.example.com>", "other@example.com")
    assert mail.cc == ("cc@example.com",)
    assert mail.subject == "Test subject"
    assert (mail.text, mail.html, mail.stripped_text) == (
        "Test body plain",
        "<div>Test body html</div>",
        None,
    )
    assert mail.message_id == "<CAEPk3R+4Zr@mail.example.org>"
    assert (mail.spam_score, mail.spam_verdict) == (1.7, None)  # SendGrid gives no verdict
    assert [value for name, value in mail.headers if name == "Received"] == [
        "from mail.example.org by mx987654321.sendgrid.net ...",
        "by mail.example.org for <test@inbound.example.com> ...",
        "by 10.10.1.71 with HTTP; Wed, 11 Oct 2017 18:31:04 -0700 (PDT)",
    ]
    assert mail.attachments == () and mail.raw is None


def test_its_id_is_the_forms_digest_whatever_the_boundary():
    first, again = inbound(posted(SENDGRID_PARSED)), inbound(posted(SENDGRID_PARSED))
    other = inbound(posted({**SENDGRID_PARSED, "text": "Another body"}))
    assert first.delivery_id == again.delivery_id != other.delivery_id
    assert first.delivery_id.startswith("sha256:")


def test_each_field_in_its_charset():
    mail = inbound(parse_form("multipart/form-data; boundary=xYzZY", SENDGRID_CHARSETS))
    assert mail.from_address == "Opérateur de test <sender@example.com>"
    assert mail.to == ("Récipiendaire précieux <inbound@sg.example.com>",)
    assert mail.subject == "Como usted pidió"
    assert mail.text == "Test the ESP’s inbound charset handling…"
    assert mail.html == "<p>¿Esto se ve como esperabas?</p>"


def test_attachments_as_attachment_info_describes_them():
    info = {
        "attachment3": {
            "filename": "forwarded.msg",
            "charset": "US-ASCII",
            "type": "message/rfc822",
        },
        "attachment2": {"filename": "image.png", "type": "image/png", "content-id": "abc123"},
        "attachment1": {"filename": "test.txt", "charset": "UTF-8", "type": "text/plain"},
    }
    mail = inbound(
        posted(
            {
                "headers": "",
                "attachments": "3",
                "attachment-info": json.dumps(info),
                "content-ids": '{"abc123": "attachment2"}',
                "attachment1": ("test.txt", b"test attachment", "text/plain"),
                "attachment2": ("image.png", IMAGE, "image/png"),
                "attachment3": ("forwarded.msg", FORWARDED, "message/rfc822"),
            }
        )
    )
    assert [(a.filename, a.content_type, a.content, a.content_id) for a in mail.attachments] == [
        ("test.txt", "text/plain", b"test attachment", None),
        ("image.png", "image/png", IMAGE, "abc123"),
        ("forwarded.msg", "message/rfc822", FORWARDED, None),
    ]


def test_the_raw_post():
    mail = inbound(posted(SENDGRID_RAW))
    assert mail.raw == SENDGRID_RAW["email"].encode()
    assert (mail.envelope_from, mail.envelope_to) == (
        "envelope-from@example.org",
        ("test@inbound.example.com",),
    )
    assert mail.subject == "Raw MIME test"
    assert mail.text == "It's a body\N{HORIZONTAL ELLIPSIS}\n"
    assert mail.html == '<div dir="ltr">It\'s a body\N{HORIZONTAL ELLIPSIS}</div>\n'
    assert mail.spam_score == 1.7


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"text": "no headers"}, "headers"),
        ({"headers": "", "envelope": "{nope"}, "envelope"),
        ({"headers": "", "envelope": '{"to": [1]}'}, "envelope"),
        ({"headers": "", "spam_score": "high"}, "spam_score"),
        ({"headers": "", "charsets": "[]"}, "charsets"),
        ({"headers": "", "attachment-info": '{"attachment1": {}}'}, "attachment1"),
        ({"email": "\r\n\r\nno headers"}, "email"),
    ],
)
def test_what_sendgrid_does_not_post_names_the_field(fields, field):
    with pytest.raises(Malformed) as raised:
        inbound(posted(fields))
    assert raised.value.field == field


@pytest.mark.parametrize(
    "content_type, body, field",
    [
        ("application/json", b"{}", "Content-Type"),
        ("multipart/form-data", b"", "Content-Type"),  # no boundary
        ("multipart/form-data; boundary=b", b"--b\r\nX: y\r\n\r\nz\r\n--b--\r\n", "body"),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data", "body"),
    ],
)
def test_a_body_that_is_no_form_names_what_is_wrong(content_type, body, field):
    with pytest.raises(Malformed) as raised:
        parse_form(content_type, body)
    assert raised.value.field == field
