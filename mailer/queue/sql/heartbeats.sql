-- Which workers are alive: a heartbeat row per worker in worker_heartbeat, stamped with the
-- database's clock, so that no host's clock decides who looks dead.

-- name: beat
-- Worker %(name)s is alive now, with its sends in flight and its totals. The first beat makes
-- its row (started_at now); later ones move last_seen and the counts.
INSERT INTO worker_heartbeat (name, host, pid, in_flight, sent, failed)
VALUES (%(name)s, %(host)s, %(pid)s, %(in_flight)s, %(sent)s, %(failed)s)
ON CONFLICT (name) DO UPDATE
   SET last_seen = now(), in_flight = excluded.in_flight, sent = excluded.sent,
       failed = excluded.failed;

-- name: alive
-- The workers seen in the last %(within)s seconds, by name, with the seconds since their last
-- beat (age).
SELECT name, host, pid, started_at, last_seen, in_flight, sent, failed,
       extract(epoch FROM now() - last_seen) AS age
  FROM worker_heartbeat
 WHERE last_seen >= now() - %(within)s * interval '1 second'
 ORDER BY name;

-- name: forget
-- Delete the row of worker %(name)s (it stops cleanly).
DELETE FROM worker_heartbeat WHERE name = %(name)s;

-- name: forget_stale
-- Delete the rows of workers not seen for %(older_than)s seconds (they died).
DELETE FROM worker_heartbeat WHERE last_seen < now() - %(older_than)s * interval '1 second';
