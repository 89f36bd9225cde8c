"""The outbox of client webhooks: written with the status change it reports, delivered later.

``mailqueue`` calls ``write`` in the very transaction that changes a mail's status, so a change
that commits always has its webhook and one that rolls back never does (the transactional
outbox). The worker's ``WebhookSender`` (``webhook_sender.py``) then takes due rows (``claim``,
``FOR UPDATE SKIP LOCKED`` under a lease, so several workers never post the same row at once),
posts them, and records every attempt (``record``): delivered, or due again after a backoff,
or ``failed`` once older than ``WEBHOOK_MAX_AGE``. Delivery is at least once: a worker that
dies after the client answered and before ``record`` committed posts that row again, with the
same ``webhook-id``, by which clients deduplicate.

A webhook's body, built here from the mail row in SQL, is
``{"type": "mail.delivered", "timestamp": ..., "data": {"mail_id", "status", "recipient",
"reason", "metadata", "tags"}}``; ``status`` is the mail's status when the event was recorded.
"""

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)

from mailer.events.signatures import webhook_key
from models import WebhookAttempt, WebhookMessage

table = WebhookMessage.__table__
attempt_table = WebhookAttempt.__table__
SENT, FAILED, DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, CANCELLED = (
    "mail.sent",
    "mail.failed",
    "mail.delivered",
    "mail.bounced",
    "mail.complained",
    "mail.suppressed",
    "mail.cancelled",
)
EVENTS = (SENT, FAILED, DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, CANCELLED)
PENDING, DONE, GAVE_UP = "pending", "delivered", "failed"  # the states of an outbox row
SECOND = literal_column("interval '1 second'")

WRITE_SQL = text("""
INSERT INTO webhook_outbox (message_id, event_type, email_id, payload)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), item.type, mail.id,
       jsonb_build_object(
           'type', item.type,
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object(
               'mail_id', mail.id, 'status', mail.status, 'recipient', item.recipient,
               'reason', item.reason, 'metadata', mail.metadata, 'tags', to_jsonb(mail.tags)))
  FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:recipients AS text[]),
              CAST(:reasons AS text[])) AS item(id, type, recipient, reason)
  JOIN email AS mail ON mail.id = item.id
""")


@dataclass(frozen=True)
class Subscription:
    """Which client webhooks to write: ``WEBHOOK_EVENTS``, or every one of ``EVENTS``."""

    events: frozenset

    def wants(self, event_type):
        """Whether the client asked for webhooks of ``event_type``."""
        return event_type in self.events


def subscription(config):
    """The client's subscription, or None while WEBHOOK_URL is not set (no webhooks at all).

    Raises ValueError for a URL without a usable WEBHOOK_SECRET or unknown WEBHOOK_EVENTS:
    unsigned webhooks would let anyone who finds the URL forge them.
    """
    if not config["WEBHOOK_URL"]:
        return None
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
    """Write a webhook for each ``(mail id, event type, recipient, reason)`` the client wants.

    Called by ``mailqueue`` only, in the transaction of the status change. One statement.
    """
    if wanted is None:
        return
    items = [item for item in items if wanted.wants(item[1])]
    if not items:
        return
    ids, types, recipients, reasons = (list(column) for column in zip(*items, strict=True))
    conn.execute(
        WRITE_SQL,
        {
            "ids": [str(mail_id) for mail_id in ids],
            "types": types,
            "recipients": recipients,
            "reasons": reasons,
        },
    )


def claim(conn, limit, lease_seconds):
    """Take up to ``limit`` due webhooks under a lease of ``lease_seconds``; oldest first."""
    due = (
        select(table.c.id)
        .where(
            table.c.status == PENDING,
            table.c.next_attempt_at <= func.now(),
            (table.c.locked_until.is_(None)) | (table.c.locked_until < func.now()),
        )
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(locked_until=func.now() + SECOND * lease_seconds)
        .returning(table.c.id, table.c.message_id, table.c.payload, table.c.attempts)
    )
    return sorted(
        (dict(row) for row in conn.execute(claimed).mappings()), key=lambda row: row["id"]
    )


def record(conn, results, max_age):
    """Record one batch of posts: each an attempt row, and its webhook delivered or due again.

    ``results`` are dicts ``{id, ok, status_code, error, duration_ms, retry_in}``; a failed
    webhook older than ``max_age`` seconds is given up (``failed``).
    """
    if not results:
        return
    conn.execute(
        insert(attempt_table),
        [
            {
                "webhook_id": item["id"],
                "status_code": item["status_code"],
                "error": item["error"],
                "duration_ms": item["duration_ms"],
            }
            for item in results
        ],
    )
    ok = bindparam("b_ok", type_=Boolean)
    too_old = table.c.created_at < func.now() - SECOND * max_age
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            attempts=table.c.attempts + 1,
            locked_until=None,
            status=case((ok, DONE), (too_old, GAVE_UP), else_=PENDING),
            delivered_at=case((ok, func.now()), else_=None),
            last_error=bindparam("b_error"),
            next_attempt_at=func.now() + SECOND * bindparam("b_retry_in"),
        )
    )
    conn.execute(
        statement,
        [
            {
                "b_id": item["id"],
                "b_ok": item["ok"],
                "b_error": item["error"],
                "b_retry_in": item["retry_in"] or 0.0,
            }
            for item in results
        ],
    )


def release(conn, ids):
    """Hand back claimed webhooks that were not posted (their receiver is paused): due now."""
    if ids:
        conn.execute(update(table).where(table.c.id.in_(ids)).values(locked_until=None))
