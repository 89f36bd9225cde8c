"""Postmark's inbound JSON (its documented shape, its "Check" button's, with RawEmail) read into
an ``InboundMail``."""

import base64
import copy

import pytest

from mailer.inbound.fields import Malformed
from mailer.inbound.postmark import inbound
from unit.inbound.payloads import FORWARDED, IMAGE, POSTMARK, POSTMARK_CHECK, POSTMARK_CHECK_RAW


def test_the_documented_post():
    mail = inbound(POSTMARK)
    assert mail.source == "postmark"
    assert mail.delivery_id == "22c74902-a0c1-4511-804f2-341342852c90"
    assert (mail.envelope_from, mail.envelope_to) == (
        "envelope-from@example.org",  # Postmark's Return-Path, first of Headers
        ("test@inbound.example.com",),
    )
    assert mail.from_address == "Displayed From <from+test@example.org>"
    assert mail.to == ("Test Inbound <test@inbound.example.com>", "other@example.com")
    assert mail.cc == ("cc@example.com",)
    assert mail.subject == "Test subject"
    assert (mail.text, mail.html) == ("Test body plain", "<div>Test body html</div>")
    assert mail.stripped_text == "stripped plaintext body"
    assert mail.message_id == "<CAEPk3R+4Zr@mail.example.org>"
    assert (mail.spam_verdict, mail.spam_score) == ("ham", 1.7)
    assert mail.headers[0] == ("Received", "from mail.example.org by inbound.postmarkapp.com ...")
    assert mail.raw is None


def test_attachments_from_base64_an_inline_one_with_its_content_id():
    body = {
        "Attachments": [
            {
                "Name": "test.txt",
                "Content": base64.b64encode(b"test attachment").decode(),
                "ContentType": "text/plain",
                "ContentLength": 15,
            },
            {
                "Name": "image.png",
                "Content": base64.b64encode(IMAGE).decode(),
                "ContentType": "image/png",
                "ContentID": "abc123",
                "ContentLength": len(IMAGE),
            },
            {
                "Name": "bounce.txt",
                "Content": base64.b64encode(FORWARDED).decode(),
                "ContentType": 'message/rfc822; charset="us-ascii"',
                "ContentLength": len(FORWARDED),
            },
        ]
    }
    mail = inbound(body)
    assert [(a.filename, a.content_type, a.content, a.content_id) for a in mail.attachments] == [
        ("test.txt", "text/plain", b"test attachment", None),
        ("image.png", "image/png", IMAGE, "abc123"),
        ("bounce.txt", "message/rfc822", FORWARDED, None),
    ]


def test_the_check_buttons_payload_with_data_for_content():
    mail = inbound(POSTMARK_CHECK)
    assert mail.delivery_id == "00000000-0000-0000-0000-000000000000"
    assert mail.to == ("Firstname Lastname <mailbox+SampleHash@inbound.postmarkapp.com>",)
    assert mail.cc == ("First Cc <firstcc@postmarkapp.com>", "secondCc@postmarkapp.com")
    [attachment] = mail.attachments
    assert attachment.content == b"This is attachment contents, base-64 encoded."
    assert mail.stripped_text == "This is the reply text"


def test_with_raw_email_the_raw_message_is_read():
    mail = inbound(POSTMARK_CHECK_RAW)
    assert mail.raw == POSTMARK_CHECK_RAW["RawEmail"].encode()
    assert mail.text == "This is a test text body.\n"
    assert mail.from_address == "Postmarkapp Support <support@postmarkapp.com>"
    assert mail.envelope_to == ("mailbox+SampleHash@inbound.postmarkapp.com",)
    assert mail.delivery_id == "00000000-0000-0000-0000-000000000000"
    assert mail.attachments == ()  # the raw message has none: Attachments are not added


def test_a_long_display_name_full_of_symbols():
    name = "* * * 💲 Snag Your Free Gift! Click Here: https://spam.example.com/p.php?1 💲 * * *"
    mail = inbound({"FromFull": {"Email": "noreply@spam.example.com", "Name": name}})
    assert mail.from_address.endswith("<noreply@spam.example.com>") and "💲" in mail.from_address


def test_a_spam_verdict_of_yes():
    body = copy.deepcopy(POSTMARK)
    body["Headers"][3] = {"Name": "X-Spam-Status", "Value": "Yes, score=7.2 required=5.0"}
    assert inbound(body).spam_verdict == "spam"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"RecordType": "Delivery"}, "RecordType"),
        ({"Headers": {}}, "Headers"),
        ({"Headers": [{"Name": "X"}]}, "Headers[0]"),
        ({"FromFull": "ann@example.com"}, "FromFull"),
        ({"ToFull": [{"Name": "Ann"}]}, "ToFull[0]"),
        ({"CcFull": {}}, "CcFull"),
        ({"Subject": 12}, "Subject"),
        ({"Attachments": [{"Name": "a.txt", "Content": "not base64!"}]}, "Attachments[0].Content"),
        ({"Attachments": [{"Name": "a.txt"}]}, "Attachments[0].Content"),
        ({"RawEmail": "\r\nno headers"}, "RawEmail"),
    ],
)
def test_what_postmark_does_not_post_names_the_field(body, field):
    with pytest.raises(Malformed) as raised:
        inbound(body)
    assert raised.value.field == field
