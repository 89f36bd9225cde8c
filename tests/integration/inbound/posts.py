"""Helpers of the inbound tests: the providers' posts of a mail, as the sandbox writes them,
signed or authenticated with the tests' credentials (or others), for the test client."""

import base64
import secrets
import time
from urllib.parse import urlencode

from signed import (
    MAILGUN_SIGNING_KEY,
    POSTMARK_WEBHOOK_PASSWORD,
    POSTMARK_WEBHOOK_USERNAME,
    SENDGRID_INBOUND_PASSWORD,
    SENDGRID_INBOUND_USERNAME,
)

from devkit.sandbox.inbound import WRITERS, check_mail
from mailer.events.signatures import mailgun_signature

CREDENTIALS = {
    "mailgun_key": MAILGUN_SIGNING_KEY,
    "sendgrid_inbound_username": SENDGRID_INBOUND_USERNAME,
    "sendgrid_inbound_password": SENDGRID_INBOUND_PASSWORD,
    "postmark_username": POSTMARK_WEBHOOK_USERNAME,
    "postmark_password": POSTMARK_WEBHOOK_PASSWORD,
}
INBOUND_DOMAIN = "in.example.com"
SUPPORT = f"support@{INBOUND_DOMAIN}"


def written(provider, credentials=None, **mail):
    """(path, body, headers) of ``provider``'s post of ``mail`` (``inbound.MAIL_FIELDS``),
    with the tests' credentials or ``credentials``."""
    settings = {**CREDENTIALS, **(credentials or {})}
    path, body, headers, auth = WRITERS[provider](check_mail(provider, mail), settings)
    if auth is not None:
        headers = {**headers, **basic(*auth)}
    return path, body, headers


def post(client, provider, credentials=None, **mail):
    """Post ``mail`` as ``provider`` with the test client; the answer."""
    path, body, headers = written(provider, credentials, **mail)
    return client.post(path, data=body, headers=headers)


def basic(username, password):
    """The Authorization header of basic auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def mailgun_form(age=0.0, token=None, key=MAILGUN_SIGNING_KEY, **fields):
    """A signed, fully parsed Mailgun form (urlencoded) of ``fields``, its signature made
    ``age`` seconds ago."""
    timestamp = str(int(time.time() - age))
    token = token or secrets.token_hex(25)
    form = {
        "recipient": SUPPORT,
        "sender": "ann@example.com",
        "message-headers": "[]",
        "body-plain": "Hi",
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(key, timestamp, token),
        **fields,
    }
    return urlencode(form).encode()


def post_mailgun_form(client, body):
    """Post a urlencoded Mailgun form."""
    return client.post(
        "/inbound/mailgun", data=body, content_type="application/x-www-form-urlencoded"
    )
