"""Helpers of the SMTP door's tests: a door on a free loopback port, a test certificate, and
messages as the tests send them."""

import contextlib
import smtplib
import ssl
import tempfile
from email.message import EmailMessage

from devkit.sandbox.smtp import make_certificates
from mailer.config import load_config
from mailer.smtp.server import Door
from models import db

API_KEY = "smtp-door-test-key"


@contextlib.contextmanager
def certificates():
    """A private CA and a server certificate for loopback: (ca_file, cert_file, key_file)."""
    with tempfile.TemporaryDirectory(prefix="smtp-door-test-") as folder:
        yield make_certificates(folder)


@contextlib.contextmanager
def running_door(settings, **overrides):
    """The door on a free loopback port with ``settings`` and ``overrides``, for the block."""
    config = load_config(
        overrides={**settings, "SMTP_LISTEN": "127.0.0.1:0", **overrides}, environ={}
    )
    door = Door(config)
    try:
        with door:
            yield door
    finally:
        with door.app.app_context():
            db.engine.dispose()


def client_tls(ca_file):
    """A client's TLS context that trusts only the test CA (certificates checked)."""
    return ssl.create_default_context(cafile=ca_file)


def connect(door, **options):
    """An ``smtplib`` client of ``door``, greeted (EHLO)."""
    client = smtplib.SMTP(door.host, door.port, timeout=10, **options)
    client.ehlo("client.example.com")
    return client


def sample_message(**headers):
    """A message with a text and an HTML body, an attachment and a custom header."""
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.com>"
    message["Cc"] = "carl@example.com"
    message["Subject"] = "Your order"
    message["X-Order"] = "1234"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Thanks for your order.")
    message.add_alternative("<p>Thanks for your order.</p>", subtype="html")
    message.add_attachment(
        b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return message


RECIPIENTS = ["ann@example.com", "carl@example.com", "bob@example.com"]  # bob: a bcc


def send_data(client, message, recipients=RECIPIENTS, sender="shop@example.com"):
    """MAIL, RCPT and DATA by hand: the (code, text) of the end of DATA (which
    ``send_message`` does not return). smtplib sends bytes as they are: lines end in CRLF."""
    code, text = client.mail(sender)
    assert code == 250, text
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        assert code == 250, text
    if hasattr(message, "as_bytes"):
        message = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return client.data(message)


def queued_id(reply):
    """The mail id of a ``(250, b"2.0.0 Ok: queued as <id>")`` reply."""
    code, text = reply
    assert code == 250, text
    prefix = b"2.0.0 Ok: queued as "
    assert text.startswith(prefix), text
    return text[len(prefix) :].decode()
