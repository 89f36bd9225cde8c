"""Failed authentications per client, shared by every API process (``auth_failure``).

A row per client address that failed lately: its failures in the current window (which starts
at its first failure and lasts ``AUTH_FAILURE_WINDOW``), and until when it is refused once
they reached ``AUTH_FAILURE_LIMIT``. Only a failure reads and writes here (``mailer.api.throttle``
decides when): a request with valid credentials never touches the table.

Each statement runs on a DB-API cursor in the caller's transaction. ``count`` also deletes a few
rows that mean nothing any more (window and block both over), through the index on
``expires_at``, so the table holds about one window of clients without a purge job.
"""

PURGE_PER_WRITE = 10  # spent rows each failure deletes: more than one keeps up

# Seconds (rounded up) until the client may authenticate again; no row while it may now.
BLOCKED_FOR_SQL = """
SELECT ceil(extract(epoch FROM blocked_until - now()))::integer
  FROM auth_failure
 WHERE client = %(client)s AND blocked_until > now()
"""

# One more failure: the count goes on within the window, or starts again at 1 in a new one.
# The row stays locked until the caller's transaction ends, so concurrent failures of one
# client are counted one after the other.
COUNT_SQL = """
WITH spent AS (
    DELETE FROM auth_failure WHERE client IN (
        SELECT client FROM auth_failure
         WHERE expires_at < now() AND client <> %(client)s
         ORDER BY expires_at LIMIT %(purge)s
           FOR UPDATE SKIP LOCKED)
)
INSERT INTO auth_failure AS f (client, failures, window_ends, blocked_until, expires_at)
VALUES (%(client)s, 1, now() + make_interval(secs => %(window)s), NULL,
        now() + make_interval(secs => %(window)s))
ON CONFLICT (client) DO UPDATE SET
    failures = CASE WHEN f.window_ends > now() THEN f.failures + 1 ELSE 1 END,
    window_ends = CASE WHEN f.window_ends > now() THEN f.window_ends
                       ELSE EXCLUDED.window_ends END,
    expires_at = GREATEST(EXCLUDED.window_ends, f.blocked_until)  -- late rather than early
RETURNING failures
"""

# The limit is reached: refuse the client for a while, and count afresh after that.
BLOCK_SQL = """
UPDATE auth_failure
   SET failures = 0,
       blocked_until = now() + make_interval(secs => %(block)s),
       expires_at = GREATEST(window_ends, now() + make_interval(secs => %(block)s))
 WHERE client = %(client)s
"""


def blocked_for(cursor, client):
    """Seconds until ``client`` may try again (at least 1), or 0 if it is not refused."""
    cursor.execute(BLOCKED_FOR_SQL, {"client": client})
    row = cursor.fetchone()
    return max(1, row[0]) if row else 0


def count(cursor, client, limit, window, block):
    """Count one failure of ``client``; refuse it for ``block`` seconds once ``limit`` failed
    within ``window`` seconds. Whether this failure was the one that blocked it."""
    cursor.execute(COUNT_SQL, {"client": client, "window": window, "purge": PURGE_PER_WRITE})
    if cursor.fetchone()[0] < limit:
        return False
    cursor.execute(BLOCK_SQL, {"client": client, "block": block})
    return True
