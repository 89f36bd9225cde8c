"""Failed authentications per client, shared by every API process (``auth_failure``).

A row per client address that failed lately: its failures in the current window (which starts
at its first failure and lasts ``AUTH_FAILURE_WINDOW``), and until when it is refused once
they reached ``AUTH_FAILURE_LIMIT``. Only a failure reads and writes here (``mailer.api.throttle``
decides when): a request with valid credentials never touches the table.

Each statement (``sql/auth_failures.sql``) runs on a Connection in the caller's transaction.
``count`` also deletes a few rows that mean nothing any more (window and block both over),
through the index on ``expires_at``, so the table holds about one window of clients without a
purge job.
"""

from mailer.queue.queries import load

SQL = load("auth_failures.sql")
PURGE_PER_WRITE = 10  # spent rows each failure deletes: more than one keeps up


def blocked_for(conn, client):
    """Seconds until ``client`` may try again (at least 1), or 0 if it is not refused."""
    seconds = conn.exec_driver_sql(SQL.blocked_for, {"client": client}).scalar()
    return max(1, seconds) if seconds is not None else 0


def count(conn, client, limit, window, block):
    """Count one failure of ``client``; refuse it for ``block`` seconds once ``limit`` failed
    within ``window`` seconds. Whether this failure was the one that blocked it."""
    params = {"client": client, "window": window, "purge": PURGE_PER_WRITE}
    if conn.exec_driver_sql(SQL.count, params).scalar_one() < limit:
        return False
    conn.exec_driver_sql(SQL.block, {"client": client, "block": block})
    return True
