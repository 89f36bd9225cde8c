-- What the admin's dashboard reads, cheaply enough to poll every few seconds at any size:
-- nothing here counts over the whole email table. Every time is the database's.

-- name: minute_series
-- Mails sent, failed and bounced per minute over the last %(minutes)s minutes, oldest first,
-- one indexed range scan each (ix_email_sent_at, ix_email_status_updated). "sent" is when a
-- provider took the mail (it may have been delivered or bounced since); "failed" and "bounced"
-- are mails whose status is that now and changed in the minute. Live mail only: test mail
-- (email.test) never reached a provider.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - (%(minutes)s - 1) * interval '1 minute',
                           date_trunc('minute', now()), interval '1 minute') AS minute
), sent AS (
    SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n
      FROM email
     WHERE sent_at >= date_trunc('minute', now()) - (%(minutes)s - 1) * interval '1 minute'
       AND NOT test
     GROUP BY 1
), changed AS (
    SELECT status, date_trunc('minute', updated_at) AS minute, count(*) AS n
      FROM email
     WHERE status IN ('failed', 'bounced')
       AND updated_at >= date_trunc('minute', now()) - (%(minutes)s - 1) * interval '1 minute'
       AND NOT test
     GROUP BY 1, 2
)
SELECT m.minute,
       coalesce(s.n, 0) AS sent,
       coalesce(f.n, 0) AS failed,
       coalesce(b.n, 0) AS bounced
  FROM minutes AS m
  LEFT JOIN sent AS s ON s.minute = m.minute
  LEFT JOIN changed AS f ON f.minute = m.minute AND f.status = 'failed'
  LEFT JOIN changed AS b ON b.minute = m.minute AND b.status = 'bounced'
 ORDER BY m.minute;

-- name: waiting
-- The first %(limit)s mails that wait for a later time (a backoff after a failure, or a
-- schedule), the soonest due first, with the seconds until they are due.
SELECT id, status, subject, attempts, next_attempt_at, last_error,
       extract(epoch FROM next_attempt_at - now()) AS due_in
  FROM email
 WHERE status IN ('queued', 'scheduled') AND next_attempt_at > now()
 ORDER BY next_attempt_at
 LIMIT %(limit)s;

-- name: waiting_count
-- How many mails wait for a later time, counted up to %(cap)s.
SELECT count(*)
  FROM (SELECT 1 FROM email
         WHERE status IN ('queued', 'scheduled') AND next_attempt_at > now()
         LIMIT %(cap)s) AS capped;

-- name: expired_leases
-- The first %(limit)s mails in sending whose lease expired (the reaper's next), the longest
-- expired first, with how long ago.
SELECT id, subject, locked_by, locked_until, attempts,
       extract(epoch FROM now() - locked_until) AS expired_for
  FROM email
 WHERE status = 'sending' AND locked_until < now()
 ORDER BY locked_until
 LIMIT %(limit)s;

-- name: provider_stats
-- Each provider's calls, failures and latency (mean and 95th percentile) over the last
-- %(window)s attempt rows (read by their primary key), and its latest %(failures)s failures.
-- The simulator, which takes test mail instead of a provider, is none.
WITH recent AS (
    SELECT provider, outcome, status_code, error, duration_ms, created_at,
           row_number() OVER (PARTITION BY provider, outcome = 'sent' ORDER BY id DESC) AS nth
      FROM delivery_attempt
     WHERE id > (SELECT coalesce(max(id), 0) FROM delivery_attempt) - %(window)s
       AND provider IS NOT NULL AND provider <> 'simulator'
)
SELECT provider,
       count(*) AS calls,
       count(*) FILTER (WHERE outcome <> 'sent') AS failures,
       round(avg(duration_ms))::int AS latency_avg_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS latency_p95_ms,
       coalesce(jsonb_agg(jsonb_build_object(
           'at', created_at, 'outcome', outcome, 'status_code', status_code,
           'error', error) ORDER BY created_at DESC)
           FILTER (WHERE outcome <> 'sent' AND nth <= %(failures)s), '[]') AS recent_failures
  FROM recent
 GROUP BY provider;
