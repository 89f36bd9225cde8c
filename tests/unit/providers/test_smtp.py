"""The SMTP relay provider's message, envelope, settings and reading of replies, without a
relay (tests/unit/devkit/test_sandbox_smtp.py and tests/integration/worker/test_smtp.py send
through the sandbox's)."""

import ssl
from email import message_from_bytes, policy

import pytest

from mailer.config import load_config
from providers import (
    Message,
    MessageRejected,
    ProviderMisconfigured,
    ProviderUnavailable,
    build_providers,
)
from providers.smtp import POLICY, SMTPRelay, _judged

MAIL_ID = "9f0b7c1e-4d0a-4d7e-9a51-0c2f3e8b6a11"


def relay(**settings):
    """An SMTP relay provider built from the defaults and ``settings``, as a worker builds it."""
    config = load_config(
        overrides={"PROVIDERS": "smtp", "SMTP_HOST": "relay.example.com", **settings}, environ={}
    )
    [provider] = build_providers(config)
    return provider


def message(**fields):
    """A message using every field, with display names, plus ``fields``."""
    return Message(
        **{
            "id": MAIL_ID,
            "from_address": "Shop <shop@Example.com>",
            "to": ["Ann <ann@example.com>", "bob@example.com"],
            "cc": ["carl@example.com"],
            "bcc": ["Dora <dora@example.com>"],
            "reply_to": "Help <help@example.com>",
            "subject": "Your order Nº 5",
            "text": "Thanks! Ünïcode.",
            "html": "<p>Thanks!</p>",
            "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
            "attachments": [
                {"filename": "bill.pdf", "content_type": "application/pdf", "content": b"%PDF-1"}
            ],
            **fields,
        }
    )


def parsed(provider, mail):
    """The MIME message the provider would send, as a receiver parses it."""
    data = provider.build_message(mail).as_bytes(policy=POLICY)
    assert data.isascii() and b"\r\n" in data and b"\n\n" not in data  # 7-bit, CRLF lines
    return message_from_bytes(data, policy=policy.default)


def test_the_message_carries_every_header_and_no_bcc():
    received = parsed(relay(), message())
    assert received["From"] == "Shop <shop@Example.com>"
    assert received["To"] == "Ann <ann@example.com>, bob@example.com"
    assert received["Cc"] == "carl@example.com"
    assert received["Reply-To"] == "Help <help@example.com>"
    assert received["Subject"] == "Your order Nº 5"
    assert received["X-Campaign"] == "spring"
    assert received["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert received["Date"] is not None
    assert "Bcc" not in received and b"dora" not in relay().build_message(message()).as_bytes()


def test_the_message_id_is_the_mail_id_at_the_sender_domain_or_the_setting():
    assert parsed(relay(), message())["Message-ID"] == f"<{MAIL_ID}@example.com>"
    chosen = relay(MESSAGE_ID_DOMAIN="mail.example.org")
    assert parsed(chosen, message())["Message-ID"] == f"<{MAIL_ID}@mail.example.org>"
    deprecated = relay(SMTP_MESSAGE_ID_DOMAIN="old.example.org")
    assert parsed(deprecated, message())["Message-ID"] == f"<{MAIL_ID}@old.example.org>"
    both = relay(MESSAGE_ID_DOMAIN="mail.example.org", SMTP_MESSAGE_ID_DOMAIN="old.example.org")
    assert parsed(both, message())["Message-ID"] == f"<{MAIL_ID}@mail.example.org>"
    international = parsed(relay(), message(from_address="a@bücher.example"))
    assert international["Message-ID"] == f"<{MAIL_ID}@xn--bcher-kva.example>"


def test_text_and_html_are_alternatives_and_attachments_follow():
    received = parsed(relay(), message())
    assert received.get_content_type() == "multipart/mixed"
    assert received.get_body(("plain",)).get_content().strip() == "Thanks! Ünïcode."
    assert received.get_body(("html",)).get_content().strip() == "<p>Thanks!</p>"
    [attachment] = received.iter_attachments()
    assert attachment.get_filename() == "bill.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1"


def test_a_message_with_one_body_and_no_files_is_a_single_part():
    received = parsed(relay(), message(html=None, attachments=[]))
    assert received.get_content_type() == "text/plain"
    received = parsed(relay(), message(text=None, attachments=[]))
    assert received.get_content_type() == "text/html"


def test_the_envelope_holds_every_recipient_once_bcc_included():
    sender, recipients = SMTPRelay.envelope(message(cc=["carl@example.com", "bob@example.com"]))
    assert sender == "shop@Example.com"
    assert recipients == [
        "ann@example.com",
        "bob@example.com",
        "carl@example.com",
        "dora@example.com",
    ]


@pytest.mark.parametrize("host", ["relay.example.com", "10.0.0.5", "localhost.example.com"])
def test_clear_text_is_refused_to_a_host_that_is_not_loopback(host):
    with pytest.raises(ValueError, match="SMTP_SECURITY") as caught:
        relay(SMTP_HOST=host, SMTP_SECURITY="none")
    assert host in str(caught.value)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "mailpit.localhost"])
def test_clear_text_is_allowed_to_loopback(host):
    assert relay(SMTP_HOST=host, SMTP_SECURITY="none").security == "none"


def test_an_unknown_security_mode_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="SMTP_SECURITY 'ssl' is not one of starttls, tls, none"):
        relay(SMTP_SECURITY="ssl")


def test_the_certificate_and_its_host_name_are_verified():
    context = relay()._context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_ca_file_that_cannot_be_read_stops_the_start_naming_the_setting(tmp_path):
    with pytest.raises(ValueError, match="SMTP_CA_FILE"):
        relay(SMTP_CA_FILE=str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="SMTP_CA_FILE"):
        relay(SMTP_CA_FILE=str(tmp_path / "junk.pem"))


def test_missing_settings_name_the_host_and_a_password_without_which_the_user_fails():
    assert relay(SMTP_HOST="").missing_settings() == ["SMTP_HOST"]
    assert not relay(SMTP_HOST="").is_configured()
    assert relay(SMTP_USERNAME="u").missing_settings() == ["SMTP_PASSWORD"]
    assert relay(SMTP_USERNAME="u", SMTP_PASSWORD="p").missing_settings() == []
    assert relay().is_configured() and relay().tags_for(["a", "b"]) == []


@pytest.mark.parametrize(
    ("code", "stage", "kind"),
    [
        (421, "MAIL FROM", ProviderUnavailable),
        (451, "DATA", ProviderUnavailable),
        (454, "AUTH", ProviderUnavailable),
        (535, "AUTH", ProviderMisconfigured),
        (530, "MAIL FROM", ProviderMisconfigured),
        (554, "connect", ProviderMisconfigured),
        (550, "MAIL FROM", MessageRejected),
        (554, "DATA", MessageRejected),
    ],
)
def test_a_reply_is_judged_by_its_code_and_command(code, stage, kind):
    error = _judged(code, b"5.0.0 some words", stage)
    assert type(error) is kind
    assert error.status_code == code and f"{stage}: {code} 5.0.0 some words" in error.reason
