"""A message received over SMTP as the request ``POST /mail`` takes (``mailer.smtp.message``):
its headers read as the ``email`` package's policy ``default`` reads them, each parsed once."""

from email.message import EmailMessage

from mailer.smtp import message

ENVELOPE = ("bounce@example.com", ["ann@example.com", "bob@example.com", "hidden@example.com"])


def parsed(content):
    """The request of ``content`` (bytes) sent with ``ENVELOPE``."""
    return message.parse(content, *ENVELOPE).request


def test_custom_headers_are_the_x_headers_each_name_once_decoded():
    content = (
        b"From: =?utf-8?q?J=C3=B6rg?= <shop@example.com>\r\n"
        b'To: Ann <ann@example.com>, "Bob, B." <BOB@example.com>\r\n'
        b"Subject: =?utf-8?b?w6TDtsO8?=\r\n"
        b"X-Order: 1\r\n"
        b"x-order: 2\r\n"
        b"X-Order: 3\r\n"
        b"X-Note: =?utf-8?q?caf=C3=A9?=\r\n"
        b"X-Mail-Tags: a, b\r\n"
        b"\r\n"
        b"Hello\r\n"
    )
    assert parsed(content) == {
        "from": "Jörg <shop@example.com>",
        "to": ["Ann <ann@example.com>", '"Bob, B." <BOB@example.com>'],
        "bcc": ["hidden@example.com"],
        "subject": "äöü",
        "text": "Hello\r\n",
        "tags": ["a", "b"],
        "headers": {"X-Order": "1", "x-order": "2", "X-Note": "café"},
    }


def test_bodies_inline_parts_and_attachments_of_a_multipart_message():
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "shop@example.com", "ann@example.com", "Order"
    mail.set_content("Text")
    mail.add_alternative("<p>HTML <img src='cid:logo'></p>", subtype="html")
    mail.get_payload()[1].add_related(b"PNG", "image", "png", cid="<logo>")
    mail.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="order.pdf")
    request = parsed(mail.as_bytes())
    assert (request["subject"], request["text"], request["html"]) == (
        "Order",
        "Text\n",
        "<p>HTML <img src='cid:logo'></p>\n",
    )
    assert request["attachments"] == [
        {
            "filename": "part-1.png",
            "content_type": "image/png",
            "content": b"PNG",
            "content_id": "logo",
        },
        {"filename": "order.pdf", "content_type": "application/pdf", "content": b"%PDF"},
    ]
    assert request["bcc"] == ["bob@example.com", "hidden@example.com"]


def test_each_message_reads_its_own_headers():
    first = parsed(b"From: a@example.com\r\nTo: ann@example.com\r\nSubject: One\r\n\r\nx\r\n")
    second = parsed(b"From: b@example.com\r\nTo: bob@example.com\r\nSubject: Two\r\n\r\ny\r\n")
    assert (first["from"], first["to"], first["subject"]) == (
        "a@example.com",
        ["ann@example.com"],
        "One",
    )
    assert (second["from"], second["to"], second["subject"]) == (
        "b@example.com",
        ["bob@example.com"],
        "Two",
    )


def test_made_up_header_names_keep_nothing_between_messages():
    def with_headers(first):
        names = b"".join(b"X-Made-Up-%d: v\r\n" % number for number in range(first, first + 300))
        return names + b"From: a@example.com\r\nTo: ann@example.com\r\n\r\nx\r\n"

    assert len(parsed(with_headers(0))["headers"]) == 300
    kept = len(message.POLICY.header_factory._made)
    parsed(with_headers(300))
    assert len(message.POLICY.header_factory._made) == kept
