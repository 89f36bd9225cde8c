"""The SMTP door as the MX of INBOUND_DOMAINS (issue 25): a session without AUTH delivers mail
for those domains and nothing else (550 5.7.1, no open relay); a logged-in session submits
outbound mail as before; the answer comes once the mail is stored, 451 while it cannot be.

What was stored (``GET /inbound/<id>``) is asserted in
tests/integration/inbound/test_inbound_ways_stored.py."""

import re
import uuid

import pytest

from integration.smtp.door import (
    API_KEY,
    certificates,
    client_tls,
    connect,
    queued_id,
    running_door,
    sample_message,
    send_data,
)

pytestmark = pytest.mark.committed
INBOUND = "in.example.com"
SUPPORT = f"support@{INBOUND}"
RECEIVED = re.compile(rb"2\.0\.0 Ok: received as ([0-9a-f-]{36})")
RELAY_DENIED = (
    550,
    b"5.7.1 Relay access denied: without AUTH, mail is taken for this server's own domains only",
)


@pytest.fixture
def mx(settings):
    """Settings of a door that takes keys (so logs in over TLS) and is the MX of INBOUND."""
    with certificates() as (ca, cert, key):
        yield {
            "API_KEYS": API_KEY,
            "SMTP_TLS_CERT": cert,
            "SMTP_TLS_KEY": key,
            "INBOUND_DOMAINS": f"{INBOUND}, other-in.example.com",
            "ca": ca,
        }


def door_of(settings, mx, **more):
    """The door of ``mx`` (its CA file left out)."""
    overrides = {name: value for name, value in mx.items() if name != "ca"}
    return running_door(settings, **{**overrides, **more})


def received_id(reply):
    """The inbound id of a ``250 2.0.0 Ok: received as <id>`` reply."""
    code, text = reply
    assert code == 250, text
    return str(uuid.UUID(RECEIVED.fullmatch(text).group(1).decode()))


def reply_to_shop():
    """A reply to a mail the shop sent."""
    message = sample_message(In_Reply_To="<mail-1@shop.example.com>")
    message.replace_header("From", "Ann <ann@example.com>")
    message.replace_header("To", f"Support <{SUPPORT}>")
    return message


def test_mail_for_an_inbound_domain_is_received_without_auth(app, client, settings, mx):
    with door_of(settings, mx) as door, connect(door) as smtp:
        assert "auth" not in smtp.esmtp_features  # not offered before STARTTLS
        reply = send_data(smtp, reply_to_shop(), recipients=[SUPPORT], sender="ann@example.com")
        received_id(reply)
        assert door.metrics.received._value.get() == 1
    assert client.get("/mail").get_json()["mails"] == []  # nothing goes out


def test_each_recipient_must_be_in_an_inbound_domain_any_case(app, client, settings, mx):
    with door_of(settings, mx) as door, connect(door) as smtp:
        assert smtp.mail("ann@example.com")[0] == 250
        assert smtp.rcpt("bob@example.com") == RELAY_DENIED  # no open relay
        assert smtp.rcpt("Support@IN.Example.COM")[0] == 250
        assert smtp.rcpt("sales@other-in.example.com")[0] == 250
        assert smtp.rcpt("carl@example.com") == RELAY_DENIED  # not mixed in either
        assert smtp.rcpt(f"someone@sub.{INBOUND}") == RELAY_DENIED  # the domain itself only
        received_id(smtp.data(reply_to_shop().as_bytes()))
        refused = door.metrics.refused.labels("relay_denied")._value.get()
    assert refused == 3
    assert client.get("/mail").get_json()["mails"] == []


def test_without_inbound_domains_a_session_without_auth_is_refused_at_mail(app, settings, mx):
    with door_of(settings, mx, INBOUND_DOMAINS="") as door, connect(door) as smtp:
        assert smtp.mail("ann@example.com") == (530, b"5.7.0 Authentication required")
        assert smtp.rcpt(SUPPORT)[0] == 530


def test_a_logged_in_session_submits_outbound_mail_even_to_an_inbound_domain(
    app, client, settings, mx
):
    with door_of(settings, mx) as door, connect(door) as smtp:
        smtp.starttls(context=client_tls(mx["ca"]))
        smtp.ehlo("client.example.com")
        smtp.login("app", API_KEY)
        mail_id = queued_id(
            send_data(smtp, sample_message(), recipients=["ann@example.com", SUPPORT])
        )
    assert client.get(f"/mail/{mail_id}").get_json()["source"] == "smtp"


def test_in_protected_mode_the_first_recipient_decides(app, client, settings):
    with running_door(settings, INBOUND_DOMAINS=INBOUND) as door, connect(door) as smtp:
        received_id(send_data(smtp, reply_to_shop(), recipients=[SUPPORT]))
        mail_id = queued_id(
            send_data(smtp, sample_message(), recipients=["ann@example.com", SUPPORT])
        )
        assert smtp.mail("ann@example.com")[0] == 250
        assert smtp.rcpt(SUPPORT)[0] == 250
        assert smtp.rcpt("bob@example.com") == RELAY_DENIED
    assert client.get(f"/mail/{mail_id}").get_json()["status"] == "queued"


def test_a_message_too_large_is_552(app, settings, mx):
    with door_of(settings, mx, SMTP_MAX_MESSAGE_BYTES=2000) as door, connect(door) as smtp:
        message = reply_to_shop()
        message.get_payload()[1].set_content(b"x" * 5000, "application", "pdf", filename="big.pdf")
        code, text = send_data(smtp, message, recipients=[SUPPORT], sender="ann@example.com")
    assert code == 552 and text.startswith(b"5.3.4 The message is larger than the limit of 2000")


def test_a_message_without_a_header_is_554(app, settings, mx):
    with door_of(settings, mx) as door, connect(door) as smtp:
        code, text = send_data(smtp, b"just words\r\n", recipients=[SUPPORT])
    assert (code, text) == (554, b"5.6.0 Not a MIME message: it has no header")


def test_a_database_that_cannot_be_reached_is_451(settings, mx):
    unreachable = {**settings, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"}
    with (
        door_of({**unreachable, "DB_CONNECT_TIMEOUT": 1}, mx) as door,
        connect(door) as smtp,
    ):
        code, text = send_data(smtp, reply_to_shop(), recipients=[SUPPORT], sender="")
    assert code == 451 and text.startswith(b"4.3.0 The database is unavailable")
