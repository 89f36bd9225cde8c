"""The outbox of client webhooks: written with the status change it reports, delivered later.

The queue calls ``write`` in the very transaction that changes a mail's status, so a change
that commits always has its webhook and one that rolls back never does (the transactional
outbox). Each webhook is written once per endpoint that takes it, so that each endpoint's
delivery is tracked and retried on its own: the settings' ``WEBHOOK_URL`` (the ``default``
tenant's endpoint, taking ``WEBHOOK_EVENTS``: ``Subscription``) and each tenant's own
endpoints (``/webhook-endpoints``), a tenant's mail going to its own endpoints only. The worker's
``WebhookSender`` (``sender.py``) then takes due rows (``mailer.queue.webhooks.claim``,
``FOR UPDATE SKIP LOCKED`` under a lease, so several workers never post the same row at once;
only the oldest pending row of each mail and endpoint, so a mail's webhooks go in order),
posts them several at once, and records every attempt (``webhooks.record``): delivered, or
due again after a backoff, or ``failed`` once older than ``WEBHOOK_MAX_AGE``. Delivery is at
least once: a worker that dies after the client answered and before ``record`` committed posts
that row again, with the same ``webhook-id``, by which clients deduplicate.

A webhook's body, built from the mail row in SQL (``mailer/queue/sql/webhooks.sql``), is
``{"type": "mail.delivered", "timestamp": ..., "data": {"mail_id", "status", "recipient",
"reason", "metadata", "tags"}}``; ``status`` is the mail's status when the event was recorded.
``mail.received`` (``write_received``) is about a received mail instead (``inbound``): its
``data`` is ``{"inbound_id", "from", "to", "subject", "in_reply_to_mail_id", "auto_reply",
"received_at", "url"}``, and it goes to the endpoints of the received mail's tenant.
"""

from dataclasses import dataclass

from mailer.events.signatures import webhook_key
from mailer.queue import webhooks

SENT, FAILED, DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, CANCELLED = (
    "mail.sent",
    "mail.failed",
    "mail.delivered",
    "mail.bounced",
    "mail.complained",
    "mail.suppressed",
    "mail.cancelled",
)
RECEIVED = "mail.received"  # a mail came in (a reply, or to an inbound address)
EVENTS = (SENT, FAILED, DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, CANCELLED, RECEIVED)
PENDING, DONE, GAVE_UP = "pending", "delivered", "failed"  # the states of an outbox row


@dataclass(frozen=True)
class Subscription:
    """Which client webhooks to write. ``events``: what the settings' endpoint (``WEBHOOK_URL``,
    the ``default`` tenant's) takes, ``WEBHOOK_EVENTS`` or every one of ``EVENTS``; None while
    ``WEBHOOK_URL`` is not set. Each tenant's own endpoints (``webhook_endpoint``) say what
    they take themselves; the outbox's statement reads them."""

    events: frozenset | None

    def wants(self, event_type):
        """Whether the settings' endpoint takes webhooks of ``event_type``."""
        return self.events is not None and event_type in self.events


def subscription(config):
    """What the client webhooks go to: the settings' endpoint, if WEBHOOK_URL is set, and the
    tenants' endpoints.

    Raises ValueError for a URL without a usable WEBHOOK_SECRET or unknown WEBHOOK_EVENTS:
    unsigned webhooks would let anyone who finds the URL forge them.
    """
    if not config["WEBHOOK_URL"]:
        return Subscription(None)
    if not config["WEBHOOK_SECRET"]:
        raise ValueError(
            "WEBHOOK_URL is set but WEBHOOK_SECRET is not: client webhooks must "
            "be signed (see the README for how to make a secret)"
        )
    webhook_key(config["WEBHOOK_SECRET"])  # raises BadKey, a ValueError, saying why
    unknown = sorted(set(config["WEBHOOK_EVENTS"]) - set(EVENTS))
    if unknown:
        raise ValueError(
            f"WEBHOOK_EVENTS names unknown events: {', '.join(unknown)}; known: {', '.join(EVENTS)}"
        )
    return Subscription(frozenset(config["WEBHOOK_EVENTS"] or EVENTS))


def write(conn, wanted, items):
    """Write a webhook for each ``(mail id, event type, recipient, reason)`` and each endpoint
    of its mail's tenant that takes it (``wanted``, a ``Subscription``; None: none at all).

    Called by the queue only, in the transaction of the status change. One statement, which
    fans each item out to the endpoints.
    """
    if wanted is None:
        return
    webhooks.insert(conn, items, wanted.events)


def write_received(conn, wanted, inbound_id):
    """Write ``mail.received`` for the received mail ``inbound_id`` (just stored, in this
    transaction) to each endpoint of its tenant that takes it (``wanted`` as ``write``'s)."""
    if wanted is None:
        return
    webhooks.insert_received(conn, inbound_id, wanted.events)
