-- The guard that steers away from a blocked path: the per-minute outcomes of each provider and
-- recipient domain (deliverability, added to as events are recorded: events.sql), and the
-- pairs steered away from now (steering), shared by every worker. What a pair's figures mean,
-- and when it is steered, is mailer/worker/steering.py's. Every time is the database's.

-- name: try_lock
-- Whether this transaction may change the steering rows: one worker at a time, by the advisory
-- lock 70130001, so that every change is made, and logged, by one worker only. Another worker
-- looking meanwhile does not wait: it reads the rows as they stand.
SELECT pg_try_advisory_xact_lock(70130001);

-- name: window_counts
-- Each provider and recipient domain with outcomes in the last %(window)s seconds (the minutes
-- that began in it): how many failed (bounced, deferred or complained) of how many in all.
-- The key leads with the minute: one range of the index.
SELECT provider, domain,
       sum(bounced + deferred + complained)::int AS failed,
       sum(delivered + bounced + deferred + complained)::int AS events
  FROM deliverability
 WHERE minute > now() - %(window)s * interval '1 second'
 GROUP BY provider, domain;

-- name: steered
-- The pairs steered away from now, with since when and the figures of the last look.
SELECT provider, domain, since, failure_rate, failed, events
  FROM steering
 ORDER BY provider, domain;

-- name: apply
-- Steer away from the pairs of %(steer)s (a JSON array of {provider, domain, failed, events})
-- and let those of %(release)s (of {provider, domain}) back. A pair already steered keeps its
-- since and takes the new figures. Answers the pairs that changed, each with steered true
-- (newly steered away from) or false (back): only the statement that changed a row returns
-- it.
WITH steer AS (
    SELECT * FROM json_to_recordset(%(steer)s)
           AS steer(provider text, domain text, failed int, events int)
), release AS (
    SELECT * FROM json_to_recordset(%(release)s) AS release(provider text, domain text)
), began AS (
    INSERT INTO steering (provider, domain, since, failure_rate, failed, events)
    SELECT provider, domain, now(), failed::float8 / events, failed, events
      FROM steer
     ORDER BY provider, domain
    ON CONFLICT (provider, domain) DO NOTHING
    RETURNING provider, domain
), kept AS (
    UPDATE steering
       SET failure_rate = steer.failed::float8 / steer.events, failed = steer.failed,
           events = steer.events
      FROM steer
     WHERE steering.provider = steer.provider AND steering.domain = steer.domain
), ended AS (
    DELETE FROM steering
     WHERE (provider, domain) IN (SELECT provider, domain FROM release)
    RETURNING provider, domain
)
SELECT provider, domain, true AS steered FROM began
UNION ALL
SELECT provider, domain, false FROM ended;
