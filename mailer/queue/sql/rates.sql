-- Shared send-rate caps: a token bucket per capped provider in provider_rate, refilled by the
-- database's clock (mailer/worker/ratecap.py decides the rates and the bursts). clock_timestamp()
-- rather than now(): a worker's transaction may be older than the moment it takes tokens.

-- name: ensure
-- A full bucket (%(burst)s tokens) for %(name)s, unless it has one.
INSERT INTO provider_rate (name, tokens) VALUES (%(name)s, %(burst)s)
ON CONFLICT (name) DO NOTHING;

-- name: take
-- Take up to %(wanted)s whole tokens of %(name)s's bucket, refilled at %(rate)s tokens a
-- second since it was last taken from, up to %(burst)s; and count them in the second they
-- were taken (granted), the second before kept as last_granted. Answers the tokens taken and
-- those that were available; nothing while the provider has no bucket.
WITH cur AS (
    SELECT name, clock_timestamp() AS moment, granted, "window",
           LEAST(%(burst)s, tokens + %(rate)s * extract(epoch FROM clock_timestamp() - refilled_at))
               AS available
      FROM provider_rate
     WHERE name = %(name)s
       FOR UPDATE
), taken AS (
    SELECT *, LEAST(%(wanted)s, floor(available))::int AS n,
           date_trunc('second', moment) AS second
      FROM cur
)
UPDATE provider_rate AS p
   SET tokens = t.available - t.n,
       refilled_at = t.moment,
       "window" = t.second,
       last_granted = CASE WHEN t."window" = t.second THEN p.last_granted
                           WHEN t."window" = t.second - interval '1 second' THEN p.granted
                           ELSE 0 END,
       granted = CASE WHEN t."window" = t.second THEN p.granted + t.n ELSE t.n END
  FROM taken AS t
 WHERE p.name = t.name
RETURNING t.n, t.available;

-- name: current_rates
-- Each capped provider's sends per second over the last whole second.
SELECT name,
       CASE WHEN "window" = date_trunc('second', now()) THEN last_granted
            WHEN "window" = date_trunc('second', now()) - interval '1 second' THEN granted
            ELSE 0 END AS rate
  FROM provider_rate;
