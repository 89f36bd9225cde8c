"""What the admin's dashboard reads (``sql/dashboard.sql``); ``mailer.admin.dashboard`` makes
its panels of it."""

from mailer.queue.queries import load

SQL = load("dashboard.sql")


def minute_series(conn, minutes):
    """Sent, failed and bounced per minute over the last ``minutes``, oldest first, as dicts."""
    rows = conn.exec_driver_sql(SQL.minute_series, {"minutes": minutes})
    return [dict(row) for row in rows.mappings()]


def waiting(conn, limit):
    """The first ``limit`` mails waiting for a later time, soonest due first, as dicts."""
    return [dict(row) for row in conn.exec_driver_sql(SQL.waiting, {"limit": limit}).mappings()]


def waiting_count(conn, cap):
    """How many mails wait for a later time, counted up to ``cap``."""
    return conn.exec_driver_sql(SQL.waiting_count, {"cap": cap}).scalar()


def expired_leases(conn, limit):
    """The first ``limit`` mails whose lease expired, longest expired first, as dicts."""
    rows = conn.exec_driver_sql(SQL.expired_leases, {"limit": limit})
    return [dict(row) for row in rows.mappings()]


def provider_stats(conn, window, failures):
    """Each provider's calls, failures, latency and latest ``failures`` failures over the last
    ``window`` attempt rows, by name."""
    rows = conn.exec_driver_sql(SQL.provider_stats, {"window": window, "failures": failures})
    return {row["provider"]: dict(row) for row in rows.mappings()}
