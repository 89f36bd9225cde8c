"""Inbound mail in over HTTP: ``POST /inbound/mailgun`` (and ``/inbound/mailgun/mime``, for a
route that asks for the raw message), ``POST /inbound/sendgrid`` and ``POST /inbound/postmark``.

Each is authenticated as its provider's delivery webhooks are (``receive``), needs no API key,
and works in every mode:

- **Mailgun** signs the form it posts (``timestamp``, ``token``, ``signature``) with the
  webhook signing key: ``MAILGUN_WEBHOOK_SIGNING_KEY``, the delivery webhooks' own. A stale
  timestamp, or a token that signed another post, is refused as a replay (401); the token is
  kept with the digest of its form for as long as its timestamp is taken.
- **SendGrid**'s Inbound Parse URL carries basic auth: ``SENDGRID_INBOUND_USERNAME`` and
  ``SENDGRID_INBOUND_PASSWORD`` (off, 404, until both are set).
- **Postmark**'s inbound webhook URL carries basic auth: ``POSTMARK_WEBHOOK_USERNAME`` and
  ``POSTMARK_WEBHOOK_PASSWORD``, its delivery webhook's own.

A wrong basic auth is a 401 counted by the failed-authentication brake (429 once a client has
guessed too often). A post that is not what its provider sends is a 400 naming the field at
fault. Nothing refused is stored. A post taken is read into an ``InboundMail``
(``mailer.inbound``) and handed to the store (``mailer.queue.inbound.receive``) in one
transaction with the Mailgun token; 200 says what came of it (``InboundReceived``): stored, a
replay of a delivery stored before, or a bounce report.

Bodies are read whole, within ``MAX_CONTENT_LENGTH`` (413 past it), and as bytes: SendGrid posts
each text field in the sender's charset, and Mailgun's ``body-mime`` is the message as sent.
"""

import logging

from flask import current_app, jsonify, request

from mailer.api.errors import ApiError
from mailer.database import transaction
from mailer.events.receive import (
    POSTMARK_CREDENTIALS,
    check_basic_auth,
    not_configured,
    parsed_body,
    refuse_stale,
    refused,
    token_keeper,
)
from mailer.events.signatures import mailgun_valid
from mailer.inbound import mailgun, postmark, sendgrid
from mailer.inbound.fields import Malformed, parse_form
from mailer.queue import inbound as inbound_mail
from mailer.shapes.service import InboundReceived

log = logging.getLogger("mail_service.inbound")

SENDGRID_CREDENTIALS = ("SENDGRID_INBOUND_USERNAME", "SENDGRID_INBOUND_PASSWORD")


def receive_mailgun():
    """``POST /inbound/mailgun``: one mail a Mailgun route forwarded, signed."""
    key = current_app.config["MAILGUN_WEBHOOK_SIGNING_KEY"]
    if not key:
        raise not_configured("MAILGUN_WEBHOOK_SIGNING_KEY")
    form = read(parse_form, request.content_type, request.get_data())
    timestamp, token, signature = (form.text(name) for name in mailgun.SIGNATURE_FIELDS)
    if not mailgun_valid(key, timestamp, token, signature):
        raise refused("signature", "Missing or wrong signature (timestamp, token, signature)")
    refuse_stale(timestamp, "timestamp")
    keep_token = token_keeper(token, timestamp, {"form": form.digest()})
    try:
        mail = mailgun.inbound(form)
    except Malformed as err:
        with transaction() as conn:  # its token too: it may not sign another post
            keep_token(conn)
        raise malformed(err) from None
    return store(mail, keep_token)


def receive_sendgrid():
    """``POST /inbound/sendgrid``: one mail SendGrid's Inbound Parse posted."""
    check_basic_auth(SENDGRID_CREDENTIALS, "sendgrid")
    form = read(parse_form, request.content_type, request.get_data())
    return store(read(sendgrid.inbound, form))


def receive_postmark():
    """``POST /inbound/postmark``: one mail Postmark's inbound webhook posted."""
    check_basic_auth(POSTMARK_CREDENTIALS, "postmark")
    body = parsed_body(dict, expected="The body must be a JSON object, Postmark's inbound mail")
    return store(read(postmark.inbound, body))


def read(reader, *posted):
    """``reader(*posted)``; 400 naming the field if the post is not what its provider sends."""
    try:
        return reader(*posted)
    except Malformed as err:
        raise malformed(err) from None


def store(mail, before=None):
    """Hand ``mail`` to the store in one transaction (after ``before``, a function of the
    connection that may refuse it); 200 with what came of it."""
    with transaction() as conn:
        if before is not None:
            before(conn)
        result = inbound_mail.receive(
            conn, mail, current_app.config, current_app.extensions["webhooks"]
        )
    log.info("inbound mail by %s: %s %s", mail.source, result.outcome, result.inbound_id)
    return jsonify(InboundReceived.dump({"id": result.inbound_id, "kind": result.outcome}))


def malformed(err):
    """The 400 of a post that is not what its provider sends, naming the field at fault."""
    return ApiError(
        400,
        "Malformed inbound mail; nothing was stored",
        [{"field": err.field, "message": str(err)}],
    )


def init_app(app):
    """Register the endpoints."""
    # Mailgun posts the raw message to a route's URL that ends in "mime".
    app.add_url_rule("/inbound/mailgun", "inbound_mailgun", receive_mailgun, methods=["POST"])
    app.add_url_rule(
        "/inbound/mailgun/mime", "inbound_mailgun_mime", receive_mailgun, methods=["POST"]
    )
    app.add_url_rule("/inbound/sendgrid", "inbound_sendgrid", receive_sendgrid, methods=["POST"])
    app.add_url_rule("/inbound/postmark", "inbound_postmark", receive_postmark, methods=["POST"])
