"""Received mail for tests: an ``InboundMail`` as a way in would build it, taken by
``mailer.queue.inbound.receive`` in the test's transaction (or committed, for a test whose rows
other connections read)."""

import itertools

from mailer import database
from mailer.inbound.message import InboundAttachment, InboundMail
from mailer.queue.inbound import receive

_deliveries = itertools.count(1)


def inbound_mail(**fields):
    """A received mail from Ann to support@, with a fresh delivery id and Message-ID, with
    ``fields`` replaced."""
    number = next(_deliveries)
    values = {
        "source": "mailgun",
        "delivery_id": f"delivery-{number}",
        "envelope_from": "ann@example.org",
        "envelope_to": ("support@in.example.com",),
        "from_address": "Ann <ann@example.org>",
        "to": ("Support <support@in.example.com>",),
        "cc": (),
        "subject": f"Re: Your order {number}",
        "text": "Thanks!\n\n> Your order shipped",
        "html": "<p>Thanks!</p>",
        "stripped_text": "Thanks!",
        "headers": (
            ("From", "Ann <ann@example.org>"),
            ("To", "Support <support@in.example.com>"),
            ("Received", "from a"),
            ("Received", "from b"),
        ),
        "message_id": f"<reply-{number}@example.org>",
        "in_reply_to": None,
        "references": (),
        **fields,
    }
    return InboundMail(**values)


def attachment(name, content, content_type="application/octet-stream", content_id=None):
    """One attached file."""
    return InboundAttachment(name, content_type, content, content_id)


def take(app, mail):
    """``receive`` the mail with the app's settings and webhooks, in a transaction of the
    app's (the test's, when it rolls back); the ``Received``."""
    with app.app_context():
        with database.transaction() as conn:
            return receive(conn, mail, app.config, app.extensions["webhooks"])
