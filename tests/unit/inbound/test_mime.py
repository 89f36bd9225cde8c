"""A whole MIME message (the SMTP door's, and each provider's raw variant) read into an
``InboundMail``: headers in order, bodies, every other part an attachment, the raw bytes kept."""

from email.message import EmailMessage

import pytest

from mailer.inbound.fields import Malformed
from mailer.inbound.mime import parse
from unit.inbound.payloads import FORWARDED, IMAGE


def reply():
    """A reply with text, HTML with an inline image, a file and a forwarded message."""
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "Support <support@in.example.com>, other@example.com"
    message["Cc"] = "carl@example.com"
    message["Subject"] = "Re: Your order"
    message["Message-ID"] = "<reply-1@example.com>"
    message["In-Reply-To"] = "<mail-1@shop.example.com>"
    message["References"] = "<mail-0@shop.example.com> <mail-1@shop.example.com>"
    message.set_content("Thanks!\n")
    message.add_alternative('<p>Thanks! <img src="cid:logo@example.com"></p>\n', subtype="html")
    message.get_payload()[1].add_related(
        IMAGE, "image", "png", cid="<logo@example.com>", filename="logo.png"
    )
    message.add_attachment(b"%PDF-1.4 order", "application", "pdf", filename="order.pdf")
    message.add_attachment(b"no name", "application", "octet-stream")
    return message


def test_a_reply_with_its_parts():
    raw = reply().as_bytes()
    mail = parse(raw, "smtp", "DATA", "ann@example.com", ["support@in.example.com"], "id-1")
    assert (mail.source, mail.delivery_id, mail.raw) == ("smtp", "id-1", raw)
    assert mail.envelope_from == "ann@example.com"
    assert mail.envelope_to == ("support@in.example.com",)
    assert mail.from_address == "Ann <ann@example.com>"
    assert mail.to == ("Support <support@in.example.com>", "other@example.com")
    assert mail.cc == ("carl@example.com",)
    assert mail.subject == "Re: Your order"
    assert mail.text == "Thanks!\n"
    assert mail.html == '<p>Thanks! <img src="cid:logo@example.com"></p>\n'
    assert mail.message_id == "<reply-1@example.com>"
    assert mail.in_reply_to == "<mail-1@shop.example.com>"
    assert mail.references == ("<mail-0@shop.example.com>", "<mail-1@shop.example.com>")
    assert [name for name, _ in mail.headers][:4] == ["From", "To", "Cc", "Subject"]
    assert [(a.filename, a.content_type, a.content, a.content_id) for a in mail.attachments] == [
        ("logo.png", "image/png", IMAGE, "logo@example.com"),
        ("order.pdf", "application/pdf", b"%PDF-1.4 order", None),
        ("part-3.bin", "application/octet-stream", b"no name", None),
    ]
    assert mail.stripped_text is None and mail.spam_verdict is None


def test_a_delivery_report_keeps_its_status_and_the_returned_message():
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@in.example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + FORWARDED + b"\r\n--B--\r\n"
    )
    mail = parse(raw, "smtp", "DATA", "", ["bounces@in.example.com"])  # MAIL FROM:<>
    assert mail.text == "The mail could not be delivered."  # its CRLF is the boundary's
    status, returned = mail.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Final-Recipient: rfc822; gone@example.net" in status.content
    assert b"Status: 5.1.1" in status.content
    assert returned.content_type == "message/rfc822"
    assert b"Message-Id: <20130503182626.18666.16540@example.com>" in returned.content
    assert mail.envelope_from == ""  # a bounce's null sender, <>, told from none given


def test_bytes_that_are_no_utf_8_and_a_charset_python_does_not_know():
    raw = (
        b"From: =?iso-8859-1?q?Ren=E9?= <rene@example.com>\r\nSubject: Caf\xc3\xa9 \xff\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\nHello\x00 caf\xc3\xa9\r\n"
    )
    mail = parse(raw, "smtp", "DATA")
    assert mail.from_address == "René <rene@example.com>"
    assert mail.subject == "Café \ufffd"
    assert mail.text == "Hello café\n"


def test_no_header_at_all_is_malformed():
    with pytest.raises(Malformed) as raised:
        parse(b"just words\r\n", "smtp", "DATA")
    assert raised.value.field == "DATA"
