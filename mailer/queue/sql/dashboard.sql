-- What the admin's dashboard reads, cheaply enough to poll every few seconds at any size:
-- nothing here counts over the whole email table. Every time is the database's.

-- name: minute_series
-- Mails sent, failed and bounced per minute, from the minute %(since)s to the minute %(until)s
-- (both the start of a minute), oldest first, one indexed range scan each (ix_email_sent_at,
-- ix_email_status_updated, read from the index alone). "sent" is when a provider took the mail
-- (it may have been delivered or bounced since); "failed" and "bounced" are mails whose status
-- is that now and changed in the minute. Live mail only: test mail (email.test) never reached a
-- provider. The admin counts the hour's minutes once and then only the last few
-- (mailer.admin.dashboard.MinuteCounts), so %(since)s is usually a minute or two ago.
WITH minutes AS (
    SELECT generate_series(%(since)s::timestamptz, %(until)s::timestamptz,
                           interval '1 minute') AS minute
), sent AS (
    SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n
      FROM email
     WHERE sent_at >= %(since)s::timestamptz
       AND NOT test
     GROUP BY 1
), changed AS (
    SELECT status, date_trunc('minute', updated_at) AS minute, count(*) AS n
      FROM email
     WHERE status IN ('failed', 'bounced')
       AND updated_at >= %(since)s::timestamptz
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

-- name: backoff
-- The first %(limit)s queued mails in backoff after a failure (trouble: a provider refused them
-- for now), the soonest due first, with the seconds until they are due; through
-- ix_email_backoff (queued mail only).
SELECT id, status, subject, attempts, next_attempt_at, last_error,
       extract(epoch FROM next_attempt_at - now()) AS due_in
  FROM email
 WHERE status = 'queued' AND next_attempt_at > now()
 ORDER BY next_attempt_at
 LIMIT %(limit)s;

-- name: backoff_count
-- How many queued mails are in backoff, counted up to %(cap)s, from ix_email_backoff alone (an
-- index-only scan: the partial index's predicate is the status, its key the next attempt).
SELECT count(*)
  FROM (SELECT 1 FROM email
         WHERE status = 'queued' AND next_attempt_at > now()
         LIMIT %(cap)s) AS capped;

-- name: scheduled
-- The latest %(limit)s mails scheduled for later by their client (normal), newest first,
-- through ix_email_status_created (ix_email_due would wade through the mail in backoff first).
SELECT id, status, subject, attempts, next_attempt_at, last_error,
       extract(epoch FROM next_attempt_at - now()) AS due_in
  FROM email
 WHERE status = 'scheduled'
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s;

-- name: gone_workers
-- The workers whose heartbeat row went silent %(within)s seconds ago or more (a worker that
-- stops cleanly deletes its row; one killed leaves it behind, until forget_stale) and that hold
-- mail in sending: each with its last beat, how many mails it holds, when the first of their
-- leases ends, and the first %(limit)s of them (id, subject). Starts from the few silent
-- heartbeat rows, so a gone worker shows long before its leases expire, at no cost otherwise.
WITH gone AS (
    SELECT name, last_seen
      FROM worker_heartbeat
     WHERE last_seen < now() - %(within)s * interval '1 second'
), held AS (
    SELECT e.id, e.subject, e.locked_by, e.locked_until, g.last_seen,
           row_number() OVER (PARTITION BY e.locked_by ORDER BY e.locked_until, e.id) AS nth
      FROM gone AS g
      JOIN email AS e ON e.locked_by = g.name AND e.status = 'sending'
     WHERE e.locked_until IS NOT NULL
)
SELECT locked_by AS name, max(last_seen) AS last_seen,
       extract(epoch FROM now() - max(last_seen)) AS silent_for,
       count(*) AS held, min(locked_until) AS lease_until,
       jsonb_agg(jsonb_build_object('id', id, 'subject', subject) ORDER BY nth)
           FILTER (WHERE nth <= %(limit)s) AS mail
  FROM held
 GROUP BY locked_by
 ORDER BY locked_by;

-- name: held_by
-- The mails in sending that worker %(name)s holds (to release them when it is gone).
SELECT id FROM email WHERE status = 'sending' AND locked_by = %(name)s AND locked_until IS NOT NULL;

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
-- %(window)s attempt rows (the last of the primary key: a LIMIT the planner sizes right, where a
-- range from max(id) looked like a third of the table to it), and its latest %(failures)s
-- failures. The simulator, which takes test mail instead of a provider, is none. The latest
-- failures are numbered among the failures alone, so only those are sorted by provider.
WITH recent AS (
    SELECT id, provider, outcome, status_code, error, duration_ms, created_at
      FROM (SELECT id, provider, outcome, status_code, error, duration_ms, created_at
              FROM delivery_attempt
             ORDER BY id DESC
             LIMIT %(window)s) AS last
     WHERE provider IS NOT NULL AND provider <> 'simulator'
), stats AS (
    SELECT provider,
           count(*) AS calls,
           count(*) FILTER (WHERE outcome <> 'sent') AS failures,
           round(avg(duration_ms))::int AS latency_avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS latency_p95_ms
      FROM recent
     GROUP BY provider
), latest AS (
    SELECT provider,
           jsonb_agg(jsonb_build_object('at', created_at, 'outcome', outcome,
                                        'status_code', status_code, 'error', error)
                     ORDER BY created_at DESC) AS recent_failures
      FROM (SELECT *, row_number() OVER (PARTITION BY provider ORDER BY id DESC) AS nth
              FROM recent
             WHERE outcome <> 'sent') AS failed
     WHERE nth <= %(failures)s
     GROUP BY provider
)
SELECT stats.*, coalesce(latest.recent_failures, '[]') AS recent_failures
  FROM stats
  LEFT JOIN latest USING (provider);

-- name: failure_groups
-- The failures among the last %(window)s attempt rows (the last of the primary key, as
-- provider_stats reads them), grouped by provider, outcome and reason, with how many and the
-- latest, the latest group first; at most %(limit)s groups.
SELECT provider, outcome, status_code, error, count(*) AS count, max(created_at) AS latest
  FROM (SELECT provider, outcome, status_code, error, created_at
          FROM delivery_attempt
         ORDER BY id DESC
         LIMIT %(window)s) AS last
 WHERE provider IS NOT NULL AND outcome <> 'sent'
 GROUP BY provider, outcome, status_code, error
 ORDER BY latest DESC
 LIMIT %(limit)s;
