"""Everything the API refuses, the SMTP door refuses with the SMTP code that fits and the API's
words; nothing refused is stored."""

import dataclasses

import pytest

from integration.smtp.door import (
    certificates,
    client_tls,
    connect,
    queued_id,
    running_door,
    sample_message,
    send_data,
)
from mailer import database, principals

pytestmark = pytest.mark.committed


def stored(client):
    """The mails stored."""
    return client.get("/mail").get_json()["mails"]


def test_an_invalid_address_at_rcpt_is_553(app, client, settings):
    with running_door(settings) as door, connect(door) as smtp:
        assert smtp.mail("shop@example.com")[0] == 250
        code, text = smtp.rcpt("ann@example")
    assert code == 553 and text.startswith(b"5.1.3 Invalid address: ")


def test_header_injection_is_554(app, client, settings):
    message = (
        b"From: shop@example.com\r\nTo: ann@example.com\r\n"
        b"Subject: =?utf-8?q?Hello=0D=0ABcc:_eve@example.com?=\r\n\r\nHi\r\n"
    )
    with running_door(settings) as door, connect(door) as smtp:
        code, text = send_data(smtp, message, recipients=["ann@example.com"])
    assert code == 554 and text.startswith(b"5.6.0 Invalid mail request: subject: Must not")
    assert stored(client) == []


def test_a_missing_subject_is_554(app, client, settings):
    message = sample_message()
    del message["Subject"]
    with running_door(settings) as door, connect(door) as smtp:
        code, text = send_data(smtp, message)
    assert (code, text) == (554, b"5.6.0 Invalid mail request: subject: This field is required")


def test_metadata_that_is_not_json_is_554(app, client, settings):
    with running_door(settings) as door, connect(door) as smtp:
        code, text = send_data(smtp, sample_message(X_Mail_Metadata="{nope"))
    assert code == 554 and b"metadata: Must be a JSON object (x-mail-metadata)" in text


def test_a_message_too_large_is_552(app, client, settings):
    with running_door(settings, SMTP_MAX_MESSAGE_BYTES=2000) as door, connect(door) as smtp:
        assert smtp.esmtp_features["size"] == "2000"
        message = sample_message()
        message.get_payload()[1].set_content(b"x" * 5000, "application", "pdf", filename="big.pdf")
        code, text = send_data(smtp, message)
    assert code == 552 and text.startswith(b"5.3.4 The message is larger than the limit of 2000")
    assert stored(client) == []


def test_a_size_announced_too_large_is_552_at_mail(app, settings):
    with running_door(settings, SMTP_MAX_MESSAGE_BYTES=2000) as door, connect(door) as smtp:
        code, text = smtp.mail("shop@example.com", ["SIZE=5000"])
    assert code == 552 and text.startswith(b"5.3.4 ")


def test_attachments_past_max_attachment_bytes_are_552(app, client, settings):
    with running_door(settings, MAX_ATTACHMENT_BYTES=10) as door, connect(door) as smtp:
        code, text = send_data(smtp, sample_message())
    assert code == 552 and text.startswith(b"5.3.4 Invalid mail request: attachments")


def test_one_recipient_too_many_is_452(app, client, settings):
    with running_door(settings, SMTP_MAX_RECIPIENTS=2) as door, connect(door) as smtp:
        smtp.mail("shop@example.com")
        assert smtp.rcpt("ann@example.com")[0] == 250
        assert smtp.rcpt("carl@example.com")[0] == 250
        code, text = smtp.rcpt("bob@example.com")
    assert (code, text) == (452, b"4.5.3 Too many recipients: at most 2 per message")


@pytest.fixture
def shop_only_key(monkeypatch):
    """An API key that may send from shop.example.com only: a ``Principal`` as stored keys
    give one, returned by the seam ``principals.authenticate`` (``API_KEYS`` keys have no
    such limit)."""
    principal = dataclasses.replace(
        principals.SETTINGS_KEY, allowed_from_domains=("shop.example.com",)
    )
    real = principals.authenticate

    def authenticate(config, key):
        return principal if key == "shop-key" else real(config, key)

    monkeypatch.setattr(principals, "authenticate", authenticate)
    return "shop-key"


def test_a_sender_domain_the_key_may_not_use_is_550(app, client, settings, shop_only_key):
    with (
        certificates() as (ca, cert, key),
        running_door(
            settings, API_KEYS="another-key", SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key
        ) as door,
        connect(door) as smtp,
    ):
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("client.example.com")
        smtp.login("any", shop_only_key)
        code, text = smtp.mail("shop@example.com")
        assert (code, text) == (550, b"5.7.1 This API key may not send from example.com")
        smtp.rset()
        message = sample_message()
        message.replace_header("From", "shop@shop.example.com")
        assert queued_id(send_data(smtp, message, sender="bounces@shop.example.com"))
        smtp.rset()
        code, text = send_data_unchecked(smtp, sample_message(), "bounces@shop.example.com")
    assert (code, text) == (550, b"5.7.1 This API key may not send from example.com")
    assert len(stored(client)) == 1


def send_data_unchecked(smtp, message, sender):
    """MAIL, RCPT and DATA of ``message`` from the envelope ``sender``: DATA's reply."""
    smtp.mail(sender)
    smtp.rcpt("ann@example.com")
    return smtp.data(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))


def test_a_key_without_mail_send_is_550(app, client, settings, monkeypatch):
    reader = dataclasses.replace(principals.SETTINGS_KEY, scopes=frozenset({"mail:read"}))
    monkeypatch.setattr(principals, "authenticate", lambda config, key: reader)
    with (
        certificates() as (ca, cert, key),
        running_door(settings, API_KEYS="reader-key", SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key) as door,
        connect(door) as smtp,
    ):
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("client.example.com")
        smtp.login("any", "reader-key")
        code, text = smtp.mail("shop@example.com")
    assert (code, text) == (
        550,
        b"5.7.1 This API key may not send mail: it lacks the scope mail:send",
    )


def test_a_stored_keys_daily_quota_holds_over_smtp_and_its_mail_is_its_tenants(
    app, client, settings, sql
):
    """A stored key's limits and tenant apply over SMTP exactly as over HTTP: its second mail
    of the day is 451 4.7.1 (the client keeps it), and its first is the shop's."""
    fields = {"name": "relay", "tenant": "shop", "scopes": ["mail:send"], "daily_quota": 1}
    with app.app_context(), database.transaction() as conn:
        made = principals.issue(conn, fields, principals.LOCAL, "tests")
    with (
        certificates() as (ca, cert, key),
        running_door(
            settings, API_KEYS="another-key", SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key
        ) as door,
        connect(door) as smtp,
    ):
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("client.example.com")
        smtp.login("any", made.key)
        first = queued_id(send_data(smtp, sample_message()))
        smtp.rset()
        code, text = send_data_unchecked(smtp, sample_message(), "shop@example.com")
    assert code == 451 and text.startswith(b"4.7.1 This key's daily quota is spent"), text
    rows = sql("SELECT id::text, tenant, api_key_id::text, source FROM email")
    assert [tuple(row.values()) for row in rows] == [(first, "shop", str(made.row["id"]), "smtp")]
