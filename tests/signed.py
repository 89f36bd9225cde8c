"""Signed provider events for tests, with keys generated for this run (an HMAC key for Mailgun,
an ECDSA P-256 key pair for SendGrid), as the providers would post them."""

import json
import secrets
import time
import uuid

from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_signature,
    new_sendgrid_keys,
    sendgrid_sign,
)

MAILGUN_SIGNING_KEY = secrets.token_hex(32)
SENDGRID_PRIVATE_KEY, SENDGRID_PUBLIC_KEY = new_sendgrid_keys()


def mailgun_body(
    event,
    recipient,
    mail_id=None,
    message_id=None,
    severity=None,
    age=0.0,
    token=None,
    key=MAILGUN_SIGNING_KEY,
    **extra,
):
    """A Mailgun webhook body for one event, signed ``age`` seconds ago with ``key``."""
    timestamp = str(int(time.time() - age))
    token = token or secrets.token_hex(25)
    data = {
        "event": event,
        "recipient": recipient,
        "timestamp": time.time() - age,
        "id": secrets.token_urlsafe(16),
        "message": {"headers": {}},
        **extra,
    }
    if severity:
        data["severity"] = severity
        data["delivery-status"] = {"code": 550, "message": "5.1.1 mailbox unknown"}
    if mail_id:
        data["user-variables"] = {"mail_id": str(mail_id)}
    if message_id:
        data["message"]["headers"]["message-id"] = message_id.strip("<>")
    return {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": mailgun_signature(key, timestamp, token),
        },
        "event-data": data,
    }


def sendgrid_event(event, email, mail_id=None, sg_message_id=None, **extra):
    """One event of a SendGrid batch."""
    item = {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": secrets.token_urlsafe(16),
        **extra,
    }
    if mail_id:
        item["mail_id"] = str(mail_id)
    if sg_message_id:
        item["sg_message_id"] = sg_message_id
    return item


def sendgrid_request(events, private_key=SENDGRID_PRIVATE_KEY):
    """(raw body, headers) of a signed SendGrid batch."""
    raw = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    return raw, {
        SENDGRID_TIMESTAMP: timestamp,
        SENDGRID_SIGNATURE: sendgrid_sign(private_key, timestamp, raw),
        "Content-Type": "application/json",
    }


def new_id():
    """A mail id that no mail has."""
    return uuid.uuid4()
