"""The rows of the client webhooks' outbox (``sql/webhooks.sql``): written with the status
change they report (``insert``, through ``mailer.events.outbox.write``), then claimed, posted
and recorded by the workers' senders (``mailer.events.sender``)."""

from mailer.queue.queries import as_json, load

SQL = load("webhooks.sql")


def insert(conn, items):
    """A webhook for each ``(mail id, event type, recipient, reason)``; one statement."""
    if items:
        conn.exec_driver_sql(
            SQL.insert,
            {
                "items": as_json(
                    [
                        {"id": mail_id, "type": kind, "recipient": recipient, "reason": reason}
                        for mail_id, kind, recipient, reason in items
                    ]
                )
            },
        )


def claim(conn, limit, lease_seconds):
    """Take up to ``limit`` due webhooks under a lease of ``lease_seconds``; oldest first."""
    claimed = conn.exec_driver_sql(SQL.claim, {"limit": limit, "lease": float(lease_seconds)})
    return sorted((dict(row) for row in claimed.mappings()), key=lambda row: row["id"])


def record(conn, results, max_age):
    """Record one batch of posts: each an attempt row, and its webhook delivered or due again.

    ``results`` are dicts ``{id, ok, status_code, error, duration_ms, retry_in}``; a failed
    webhook older than ``max_age`` seconds is given up (``failed``).
    """
    if results:
        conn.exec_driver_sql(SQL.record, {"results": as_json(results), "max_age": float(max_age)})


def release(conn, ids):
    """Hand back claimed webhooks that were not posted (their receiver is paused): due now."""
    if ids:
        conn.exec_driver_sql(SQL.release, {"ids": list(ids)})
