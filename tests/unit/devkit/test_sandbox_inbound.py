"""The sandbox's inbound posts: each provider's shape, read back by the service's own readers
(mailer/inbound) to the mail it was given, signed or authenticated as the provider does; its
control endpoint's refusals. A Sandbox on threads of this process, no mocks."""

import base64
import json

import pytest
import requests

from devkit.sandbox import Sandbox
from devkit.sandbox.inbound import WRITERS, check_mail
from mailer.events.signatures import mailgun_valid
from mailer.inbound import mailgun, postmark, sendgrid
from mailer.inbound.fields import parse_form

SETTINGS = {
    "mailgun_key": "mailgun-signing-key",
    "sendgrid_inbound_username": "sg",
    "sendgrid_inbound_password": "sg-password",
    "postmark_username": "pm",
    "postmark_password": "pm-password",
}
MAIL = {
    "from": "Ann <ann@example.com>",
    "to": ["support@in.example.com"],
    "cc": ["carl@example.com"],
    "subject": "Re: Your order",
    "text": "Thanks!\n",
    "html": "<p>Thanks!</p>\n",
    "headers": {"In-Reply-To": "<mail-1@shop.example.com>"},
    "attachments": [
        {"filename": "a.pdf", "content_type": "application/pdf", "content": b"%PDF\r\n\x00"},
        {"filename": "l.png", "content_type": "image/png", "content": b"PNG", "content_id": "l"},
    ],
    "spam": False,
    "spam_score": 0.5,
}


def read_back(provider, **mail):
    """The ``InboundMail`` the service reads from the sandbox's post, and the post."""
    path, body, headers, auth = WRITERS[provider](check_mail(provider, mail), SETTINGS)
    if provider == "postmark":
        return postmark.inbound(json.loads(body)), (path, auth)
    form = parse_form(headers["Content-Type"], body)
    reader = mailgun if provider == "mailgun" else sendgrid
    return reader.inbound(form), (path, auth, form)


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark"])
@pytest.mark.parametrize("raw", [False, True])
def test_each_post_reads_back_to_the_mail_it_was_given(provider, raw):
    read, _ = read_back(provider, raw=raw, **MAIL)
    assert read.source == provider
    assert read.from_address == "Ann <ann@example.com>"
    assert (read.to, read.cc) == (("support@in.example.com",), ("carl@example.com",))
    assert read.subject == "Re: Your order"
    assert (read.text, read.html) == ("Thanks!\n", "<p>Thanks!</p>\n")
    assert read.in_reply_to == "<mail-1@shop.example.com>"
    assert [(a.filename, a.content_type, a.content, a.content_id) for a in read.attachments] == [
        ("a.pdf", "application/pdf", b"%PDF\r\n\x00", None),
        ("l.png", "image/png", b"PNG", "l"),
    ]
    assert read.envelope_to == ("support@in.example.com",)
    assert read.spam_score == 0.5
    assert read.spam_verdict == (None if provider == "sendgrid" else "ham")


def test_mailguns_post_is_signed_and_its_raw_one_goes_to_the_mime_url():
    _, (path, auth, form) = read_back("mailgun", **MAIL)
    assert path == "/inbound/mailgun" and auth is None
    fields = [form.text(name) for name in ("timestamp", "token", "signature")]
    assert mailgun_valid(SETTINGS["mailgun_key"], *fields)
    _, (raw_path, _, raw_form) = read_back("mailgun", raw=True, **MAIL)
    assert raw_path == "/inbound/mailgun/mime" and raw_form.raw("body-mime")


@pytest.mark.parametrize(
    "provider, auth",
    [("sendgrid", ("sg", "sg-password")), ("postmark", ("pm", "pm-password"))],
)
def test_sendgrid_and_postmark_post_with_basic_auth(provider, auth):
    _, (path, given, *_) = read_back(provider, **MAIL)
    assert (path, given) == (f"/inbound/{provider}", auth)


@pytest.fixture(scope="module")
def server():
    """One sandbox for the module."""
    with Sandbox().start() as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    "provider, body, error",
    [
        ("ses", {}, "unknown provider"),
        ("mailgun", {"colour": "red"}, "unknown mail fields"),
        ("mailgun", {"times": 0}, "times must be"),
        ("mailgun", {}, "set the event settings"),
    ],
)
def test_the_control_endpoint_says_what_is_wrong(server, provider, body, error):
    server.reset()
    answer = requests.post(f"{server.url}/_sandbox/inbound/{provider}", json=body, timeout=10)
    assert answer.status_code == 400 and error in answer.json()["error"]


def test_an_attachment_given_as_base64_over_the_control_endpoint():
    mail = check_mail("postmark", {"attachments": [{"content": base64.b64encode(b"hi").decode()}]})
    assert mail["attachments"][0]["content"] == b"hi"


REPORT = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
    b"To: Shop <shop@in.example.com>\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <report-1@mx.example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
    b"Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    b"--B--\r\n"
)


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark"])
def test_a_given_message_is_posted_as_it_is_with_the_null_sender(provider):
    read, _ = read_back(provider, raw=REPORT, envelope_from="")
    assert read.raw == REPORT  # byte for byte, in the raw variant
    assert read.envelope_from == ""  # the null sender <>, not "none given"
    assert read.from_address == "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    assert read.subject == "Undelivered Mail Returned to Sender"
    assert read.message_id == "<report-1@mx.example.net>"
    mail = check_mail(provider, {"raw": REPORT.decode()})
    assert (mail["to"], mail["envelope_to"]) == (
        ["Shop <shop@in.example.com>"],
        ["shop@in.example.com"],
    )
