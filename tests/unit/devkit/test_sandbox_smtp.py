"""The sandbox's SMTP relay (devkit/sandbox/smtp.py), and the SMTP provider's reading of its
real replies: smtplib over loopback against aiosmtpd on a thread of this process, STARTTLS
verified with the sandbox's CA, no mocks."""

import smtplib
import ssl
import time

import pytest
import requests

from devkit.sandbox import Sandbox
from mailer.config import load_config
from providers import (
    Message,
    MessageRejected,
    OutcomeUnknown,
    ProviderMisconfigured,
    ProviderUnavailable,
    build_providers,
)

USER, PASSWORD = "relay-user", "relay-password"
BUILT = []  # the providers the running test built
RAW = (
    b"From: Shop <shop@example.com>\r\nTo: Ann <ann@example.com>\r\nCc: carl@example.com\r\n"
    b"Subject: Hi\r\nMessage-ID: <1@example.com>\r\n\r\nHello\r\n"
)


@pytest.fixture(scope="module")
def server():
    """One sandbox with its relay for the module (reset before each test by ``sb``)."""
    with Sandbox(smtp=True, smtp_username=USER, smtp_password=PASSWORD).start() as sandbox:
        yield sandbox


@pytest.fixture
def sb(server):
    """The shared sandbox with clean messages, requests and behaviour."""
    server.reset()
    return server


def connect(sb, login=True):
    """An smtplib client over STARTTLS, verifying the relay with the sandbox's CA."""
    client = smtplib.SMTP("localhost", sb.smtp_port, timeout=5)
    client.starttls(context=ssl.create_default_context(cafile=sb.smtp_ca_file))
    client.ehlo()
    if login:
        client.login(USER, PASSWORD)
    return client


@pytest.fixture(autouse=True)
def close_providers():
    """Close the providers a test built (their connections with them) at its end."""
    yield
    while BUILT:
        BUILT.pop().close()


def provider(sb, **settings):
    """The SMTP provider pointed at the sandbox's relay (closed after the test)."""
    config = load_config(
        overrides={
            "PROVIDERS": "smtp",
            "SMTP_HOST": "localhost",
            "SMTP_PORT": sb.smtp_port,
            "SMTP_USERNAME": USER,
            "SMTP_PASSWORD": PASSWORD,
            "SMTP_CA_FILE": sb.smtp_ca_file,
            "SMTP_TIMEOUT": 2.0,
            **settings,
        },
        environ={},
    )
    relay = build_providers(config)[0]
    BUILT.append(relay)
    return relay


def mail(number=1, **fields):
    """A mail to two recipients and a bcc."""
    return Message(
        **{
            "id": f"00000000-0000-0000-0000-{number:012d}",
            "from_address": "Shop <shop@example.com>",
            "to": ["Ann <ann@example.com>", "bob@example.com"],
            "bcc": ["dora@example.com"],
            "subject": "Your order",
            "text": "Thanks!",
            **fields,
        }
    )


def failure(relay, message):
    """The error the provider raises sending ``message``; fails the test if none."""
    with pytest.raises((MessageRejected, ProviderUnavailable)) as caught:
        relay.send(None, message)
    return caught.value


# --- The relay, as any SMTP client sees it -------------------------------------------------------


def test_a_mail_is_recorded_with_its_envelope_and_bcc(sb):
    with connect(sb) as client:
        assert (
            client.sendmail("shop@example.com", ["ann@example.com", "dora@example.com"], RAW) == {}
        )
    [record] = sb.messages("smtp")
    assert record["id"] == "<1@example.com>" and record["from"] == "Shop <shop@example.com>"
    assert record["to"] == ["Ann <ann@example.com>"] and record["cc"] == ["carl@example.com"]
    assert record["bcc"] == ["dora@example.com"] and record["text"] == "Hello\n"
    assert record["envelope"] == {
        "mail_from": "shop@example.com",
        "rcpt_to": ["ann@example.com", "dora@example.com"],
    }
    assert sb.requests("smtp") == [
        {"provider": "smtp", "at": pytest.approx(time.time(), abs=5), "status": 250}
    ]


def test_auth_is_offered_only_after_starttls_and_required(sb):
    with smtplib.SMTP("localhost", sb.smtp_port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth") and client.has_extn("starttls")
        code, _ = client.mail("shop@example.com")
        assert code == 530  # authentication required
    with connect(sb, login=False) as client:
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login(USER, "wrong")
        assert caught.value.smtp_code == 535


def test_refuse_auth_refuses_the_right_password(sb):
    sb.configure("smtp", refuse_auth=True)
    with connect(sb, login=False) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login(USER, PASSWORD)


def test_reject_to_refuses_those_recipients_at_rcpt(sb):
    sb.configure("smtp", reject_to="dora")
    with connect(sb) as client:
        refused = client.sendmail("shop@example.com", ["ann@example.com", "dora@example.com"], RAW)
    assert refused == {
        "dora@example.com": (
            550,
            b"5.1.1 <dora@example.com>: Recipient address rejected: User unknown in local table",
        )
    }
    [record] = sb.messages("smtp")
    assert record["envelope"]["rcpt_to"] == ["ann@example.com"]


def test_faults_are_set_over_http_and_answered_at_their_stage(sb):
    session = requests.Session()
    session.trust_env = False
    url = f"{sb.url}/_sandbox/behaviour/smtp"
    answer = session.put(url, json={"status": 451, "stage": "data", "count": 1})
    assert answer.status_code == 200 and answer.json()["stage"] == "data"
    assert session.put(url, json={"stage": "helo"}).status_code == 400  # the last PUT stays
    with connect(sb) as client:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("shop@example.com", ["ann@example.com"], RAW)
        assert caught.value.smtp_code == 451
        client.rset()
        client.sendmail("shop@example.com", ["ann@example.com"], RAW)  # count spent
    assert [r["status"] for r in sb.requests("smtp")] == [451, 250]
    listed = session.get(f"{sb.url}/_sandbox/messages", params={"provider": "smtp"}).json()
    assert [m["id"] for m in listed["messages"]] == ["<1@example.com>"]


def test_connections_are_counted(sb):
    before = sb.smtp_connections
    with connect(sb) as client:
        client.sendmail("shop@example.com", ["ann@example.com"], RAW)
        client.rset()
        client.sendmail("shop@example.com", ["ann@example.com"], RAW)
    assert sb.smtp_connections == before + 1


# --- The provider against the relay ----------------------------------------------------------


def test_the_provider_sends_over_starttls_and_answers_our_message_id(sb):
    sent = provider(sb).send(None, mail())
    assert sent.message_id == "<00000000-0000-0000-0000-000000000001@example.com>"
    assert sent.status_code == 250 and sent.response.startswith("250 2.0.0 Ok: queued as ")
    assert sent.refused == {}
    [record] = sb.messages("smtp")
    assert record["id"] == sent.message_id and record["bcc"] == ["dora@example.com"]
    assert "Bcc" not in record["headers_in"]


def test_an_inline_part_is_recorded_inline_with_its_content_id_and_the_message_id(sb):
    logo = {"filename": "logo.png", "content_type": "image/png", "content": b"PNG"}
    html = '<img src="cid:logo@example.com">'
    files = [{**logo, "content_id": "logo@example.com"}]
    sent = provider(sb, MESSAGE_ID_DOMAIN="replies.example.org").send(
        None, mail(html=html, attachments=files)
    )
    [record] = sb.messages("smtp")
    assert (
        record["message_id"]
        == sent.message_id
        == ("<00000000-0000-0000-0000-000000000001@replies.example.org>")
    )
    assert record["html"].strip() == html
    [received] = record["attachments"]
    assert (received["filename"], received["size"]) == ("logo.png", 3)
    assert (received["disposition"], received["content_id"]) == ("inline", "logo@example.com")


def test_the_provider_reuses_its_connection_and_reopens_one_the_relay_closed(sb):
    relay = provider(sb)
    before = sb.smtp_connections
    relay.send(None, mail(1))
    relay.send(None, mail(2))
    assert sb.smtp_connections == before + 1
    sb.configure("smtp", status=421, count=1)  # smtplib closes the connection on a 421
    assert type(failure(relay, mail(3))) is ProviderUnavailable
    relay.send(None, mail(4))
    assert sb.smtp_connections == before + 2
    assert len(sb.messages("smtp")) == 3


def test_a_wrong_password_or_a_refused_login_is_misconfigured(sb):
    error = failure(provider(sb, SMTP_PASSWORD="wrong"), mail())
    assert type(error) is ProviderMisconfigured and error.status_code == 535
    sb.configure("smtp", refuse_auth=True)
    assert type(failure(provider(sb), mail())) is ProviderMisconfigured


def test_an_untrusted_certificate_is_misconfigured(sb):
    error = failure(provider(sb, SMTP_CA_FILE=""), mail())
    assert type(error) is ProviderMisconfigured and "certificate verify failed" in error.reason


def test_clear_text_to_a_relay_that_wants_a_login_after_starttls_is_misconfigured(sb):
    error = failure(provider(sb, SMTP_SECURITY="none"), mail())
    assert type(error) is ProviderMisconfigured and "SMTP_SECURITY" in error.reason


def test_a_refused_connection_is_unavailable(sb):
    error = failure(provider(sb, SMTP_PORT=1), mail())
    assert type(error) is ProviderUnavailable


@pytest.mark.parametrize(
    ("status", "stage", "kind"),
    [
        (421, "mail", ProviderUnavailable),
        (451, "mail", ProviderUnavailable),
        (451, "data", ProviderUnavailable),
        (450, "rcpt", ProviderUnavailable),
        (554, "mail", MessageRejected),
        (554, "data", MessageRejected),
        (550, "rcpt", MessageRejected),
    ],
)
def test_replies_are_classified_by_code_and_stage(sb, status, stage, kind):
    sb.configure("smtp", status=status, stage=stage)
    error = failure(provider(sb), mail())
    assert type(error) is kind and error.status_code == status
    assert sb.messages("smtp") == []


def test_some_recipients_refused_the_mail_goes_to_the_others(sb):
    sb.configure("smtp", reject_to="bob@")
    sent = provider(sb).send(None, mail())
    assert sent.refused == {
        "bob@example.com": "550 5.1.1 <bob@example.com>: Recipient address rejected: "
        "User unknown in local table"
    }
    [record] = sb.messages("smtp")
    assert record["envelope"]["rcpt_to"] == ["ann@example.com", "dora@example.com"]


def test_every_recipient_refused_rejects_the_mail(sb):
    sb.configure("smtp", reject_to="example.com")
    error = failure(provider(sb), mail())
    assert type(error) is MessageRejected and error.status_code == 550
    assert set(error.response) == {"ann@example.com", "bob@example.com", "dora@example.com"}


def test_no_answer_to_data_is_an_unknown_outcome():
    # A sandbox of its own: the hung answer must not land in another test's messages.
    with Sandbox(smtp=True, smtp_username=USER, smtp_password=PASSWORD).start() as sb:
        sb.configure("smtp", hang=3, stage="data")
        error = failure(provider(sb, SMTP_TIMEOUT=0.5), mail())
    assert type(error) is OutcomeUnknown
