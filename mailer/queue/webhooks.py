"""The rows of the client webhooks' outbox (``sql/webhooks.sql``): written with the status
change they report (``insert``, through ``mailer.events.outbox.write``), one per webhook and
endpoint that takes it, then claimed, posted and recorded by the workers' senders
(``mailer.events.sender``)."""

from mailer.queue.queries import as_json, load

SQL = load("webhooks.sql")


def insert(conn, items, settings_events):
    """A webhook for each ``(mail id, event type, recipient, reason)`` and each endpoint of
    its mail's tenant that takes it: the settings' endpoint for the default tenant's mail when
    ``settings_events`` (the event types it takes) is not None, and the tenant's own
    endpoints. One statement."""
    if items:
        conn.exec_driver_sql(
            SQL.insert,
            {
                "settings_events": None if settings_events is None else sorted(settings_events),
                "items": as_json(
                    [
                        {"id": mail_id, "type": kind, "recipient": recipient, "reason": reason}
                        for mail_id, kind, recipient, reason in items
                    ]
                ),
            },
        )


def insert_received(conn, inbound_id, settings_events):
    """``mail.received`` for the received mail ``inbound_id``, for each endpoint of its tenant
    that takes it (``settings_events`` as ``insert``'s). One statement."""
    conn.exec_driver_sql(
        SQL.insert_received,
        {
            "id": inbound_id,
            "settings_events": None if settings_events is None else sorted(settings_events),
        },
    )


def by_index(conn):
    """Have the rest of ``conn``'s transaction read rows by index only (``claim``, ``record``
    and ``release`` touch a few rows of a table of many, and the table's statistics may say
    otherwise); call it first in each transaction of them."""
    conn.exec_driver_sql(SQL.by_index)


def claim(conn, limit, lease_seconds, settings=True, endpoints=True):
    """Take up to ``limit`` due webhooks under a lease of ``lease_seconds``, oldest first: the
    settings' endpoint's if ``settings``, the tenants' endpoints' if ``endpoints`` (each row
    with its endpoint's ``url`` and ``secret``; None for the settings' endpoint). Only the
    oldest pending webhook of a mail and endpoint is ever taken, and not while another worker
    holds it: one mail's webhooks to one endpoint go one at a time, in order."""
    params = {
        "limit": limit,
        "lease": float(lease_seconds),
        "settings": settings,
        "endpoints": endpoints,
    }
    claimed = conn.exec_driver_sql(SQL.claim, params)
    return sorted((dict(row) for row in claimed.mappings()), key=lambda row: row["id"])


def record(conn, results, max_age):
    """Record one batch of posts: each an attempt row, and its webhook delivered or due again.

    ``results`` are dicts ``{id, ok, status_code, error, duration_ms, retry_in}``; a failed
    webhook older than ``max_age`` seconds is given up (``failed``), and the webhooks after one
    due again (of its mail and endpoint) wait as long.
    """
    if results:
        conn.exec_driver_sql(SQL.record, {"results": as_json(results), "max_age": float(max_age)})


def release(conn, delays):
    """Hand back claimed webhooks that were not posted: ``delays`` maps each id to the seconds
    until it is due again (0: now)."""
    if delays:
        items = [{"id": webhook_id, "delay": float(delay)} for webhook_id, delay in delays.items()]
        conn.exec_driver_sql(SQL.release, {"items": as_json(items)})
