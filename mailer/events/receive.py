"""Delivery events in: ``POST /webhooks/<provider>``, for Mailgun, SendGrid and Postmark.

They need no API key: the provider's signature is the authentication (for Postmark, which signs
nothing, the basic auth of its webhook URL), so they work in every mode, protected mode included
(``auth``'s protected-mode check guards the ``/mail`` resources, the suppression list and the
admin, not these). Answers:

- 404 while the endpoint's key (``MAILGUN_WEBHOOK_SIGNING_KEY``, ``SENDGRID_WEBHOOK_PUBLIC_KEY``,
  both ``POSTMARK_WEBHOOK_USERNAME`` and ``POSTMARK_WEBHOOK_PASSWORD``) is not set: the endpoint
  is off;
- 401 for a missing or wrong signature, a timestamp (Mailgun's or SendGrid's) older than
  ``WEBHOOK_MAX_AGE`` or more than ``FUTURE_SKEW`` ahead or not a number (a replay of an old
  event), or a Mailgun token already used for another event (a replay of its signature with
  other event data), or Postmark's missing or wrong basic auth (a wrong one counts towards the
  failed-authentication brake, as a wrong API key does); nothing is stored;
- 400 for a body that is not what the provider sends; nothing is stored;
- 200 otherwise: also for a repeat (the provider's key was seen before: nothing changes) and for
  an event of a mail we do not know (logged), so the provider stops retrying.

Mailgun's signature covers its timestamp and token but not the event, so every token that
passes is kept (``webhook_tokens``) with a digest of its event, whatever the event matched,
until its timestamp is too old to be taken anyway. Mailgun retrying an event sends the same
token with the same event: a repeat, answered 200 like any other, so that it stops. The same
token with other event data is nobody's retry: 401, and nothing is stored.

A SendGrid batch is recorded in one transaction: all of it or, on an error, none (SendGrid
then posts it again).
"""

import logging
import time

from flask import current_app, jsonify, request

from mailer.api.auth import count_failure
from mailer.api.bodies import parsed_json
from mailer.api.errors import ApiError
from mailer.database import transaction
from mailer.events import postmark
from mailer.events.provider import Malformed, mailgun_event, sendgrid_events
from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_valid,
    sendgrid_public_key,
    sendgrid_valid,
)
from mailer.queue import webhook_tokens
from mailer.queue.events import record_events
from mailer.shapes.service import EventsReceived

log = logging.getLogger("mail_service.events")

FUTURE_SKEW = 300  # seconds a provider's timestamp may be ahead of our clock
POSTMARK_CREDENTIALS = ("POSTMARK_WEBHOOK_USERNAME", "POSTMARK_WEBHOOK_PASSWORD")
# What a Mailgun body must be: its current webhooks post JSON; its legacy ones posted form fields.
MAILGUN_BODY = (
    "The body must be a JSON object, as Mailgun's current webhooks post it "
    '(Content-Type application/json, {"signature": {...}, "event-data": {...}}); '
    "Mailgun's legacy form-encoded webhooks are not supported"
)


def receive_mailgun():
    """``POST /webhooks/mailgun``: one signed event."""
    key = current_app.config["MAILGUN_WEBHOOK_SIGNING_KEY"]
    if not key:
        raise not_configured("MAILGUN_WEBHOOK_SIGNING_KEY")
    body = parsed_body(dict, expected=MAILGUN_BODY)
    signature = body.get("signature")
    signature = signature if isinstance(signature, dict) else {}
    timestamp, token = signature.get("timestamp"), signature.get("token")
    if not mailgun_valid(key, timestamp, token, signature.get("signature")):
        raise refused("signature", "Missing or wrong signature")
    refuse_stale(timestamp, "signature.timestamp")
    data = body.get("event-data")
    keep_token = token_keeper(token, timestamp, data)
    try:
        event = mailgun_event(data, token)
    except Malformed as err:
        with transaction() as conn:  # its token too: it may not sign another
            keep_token(conn)
        raise malformed(str(err)) from None
    return record([event], keep_token)


def receive_sendgrid():
    """``POST /webhooks/sendgrid``: a signed batch of events."""
    public_key = sendgrid_key()
    timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    raw = request.get_data()  # the signature covers these very bytes
    if not timestamp or not signature or not sendgrid_valid(public_key, timestamp, raw, signature):
        raise refused(SENDGRID_SIGNATURE, "Missing or wrong signature")
    refuse_stale(timestamp, SENDGRID_TIMESTAMP)
    try:
        events = sendgrid_events(parsed_body(list, raw))
    except Malformed as err:
        raise malformed(str(err)) from None
    return record(events)


def receive_postmark():
    """``POST /webhooks/postmark``: one event, authenticated by its URL's basic auth."""
    check_basic_auth(POSTMARK_CREDENTIALS, "postmark")
    try:
        event = postmark.postmark_event(parsed_body(dict))
    except Malformed as err:
        raise malformed(str(err)) from None
    return record([event])


def check_basic_auth(settings, realm):
    """Refuse a request without the basic auth of its URL: 404 while either of ``settings``
    (the user name's and the password's) is not set, 401 for missing or wrong credentials (a
    wrong one counts towards the failed-authentication brake, as a wrong API key does)."""
    missing = [name for name in settings if not current_app.config[name]]
    if missing:
        raise not_configured(" and ".join(missing))
    username, password = (current_app.config[name] for name in settings)
    problem = postmark.credentials_problem(request.authorization, username, password)
    if problem:
        if request.authorization is not None:
            count_failure()  # a guess: 429 once its client has guessed too often
        raise ApiError(
            401,
            "The basic auth does not hold; nothing was stored",
            [{"field": "Authorization", "message": problem}],
            headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
        )


def token_keeper(token, timestamp, event_data):
    """What keeps a Mailgun token and its event for as long as its signature may be taken:
    a step of the transaction that records the event, refusing (401) a token that signed
    another event before."""
    digest = webhook_tokens.event_digest(event_data)
    expires = float(timestamp) + current_app.config["WEBHOOK_MAX_AGE"]

    def keep_token(conn):
        if not webhook_tokens.remember(conn, token, digest, expires):
            raise refused("signature.token", "Already used for another event: refused as a replay")

    return keep_token


def record(events, before=None):
    """Record the events in one transaction and answer 200 with what came of them; ``before``
    (a function of the connection) runs first in that transaction, and may refuse them all.

    The transaction is a plain connection's (``database.transaction``): an ORM session would
    only add its bookkeeping to a path that runs no ORM statement.
    """
    with transaction() as conn:
        if before is not None:
            before(conn)
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
        EventsReceived.dump(
            {
                "received": len(events),
                "new": outcome.new,
                "repeats": outcome.repeats,
                "unmatched": len(outcome.unmatched),
            }
        )
    )


def parsed_body(kind, raw=None, expected=None):
    """The JSON body, which must be a ``kind`` (dict or list); 400 otherwise, saying
    ``expected`` (what the body must be) if given."""
    body = parsed_json(request.get_data() if raw is None else raw)
    if not isinstance(body, kind):
        raise malformed(
            expected or f"The body must be a JSON {'object' if kind is dict else 'array'}"
        )
    return body


def refuse_stale(timestamp, field):
    """401 (naming ``field``) for a signed timestamp outside [now - WEBHOOK_MAX_AGE, now +
    FUTURE_SKEW], or not a number of seconds: the signature of an old event, replayed."""
    try:
        age = time.time() - float(timestamp)
    except ValueError:
        age = float("nan")  # compares false with everything: refused, as inf and nan are
    if not -FUTURE_SKEW <= age <= current_app.config["WEBHOOK_MAX_AGE"]:
        raise refused(field, "Too old or in the future: refused as a replay")


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
    """The 401 of a post whose signature does not hold."""
    return ApiError(
        401,
        "The signature does not hold; nothing was stored",
        [{"field": field, "message": message}],
    )


def malformed(message):
    """The 400 of a body that is not what the provider sends."""
    return ApiError(
        400, "Malformed event body; nothing was stored", [{"field": "body", "message": message}]
    )


def init_app(app):
    """Register the endpoints, and check a configured SendGrid key at start."""
    if app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"]:
        sendgrid_public_key(app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"])  # BadKey says why
    app.add_url_rule("/webhooks/mailgun", "webhooks_mailgun", receive_mailgun, methods=["POST"])
    app.add_url_rule("/webhooks/sendgrid", "webhooks_sendgrid", receive_sendgrid, methods=["POST"])
    from mailer.events import ses  # SES's endpoint builds on this module's answers

    ses.init_app(app)
    app.add_url_rule("/webhooks/postmark", "webhooks_postmark", receive_postmark, methods=["POST"])
