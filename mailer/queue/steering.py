"""The rows of the guard that steers away from a blocked path (``sql/steering.sql``): the
per-minute outcomes of each provider and recipient domain, and the pairs steered away from
now. When a pair is steered, and what the worker does with it, is ``mailer.worker.steering``'s.
"""

from mailer.queue.queries import as_json, load

SQL = load("steering.sql")


def try_lock(conn):
    """Whether this transaction may change the steering rows (no other worker is changing
    them); held until it ends."""
    return bool(conn.exec_driver_sql(SQL.try_lock).scalar())


def window_counts(conn, window):
    """``{(provider, domain): (failed, events)}`` over the last ``window`` seconds."""
    rows = conn.exec_driver_sql(SQL.window_counts, {"window": float(window)})
    return {(provider, domain): (failed, events) for provider, domain, failed, events in rows}


def steered(conn):
    """The pairs steered away from now, as dicts (provider, domain, since, failure_rate,
    failed, events), by provider and domain."""
    return [dict(row) for row in conn.exec_driver_sql(SQL.steered).mappings()]


def apply(conn, steer, release):
    """Steer away from ``steer`` (``{(provider, domain): (failed, events)}``) and let
    ``release`` (pairs) back; the pairs this call changed, ``[(provider, domain, steered)]``."""
    if not steer and not release:
        return []
    rows = conn.exec_driver_sql(
        SQL.apply,
        {
            "steer": as_json(
                [
                    {"provider": provider, "domain": domain, "failed": failed, "events": events}
                    for (provider, domain), (failed, events) in sorted(steer.items())
                ]
            ),
            "release": as_json(
                [{"provider": provider, "domain": domain} for provider, domain in release]
            ),
        },
    )
    return [tuple(row) for row in rows]
