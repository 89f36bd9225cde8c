-- Failed authentications per client, shared by every API process (auth_failure): a row per
-- client address that failed lately, its failures in the current window, and until when it is
-- refused.

-- name: blocked_for
-- Seconds (rounded up) until %(client)s may authenticate again; no row while it may now.
SELECT ceil(extract(epoch FROM blocked_until - now()))::integer
  FROM auth_failure
 WHERE client = %(client)s AND blocked_until > now();

-- name: count
-- One more failure of %(client)s: the count goes on within the window, or starts again at 1 in
-- a new one of %(window)s seconds. The row stays locked until the caller's transaction ends,
-- so concurrent failures of one client are counted one after the other. Up to %(purge)s rows
-- whose window and block are both over go in the same statement.
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
RETURNING failures;

-- name: block
-- The limit is reached: refuse %(client)s for %(block)s seconds, and count afresh after that.
UPDATE auth_failure
   SET failures = 0,
       blocked_until = now() + make_interval(secs => %(block)s),
       expires_at = GREATEST(window_ends, now() + make_interval(secs => %(block)s))
 WHERE client = %(client)s;
