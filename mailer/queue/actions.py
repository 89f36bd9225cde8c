"""Actions on mail by a client (the API) or an operator (the admin), each logged with who.

- ``retry``: put failed or cancelled mail back in the queue, with a fresh budget;
- ``cancel``: cancel mail no worker has taken yet (its ``mail.cancelled`` webhook with it);
- ``release_stuck``: return mail stuck in ``sending`` (an expired lease, a dead worker);
- ``send_now``: make mail that waits for its time due now;
- ``resend``: send mail a provider already took again, as a new mail.

Each is one statement that re-checks the mail's status and logs an attempt-log row per mail
it changed, with the ``actor`` (``sql/actions.sql``). The ids given are UUIDs.
"""

import uuid

from mailer.events import outbox
from mailer.queue import notify
from mailer.queue.queries import load
from models import CANCELLED, FAILED

SQL = load("actions.sql")
RETRYABLE = (FAILED, CANCELLED)  # what an operator or client may queue again
# The ``outcome`` of the attempt-log row each action writes.
RETRIED_OUTCOME, CANCELLED_OUTCOME = "retried", "cancelled"
RELEASED_OUTCOME, SENT_NOW_OUTCOME = "released", "send_now"
RESENT_OUTCOME, RESENT_FROM_OUTCOME = "resent", "resent_from"
RELEASED = "released by an operator: its worker stopped; the provider may have the mail"


def retry(conn, ids, actor, tenant=None):
    """Queue failed or cancelled mails (of ``tenant``; None: any) again, due now, with a fresh
    budget; the ids queued."""
    retried = conn.exec_driver_sql(
        SQL.retry,
        {"ids": list(ids), "actor": actor, "outcome": RETRIED_OUTCOME, "tenant": tenant},
    )
    return [mail_id for (mail_id,) in retried]


def cancel(conn, ids, actor, webhooks=None, tenant=None):
    """Cancel mails (of ``tenant``; None: any) that no worker has taken yet (queued or
    scheduled); the ids cancelled.

    The client's ``mail.cancelled`` webhooks (``webhooks``, an ``outbox.Subscription``) are
    written with it.
    """
    cancelled = [
        mail_id
        for (mail_id,) in conn.exec_driver_sql(
            SQL.cancel,
            {"ids": list(ids), "actor": actor, "outcome": CANCELLED_OUTCOME, "tenant": tenant},
        )
    ]
    outbox.write(conn, webhooks, [(mail_id, outbox.CANCELLED, None, None) for mail_id in cancelled])
    return cancelled


def release_stuck(conn, ids, actor, alive_workers=None, max_attempts=None):
    """Hand mail stuck in ``sending`` back to the queue, due now: its lease expired, or (with
    ``alive_workers``, the names of the workers alive now) its worker is gone.

    As ``lease.reap`` does, the interrupted send counts as an attempt (the provider may have
    taken the mail, so a resend is at-least-once), and past ``max_attempts`` fails the mail.
    Mail of a live worker with a lease still running is left alone. Returns the ids released.
    """
    released = conn.exec_driver_sql(
        SQL.release_stuck,
        {
            "ids": list(ids),
            "alive": None if alive_workers is None else list(alive_workers),
            "max_attempts": max_attempts,
            "error": RELEASED,
            "actor": actor,
            "outcome": RELEASED_OUTCOME,
        },
    )
    return [mail_id for (mail_id,) in released]


def send_now(conn, ids, actor):
    """Make mail waiting for its time (backoff after a failure, or scheduled) due now, and wake
    an idle worker; the ids changed."""
    hurried = [
        mail_id
        for (mail_id,) in conn.exec_driver_sql(
            SQL.send_now, {"ids": list(ids), "actor": actor, "outcome": SENT_NOW_OUTCOME}
        )
    ]
    if hurried:
        notify.wake_workers(conn)
    return hurried


def resend(conn, ids, actor):
    """Send mail a provider already took again, as a NEW mail: same sender, recipients, body,
    headers, tags, metadata and attachments; queued now with a fresh budget.

    The original keeps its history. Each log names the other mail (``response``
    ``{"resent_as": new}`` on the original, ``{"resent_from": old}`` on the copy). Returns
    ``{original id: new id}`` of the mails resent (only sent, delivered, bounced or
    complained mail is).
    """
    pairs = {old: uuid.uuid4() for old in dict.fromkeys(ids)}
    copied = conn.exec_driver_sql(
        SQL.resend,
        {
            "old": list(pairs),
            "new": list(pairs.values()),
            "actor": actor,
            "resent": RESENT_OUTCOME,
            "resent_from": RESENT_FROM_OUTCOME,
        },
    )
    made = {new for (new,) in copied}
    return {old: new for old, new in pairs.items() if new in made}
