"""What the admin's dashboard reads (``sql/dashboard.sql``); ``mailer.admin.dashboard`` makes
its panels of it."""

from mailer.queue.queries import load

SQL = load("dashboard.sql")


def minute_series(conn, since, until):
    """Sent, failed and bounced per minute from the minute ``since`` to the minute ``until``,
    oldest first, as dicts."""
    rows = conn.exec_driver_sql(SQL.minute_series, {"since": since, "until": until})
    return [dict(row) for row in rows.mappings()]


def backoff(conn, limit):
    """The first ``limit`` queued mails in backoff, soonest due first, as dicts."""
    return [dict(row) for row in conn.exec_driver_sql(SQL.backoff, {"limit": limit}).mappings()]


def backoff_count(conn, cap):
    """How many queued mails are in backoff, counted up to ``cap``."""
    return conn.exec_driver_sql(SQL.backoff_count, {"cap": cap}).scalar()


def scheduled(conn, limit):
    """The latest ``limit`` scheduled mails, newest first, as dicts."""
    rows = conn.exec_driver_sql(SQL.scheduled, {"limit": limit})
    return [dict(row) for row in rows.mappings()]


def gone_workers(conn, within_seconds, limit):
    """The workers whose heartbeat row is ``within_seconds`` old or more holding mail in
    ``sending``, by name,
    as dicts (``name``, ``last_seen``, ``silent_for``, ``held``, ``lease_until``, ``mail``: the
    first ``limit`` mails they hold, each ``{"id", "subject"}``)."""
    rows = conn.exec_driver_sql(SQL.gone_workers, {"within": float(within_seconds), "limit": limit})
    return [dict(row) for row in rows.mappings()]


def held_by(conn, name):
    """The ids of the mails in ``sending`` worker ``name`` holds."""
    return [row[0] for row in conn.exec_driver_sql(SQL.held_by, {"name": name})]


def expired_leases(conn, limit):
    """The first ``limit`` mails whose lease expired, longest expired first, as dicts."""
    rows = conn.exec_driver_sql(SQL.expired_leases, {"limit": limit})
    return [dict(row) for row in rows.mappings()]


def provider_stats(conn, window, failures):
    """Each provider's calls, failures, latency and latest ``failures`` failures over the last
    ``window`` attempt rows, by name."""
    rows = conn.exec_driver_sql(SQL.provider_stats, {"window": window, "failures": failures})
    return {row["provider"]: dict(row) for row in rows.mappings()}


def failure_groups(conn, window, limit):
    """The failures of the last ``window`` attempt rows grouped by provider, outcome, HTTP status
    and reason, with ``count`` and ``latest``, the latest group first, as dicts."""
    rows = conn.exec_driver_sql(SQL.failure_groups, {"window": window, "limit": limit})
    return [dict(row) for row in rows.mappings()]
