"""What each provider sends of an inline part (a file with a ``content_id``, which the HTML
shows as ``cid:<id>``) and of our Message-ID, ``<{mail id}@{MESSAGE_ID_DOMAIN}>``: the request
it builds, and for SES and an SMTP relay the MIME message inside. (The sandbox, over real HTTP
and SMTP, is in tests/integration/worker/test_inline_and_message_id.py.)"""

import base64
import json
from email import message_from_bytes, policy

import pytest

from mailer.config import load_config
from providers import build_providers
from providers.base import make_message_id, message_id_domain
from providers.smtp import POLICY
from unit.providers.wire import MAIL_ID, message

LOGO = {
    "filename": "logo.png",
    "content_type": "image/png",
    "content": b"\x89PNG logo",
    "content_id": "logo@example.com",
}
BILL = {"filename": "bill.pdf", "content_type": "application/pdf", "content": b"%PDF-1"}
HTML = '<p><img src="cid:logo@example.com"> Thanks!</p>'


def provider(name, **settings):
    """The provider ``name``, built from the defaults and ``settings`` as a worker builds it."""
    config = load_config(
        overrides={
            "PROVIDERS": name,
            "MAILGUN_API_KEY": "key",
            "MAILGUN_DOMAIN": "mg.example.com",
            "SENDGRID_API_KEY": "SG.key",
            "SES_REGION": "eu-west-1",
            "SES_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "SES_SECRET_ACCESS_KEY": "secret",
            "POSTMARK_SERVER_TOKEN": "token",
            "SMTP_HOST": "relay.example.com",
            **settings,
        },
        environ={},
    )
    [built] = build_providers(config)
    return built


def mail(**fields):
    """A mail with a text and an HTML body, an inline logo and an attached bill."""
    return message(text="Thanks!", html=HTML, attachments=[LOGO, BILL], **fields)


def ses_mime(mail_message, **settings):
    """The MIME message inside the SendEmail that SES would be sent."""
    body = json.loads(provider("ses", **settings).build_request(mail_message)["data"])
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    return message_from_bytes(raw, policy=policy.default)


def smtp_mime(mail_message, **settings):
    """The MIME message an SMTP relay would be sent, as a receiver parses it."""
    data = provider("smtp", **settings).build_message(mail_message).as_bytes(policy=POLICY)
    return message_from_bytes(data, policy=policy.default)


# --- The Message-ID -----------------------------------------------------------------------------


def test_the_message_id_is_the_mail_id_at_the_sender_domain_by_default():
    assert make_message_id(MAIL_ID, "Shop <shop@Example.COM>") == f"<{MAIL_ID}@example.com>"
    assert make_message_id(MAIL_ID, "a@bücher.example") == f"<{MAIL_ID}@xn--bcher-kva.example>"
    assert make_message_id(MAIL_ID, "a@b.example", "Mail.Example.org") == (
        f"<{MAIL_ID}@mail.example.org>"
    )


def test_message_id_domain_is_the_setting_then_the_deprecated_one():
    assert message_id_domain({}) == ""
    assert message_id_domain({"SMTP_MESSAGE_ID_DOMAIN": "old.example"}) == "old.example"
    both = {"MESSAGE_ID_DOMAIN": "new.example", "SMTP_MESSAGE_ID_DOMAIN": "old.example"}
    assert message_id_domain(both) == "new.example"


@pytest.mark.parametrize("value", ["a b.example", "<x@example.com>", "x@example.com", "-a.example"])
def test_a_message_id_domain_that_is_not_a_domain_stops_the_provider(value):
    with pytest.raises(ValueError, match="MESSAGE_ID_DOMAIN .* must be a domain"):
        provider("mailgun", MESSAGE_ID_DOMAIN=value)


@pytest.mark.parametrize("domain", ["", "mail.example.org"])
def test_each_provider_that_takes_a_message_id_is_sent_ours(domain):
    ours = f"<{MAIL_ID}@{domain or 'example.com'}>"
    settings = {"MESSAGE_ID_DOMAIN": domain}
    mailgun = dict(provider("mailgun", **settings).build_request(mail())["data"])
    assert mailgun["h:Message-Id"] == ours
    sendgrid = provider("sendgrid", **settings).build_request(mail())["json"]
    assert sendgrid["headers"]["Message-ID"] == ours
    postmark = provider("postmark", **settings).build_request(mail())["json"]
    assert {"Name": "Message-ID", "Value": ours} in postmark["Headers"]
    assert smtp_mime(mail(), **settings)["Message-ID"] == ours
    # SES replaces it with its own when it sends; the raw message carries ours all the same.
    assert ses_mime(mail(), **settings)["Message-ID"] == ours


def test_custom_headers_go_beside_our_message_id():
    headers = {"X-Campaign": "spring"}
    sendgrid = provider("sendgrid").build_request(mail(headers=headers))["json"]
    assert sendgrid["headers"] == {"Message-ID": f"<{MAIL_ID}@example.com>", **headers}
    postmark = provider("postmark").build_request(mail(headers=headers))["json"]
    assert [header["Name"] for header in postmark["Headers"]] == ["Message-ID", "X-Campaign"]


# --- Inline parts over HTTP ---------------------------------------------------------------------


def test_mailgun_sends_an_inline_part_as_inline_named_by_its_content_id():
    files = provider("mailgun").build_request(mail())["files"]
    assert files == [
        ("inline", ("logo@example.com", b"\x89PNG logo", "image/png")),
        ("attachment", ("bill.pdf", b"%PDF-1", "application/pdf")),
    ]


def test_sendgrid_sends_an_inline_part_with_its_disposition_and_content_id():
    attachments = provider("sendgrid").build_request(mail())["json"]["attachments"]
    assert attachments == [
        {
            "content": base64.b64encode(b"\x89PNG logo").decode(),
            "filename": "logo.png",
            "type": "image/png",
            "disposition": "inline",
            "content_id": "logo@example.com",
        },
        {
            "content": base64.b64encode(b"%PDF-1").decode(),
            "filename": "bill.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
        },
    ]


def test_postmark_sends_an_inline_part_with_a_cid_content_id():
    attachments = provider("postmark").build_request(mail())["json"]["Attachments"]
    assert attachments == [
        {
            "Name": "logo.png",
            "Content": base64.b64encode(b"\x89PNG logo").decode(),
            "ContentType": "image/png",
            "ContentID": "cid:logo@example.com",
        },
        {
            "Name": "bill.pdf",
            "Content": base64.b64encode(b"%PDF-1").decode(),
            "ContentType": "application/pdf",
        },
    ]


# --- Inline parts in MIME (SES, an SMTP relay) ------------------------------------------------


def structure(part, depth=0):
    """Each part of a MIME tree as ``(depth, type, disposition, Content-ID)``, in order."""
    found = [(depth, part.get_content_type(), part.get_content_disposition(), part["Content-ID"])]
    if part.is_multipart():
        for child in part.iter_parts():
            found += structure(child, depth + 1)
    return found


@pytest.mark.parametrize("mime_of", [ses_mime, smtp_mime])
def test_an_inline_part_is_related_to_the_html_and_files_follow(mime_of):
    received = mime_of(mail())
    assert structure(received) == [
        (0, "multipart/mixed", None, None),
        (1, "multipart/alternative", None, None),
        (2, "text/plain", None, None),
        (2, "multipart/related", None, None),
        (3, "text/html", None, None),
        (3, "image/png", "inline", "<logo@example.com>"),
        (1, "application/pdf", "attachment", None),
    ]
    assert received.get_body(("html",)).get_content().strip() == HTML
    logo = [part for part in received.walk() if part["Content-ID"]][0]
    assert logo.get_filename() == "logo.png" and logo.get_content() == b"\x89PNG logo"


@pytest.mark.parametrize("mime_of", [ses_mime, smtp_mime])
def test_an_html_only_mail_with_an_inline_part_is_related_alone(mime_of):
    received = mime_of(message(html=HTML, attachments=[LOGO]))
    assert structure(received) == [
        (0, "multipart/related", None, None),
        (1, "text/html", None, None),
        (1, "image/png", "inline", "<logo@example.com>"),
    ]


@pytest.mark.parametrize("mime_of", [ses_mime, smtp_mime])
def test_an_inline_part_without_html_goes_beside_the_text_still_inline(mime_of):
    received = mime_of(message(text="Thanks!", attachments=[LOGO]))
    assert structure(received) == [
        (0, "multipart/mixed", None, None),
        (1, "text/plain", None, None),
        (1, "image/png", "inline", "<logo@example.com>"),
    ]
