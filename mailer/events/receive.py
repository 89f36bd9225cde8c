"""Delivery events in: ``POST /webhooks/mailgun`` and ``POST /webhooks/sendgrid``.

They need no API key: the provider's signature is the authentication, so they work in every
mode, protected mode included (``auth``'s protected-mode check guards the ``/mail`` resources,
the suppression list and the admin, not these). Answers:

- 404 while the endpoint's key (``MAILGUN_WEBHOOK_SIGNING_KEY``, ``SENDGRID_WEBHOOK_PUBLIC_KEY``)
  is not set: the endpoint is off;
- 401 for a missing or wrong signature, or a Mailgun timestamp older than ``WEBHOOK_MAX_AGE`` or
  more than ``FUTURE_SKEW`` ahead (a replay of an old event); nothing is stored;
- 400 for a body that is not what the provider sends; nothing is stored;
- 200 otherwise: also for a repeat (the provider's key was seen before: nothing changes) and for
  an event of a mail we do not know (logged), so the provider stops retrying.

A SendGrid batch is recorded in one transaction: all of it or, on an error, none (SendGrid
then posts it again).
"""

import json
import logging
import time

from flask import current_app, jsonify, request

from mailer.api.errors import ApiError
from mailer.database import transaction
from mailer.events.provider import Malformed, mailgun_event, sendgrid_events
from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_valid,
    sendgrid_public_key,
    sendgrid_valid,
)
from mailer.queue.events import record_events

log = logging.getLogger("mail_service.events")

FUTURE_SKEW = 300  # seconds a Mailgun timestamp may be ahead of our clock


def receive_mailgun():
    """``POST /webhooks/mailgun``: one signed event."""
    key = current_app.config["MAILGUN_WEBHOOK_SIGNING_KEY"]
    if not key:
        raise not_configured("MAILGUN_WEBHOOK_SIGNING_KEY")
    body = parsed_body(dict)
    signature = body.get("signature")
    signature = signature if isinstance(signature, dict) else {}
    timestamp, token = signature.get("timestamp"), signature.get("token")
    if not mailgun_valid(key, timestamp, token, signature.get("signature")):
        raise refused("signature", "Missing or wrong signature")
    refuse_stale(timestamp)
    try:
        event = mailgun_event(body.get("event-data"), token)
    except Malformed as err:
        raise malformed(str(err)) from None
    return record([event])


def receive_sendgrid():
    """``POST /webhooks/sendgrid``: a signed batch of events."""
    public_key = sendgrid_key()
    timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    raw = request.get_data()  # the signature covers these very bytes
    if not timestamp or not signature or not sendgrid_valid(public_key, timestamp, raw, signature):
        raise refused(SENDGRID_SIGNATURE, "Missing or wrong signature")
    try:
        events = sendgrid_events(parsed_body(list, raw))
    except Malformed as err:
        raise malformed(str(err)) from None
    return record(events)


def record(events):
    """Record the events in one transaction and answer 200 with what came of them.

    The transaction is a plain connection's (``database.transaction``): an ORM session would
    only add its bookkeeping to a path that runs no ORM statement.
    """
    with transaction() as conn:
        outcome = record_events(
            conn, events, current_app.config["SUPPRESSION_DAYS"], current_app.extensions["webhooks"]
        )
    for event in outcome.unmatched:
        log.info(
            "%s event %s (%s) for no known mail: mail id %s, message id %s",
            event.provider,
            event.provider_event,
            event.key,
            event.mail_id,
            event.message_id,
            extra={"mail_id": event.mail_id},
        )
    return jsonify(
        {
            "success": True,
            "received": len(events),
            "new": outcome.new,
            "repeats": outcome.repeats,
            "unmatched": len(outcome.unmatched),
        }
    )


def parsed_body(kind, raw=None):
    """The JSON body, which must be a ``kind`` (dict or list); 400 otherwise."""
    try:
        body = json.loads(request.get_data() if raw is None else raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, kind):
        raise malformed(f"The body must be a JSON {'object' if kind is dict else 'array'}")
    return body


def refuse_stale(timestamp):
    """401 for a Mailgun timestamp outside [now - WEBHOOK_MAX_AGE, now + FUTURE_SKEW]."""
    try:
        age = time.time() - float(timestamp)
    except ValueError:
        age = float("nan")
    if not -FUTURE_SKEW <= age <= current_app.config["WEBHOOK_MAX_AGE"]:
        raise refused("signature.timestamp", "Too old or in the future: refused as a replay")


def sendgrid_key():
    """The configured SendGrid public key, read once per app; 404 while none is set."""
    text = current_app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"]
    if not text:
        raise not_configured("SENDGRID_WEBHOOK_PUBLIC_KEY")
    cached = current_app.extensions.get("sendgrid_webhook_key")
    if cached is None or cached[0] != text:
        cached = (text, sendgrid_public_key(text))
        current_app.extensions["sendgrid_webhook_key"] = cached
    return cached[1]


def not_configured(setting):
    """The 404 of an endpoint whose key is not set."""
    return ApiError(404, "Not found", [{"field": "url", "message": f"Off: {setting} is not set"}])


def refused(field, message):
    """The 401 of an event whose signature does not hold."""
    return ApiError(
        401,
        "The event's signature does not hold; nothing was stored",
        [{"field": field, "message": message}],
    )


def malformed(message):
    """The 400 of a body that is not what the provider sends."""
    return ApiError(
        400, "Malformed event body; nothing was stored", [{"field": "body", "message": message}]
    )


def init_app(app):
    """Register the two endpoints, and check a configured SendGrid key at start."""
    if app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"]:
        sendgrid_public_key(app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"])  # BadKey says why
    app.add_url_rule("/webhooks/mailgun", "webhooks_mailgun", receive_mailgun, methods=["POST"])
    app.add_url_rule("/webhooks/sendgrid", "webhooks_sendgrid", receive_sendgrid, methods=["POST"])
