"""A worker's side of the queue: claim due mail under a lease, finish it, release it, reap it.

- ``claim``: take due mail in a batch, ``FOR UPDATE SKIP LOCKED``, and mark it ``sending``
  under a lease in the same statement, so no two workers ever hold the same mail.
- ``finish``: record the decisions of a batch of sends and their attempts in one transaction,
  with the recipients of mail that went (or was suppressed: every recipient on the list), and
  the client's webhooks.
- ``release``: hand claimed but unsent mail back (a graceful stop).
- ``hold``: hand claimed mail back, due again later (no token under its rate cap, no provider
  of its route usable now), without spending an attempt.
- ``reap``: return mail whose lease expired (its worker died) to the queue.
- ``seconds_until_due``: how long an idle worker may wait.

The statements are in ``sql/lease.sql``. No transaction here stays open across a provider
call: the worker claims, commits, sends, and only then opens a new transaction to record what
happened.
"""

from mailer.events import outbox
from mailer.events import provider as provider_events
from mailer.queue.queries import as_json, load
from models import FAILED, SENT, SUPPRESSED

SQL = load("lease.sql")
LEASE_EXPIRED = "lease expired: the worker stopped while sending; the provider may have the mail"
LEASE_EXPIRED_OUTCOME = "lease_expired"  # the attempt-log row of a reaped send


def claim(conn, worker, limit, lease_seconds):
    """Mark up to ``limit`` due mails ``sending`` for ``worker``, and return them (dicts, with
    their ``attachments``; empty headers and metadata are None).

    Concurrent claims never wait for each other nor take the same mail; the lease lets the
    reaper recover the batch if this worker dies.
    """
    result = conn.exec_driver_sql(
        SQL.claim_due, {"worker": worker, "limit": limit, "lease": float(lease_seconds)}
    )
    # All rows at once, each zipped with the column names: fetching them one by one as
    # mappings costs several Python calls per row and column.
    names = tuple(result.keys())
    rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    files = attachments_of(conn, [row["id"] for row in rows if row.pop("has_attachments")])
    for row in rows:
        row["attachments"] = files.get(row["id"], [])
    return rows


def attachments_of(conn, ids):
    """The attachments of the mails ``ids`` with their content, in order, by mail id; an
    inline part with its ``content_id`` (None for an attached file)."""
    if not ids:
        return {}
    found = {}
    for mail_id, filename, content_type, content, content_id in conn.exec_driver_sql(
        SQL.attachments_of, {"ids": list(ids)}
    ):
        found.setdefault(mail_id, []).append(
            {
                "filename": filename,
                "content_type": content_type,
                "content": bytes(content),
                "content_id": content_id,
            }
        )
    return found


def finish(conn, worker, decisions, attempts, webhooks=None):
    """Record the end of a batch of sends: each mail's decision and every attempt.

    Only rows still leased to ``worker`` change, so a worker whose lease was taken over does not
    overwrite the newer owner's state. ``decisions`` are ``delivery.Decision`` objects,
    ``attempts`` attempt-log rows (``delivery.attempt_rows``). Mail that went (or was
    suppressed) gets its recipients, and the client the webhooks it wants (``webhooks``, an
    ``outbox.Subscription``), in the same transaction.
    """
    if not decisions and not attempts:
        return
    owned = conn.exec_driver_sql(
        SQL.finish_owned,
        {
            "ids": [d.id for d in decisions],
            "worker": worker,
            "attempts": as_json(attempts),
            "decisions": as_json([_decision(d) for d in decisions]),
        },
    )
    owned = {mail_id for (mail_id,) in owned}
    _hand_off(conn, [d for d in decisions if d.id in owned], webhooks)


def _decision(d):
    """What ``finish_owned`` records of one mail's ``delivery.Decision``."""
    return {
        "id": d.id,
        "status": d.status,
        "provider": d.provider,
        "message_id": d.message_id,
        "result": d.result,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "retry_in": float(d.retry_in),
        "route": d.route,
    }


def _hand_off(conn, decisions, webhooks):
    """Recipients of mail that went or was suppressed, and the client's webhooks of the batch.

    Each recipient starts ``sent`` (or ``suppressed``); an event that came before the send was
    recorded already moved its recipient on, so the mail is rolled up at once, and a mail the
    roll-up moves raises the webhook of its new status.
    """
    suppressed = [
        {"email_id": d.id, "address": address, "reason": reason}
        for d in decisions
        if d.status in (SENT, SUPPRESSED)
        for address, reason in d.suppressed
    ]
    if suppressed:
        conn.exec_driver_sql(SQL.suppressed_recipients, {"recipients": as_json(suppressed)})
    sent = [d.id for d in decisions if d.status == SENT]
    rolled = conn.exec_driver_sql(SQL.hand_off, {"ids": sent}).all() if sent else []
    items = [
        (row["email_id"], outbox.SUPPRESSED, row["address"], row["reason"]) for row in suppressed
    ]
    items += [
        (
            d.id,
            outbox.SENT if d.status == SENT else outbox.FAILED,
            None,
            d.last_error if d.status == FAILED else None,
        )
        for d in decisions
        if d.status in (SENT, FAILED)
    ]
    items += [
        (mail_id, provider_events.CLIENT_EVENT[status], None, None) for mail_id, status in rolled
    ]
    outbox.write(conn, webhooks, items)


def release(conn, worker, ids):
    """Put claimed mails that were never sent back in the queue, due now."""
    if ids:
        conn.exec_driver_sql(SQL.release_claimed, {"ids": list(ids), "worker": worker})


def hold(conn, worker, ids, seconds):
    """Put claimed mails that must wait back in the queue, due again in ``seconds``."""
    if ids:
        conn.exec_driver_sql(
            SQL.hold_claimed, {"ids": list(ids), "worker": worker, "seconds": float(seconds)}
        )


def reap(conn, max_attempts, worker=None):
    """Return mails whose lease expired to the queue (or fail them past ``max_attempts``).

    Their worker died mid-send, so the provider may have taken them: the attempt is logged as
    such, and resending makes delivery at-least-once. Returns the (id, status) of each.
    """
    reaped = conn.exec_driver_sql(
        SQL.reap_expired,
        {
            "max_attempts": max_attempts,
            "outcome": LEASE_EXPIRED_OUTCOME,
            "error": LEASE_EXPIRED,
            "worker": worker,
        },
    )
    return [(mail_id, status) for mail_id, status in reaped]


def seconds_until_due(conn):
    """Seconds until the earliest waiting mail falls due (0 if one is due), or None if none."""
    seconds_left = conn.exec_driver_sql(SQL.seconds_until_due).scalar()
    return None if seconds_left is None else max(float(seconds_left), 0.0)
