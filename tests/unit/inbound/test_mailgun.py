"""Mailgun's route forwards (fully parsed, and raw MIME) read into an ``InboundMail``."""

import json

import pytest

from mailer.inbound.fields import Malformed
from mailer.inbound.mailgun import inbound
from unit.inbound.payloads import (
    FORWARDED,
    IMAGE,
    MAILGUN_MIME,
    MAILGUN_PARSED,
    posted,
)


@pytest.mark.parametrize("urlencoded", [False, True])
def test_the_documented_fully_parsed_post(urlencoded):
    mail = inbound(posted(MAILGUN_PARSED, urlencoded))
    assert mail.source == "mailgun"
    assert mail.delivery_id == MAILGUN_PARSED["token"]
    assert (mail.envelope_from, mail.envelope_to) == (
        "envelope-from@example.org",
        ("test@inbound.example.com",),
    )
    assert mail.from_address == "Displayed From <from+test@example.org>"
    assert mail.to == ("Test Inbound <test@inbound.example.com>", "other@example.com")
    assert mail.cc == ("cc@example.com",)
    assert mail.subject == "Test subject"
    assert (mail.text, mail.html) == ("Test body plain", "<div>Test body html</div>")
    assert mail.stripped_text == "stripped plaintext body"
    assert mail.message_id == "<CAEPk3R+4Zr@mail.example.org>"
    assert (mail.in_reply_to, mail.references) == (None, ())
    assert (mail.spam_verdict, mail.spam_score) == ("ham", 1.7)
    assert mail.headers[0] == (
        "X-Mailgun-Spam-Rules",
        "DKIM_SIGNED, DKIM_VALID, DKIM_VALID_AU, ...",
    )
    assert [value for name, value in mail.headers if name == "Received"] == [
        "from mail.example.org by mxa.mailgun.org ...",
        "by mail.example.org for <test@inbound.example.com> ...",
        "by 10.10.1.71 with HTTP; Wed, 11 Oct 2017 18:31:04 -0700 (PDT)",
    ]
    assert mail.attachments == () and mail.raw is None


def test_attachments_and_an_inline_image_by_the_content_id_map():
    mail = inbound(
        posted(
            {
                "message-headers": "[]",
                "attachment-count": "3",
                "content-id-map": '{"<abc123>": "attachment-2"}',
                "attachment-1": ("test.txt", b"test attachment", "text/plain"),
                "attachment-2": ("image.png", IMAGE, "image/png"),
                "attachment-3": (
                    "share/mail/forwarded.msg",  # a path: only its last part is kept
                    FORWARDED,
                    'message/rfc822; charset="us-ascii"',
                ),
            }
        )
    )
    assert [(a.filename, a.content_type, a.content, a.content_id) for a in mail.attachments] == [
        ("test.txt", "text/plain", b"test attachment", None),
        ("image.png", "image/png", IMAGE, "abc123"),
        ("forwarded.msg", "message/rfc822", FORWARDED, None),
    ]


def test_a_content_id_map_that_repeats_a_content_id():
    mail = inbound(
        posted(
            {
                "message-headers": "[]",
                "attachment-count": "4",
                "content-id-map": '{"": "attachment-1", "": "attachment-2",'
                ' "<abc>": "attachment-3", "<abc>": "attachment-4"}',
                **{f"attachment-{n}": (f"att{n}.txt", b"x", "text/plain") for n in range(1, 5)},
            }
        )
    )
    assert [a.content_id for a in mail.attachments] == [None, None, "abc", "abc"]


def test_the_raw_mime_post():
    mail = inbound(posted(MAILGUN_MIME))
    assert mail.raw == MAILGUN_MIME["body-mime"].encode()
    assert (mail.envelope_from, mail.envelope_to) == (
        "envelope-from@example.org",
        ("test@inbound.example.com",),
    )
    assert mail.delivery_id == MAILGUN_MIME["token"]
    assert mail.subject == "Raw MIME test"
    assert mail.from_address == "A tester <test@example.org>"
    assert mail.to == ("test@inbound.example.com",)
    assert mail.text == "It's a body\N{HORIZONTAL ELLIPSIS}\n"
    assert mail.html == '<div dir="ltr">It\'s a body\N{HORIZONTAL ELLIPSIS}</div>\n'
    assert mail.message_id == "<CAEPk3RKEx@mail.example.org>"
    assert mail.spam_verdict is None and mail.attachments == ()


def test_a_spam_flag_and_encoded_words_in_the_headers():
    headers = [
        ["Subject", "=?utf-8?q?Caf=C3=A9?="],
        ["X-Mailgun-Sflag", "Yes"],
        ["X-Mailgun-Sscore", "9.5"],
        ["In-Reply-To", "<mail-1@shop.example.com>"],
        ["References", "<mail-0@shop.example.com> <mail-1@shop.example.com>"],
    ]
    mail = inbound(posted({"message-headers": json.dumps(headers)}))
    assert mail.subject == "Café"
    assert (mail.spam_verdict, mail.spam_score) == ("spam", 9.5)
    assert mail.in_reply_to == "<mail-1@shop.example.com>"
    assert mail.references == ("<mail-0@shop.example.com>", "<mail-1@shop.example.com>")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({}, "message-headers"),
        ({"message-headers": "{}"}, "message-headers"),
        ({"message-headers": '[["To"]]'}, "message-headers"),
        ({"message-headers": "[]", "attachment-count": "2"}, "attachment-1"),
        ({"message-headers": "[]", "attachment-count": "two"}, "attachment-count"),
        ({"message-headers": "[]", "content-id-map": "[]"}, "content-id-map"),
        ({"message-headers": "[]", "attachments": "[]"}, "attachments"),
        ({"message-headers": "[]", "event": "delivered"}, "event"),
        ({"body-mime": ""}, "body-mime"),
    ],
)
def test_what_mailgun_does_not_post_names_the_field(fields, field):
    with pytest.raises(Malformed) as raised:
        inbound(posted(fields))
    assert raised.value.field == field
