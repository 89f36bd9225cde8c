"""Signed provider events for tests, with keys generated for this run (an HMAC key for Mailgun,
an ECDSA P-256 key pair for SendGrid, the basic auth of Postmark's webhook URL and of SendGrid's
Inbound Parse URL), as the providers would post them."""

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime

from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_signature,
    new_sendgrid_keys,
    sendgrid_sign,
)

MAILGUN_SIGNING_KEY = secrets.token_hex(32)
SENDGRID_PRIVATE_KEY, SENDGRID_PUBLIC_KEY = new_sendgrid_keys()
POSTMARK_WEBHOOK_USERNAME = "postmark"
POSTMARK_WEBHOOK_PASSWORD = secrets.token_urlsafe(24)
POSTMARK_AUTH = (POSTMARK_WEBHOOK_USERNAME, POSTMARK_WEBHOOK_PASSWORD)
SENDGRID_INBOUND_USERNAME = "sendgrid"
SENDGRID_INBOUND_PASSWORD = secrets.token_urlsafe(24)


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


def postmark_event(record_type, recipient, mail_id=None, message_id=None, **extra):
    """One Postmark webhook body: a Delivery, a Bounce (give ``Type``), a SpamComplaint, ..."""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {"RecordType": record_type, "MessageStream": "outbound", "ServerID": 1}
    if record_type in ("Bounce", "SpamComplaint"):
        body.update({"ID": secrets.randbits(52), "Email": recipient, "BouncedAt": at})
    else:
        body.update({"Recipient": recipient, "DeliveredAt": at})
    if mail_id:
        body["Metadata"] = {"mail_id": str(mail_id)}
    if message_id:
        body["MessageID"] = message_id
    return {**body, **extra}


def postmark_headers(auth=POSTMARK_AUTH):
    """The Authorization header of Postmark's webhook URL with ``auth`` (user, password)."""
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def new_id():
    """A mail id that no mail has."""
    return uuid.uuid4()
