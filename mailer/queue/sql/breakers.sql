-- The providers' circuit breakers, one row per provider in provider_state, shared by every
-- worker (mailer/worker/circuit.py decides what the rows mean), and the log of the breakers'
-- actions by hand (provider_action). Every time is the database's.

-- name: ensure
-- A closed breaker for each of %(names)s that has none yet.
INSERT INTO provider_state (name, state, consecutive_failures, cooldown)
SELECT unnest(%(names)s::text[]), 'closed', 0, 0
ON CONFLICT (name) DO NOTHING;

-- name: clock
-- The database's clock as this moment (not the transaction's start).
SELECT clock_timestamp();

-- name: breakers
-- The breakers of %(names)s (all of them when it is NULL), by name, each with the database's
-- now() (db_now).
SELECT name, state, consecutive_failures, cooldown, open_until, probe_until, paused_until,
       last_error, updated_at, held_by, held_at, held_reason, now() AS db_now
  FROM provider_state
 WHERE %(names)s::text[] IS NULL OR name = ANY(%(names)s::text[])
 ORDER BY name;

-- name: try_probe
-- Claim the single probe of %(name)s's open breaker whose cool-down ended (or whose last probe
-- ran past its window): half open for %(window)s seconds, during which no other worker probes.
-- A breaker held open by hand is never probed. Answers the probe's end, or nothing.
UPDATE provider_state
   SET state = 'half_open', probe_until = now() + %(window)s * interval '1 second',
       updated_at = now()
 WHERE name = %(name)s AND held_by IS NULL
   AND ((state = 'open' AND open_until <= now())
        OR (state = 'half_open' AND probe_until <= now()))
RETURNING probe_until;

-- name: close
-- Close %(name)s's breaker after a success (unless an operator holds it open).
UPDATE provider_state
   SET state = 'closed', consecutive_failures = 0, cooldown = 0, open_until = NULL,
       probe_until = NULL, updated_at = now()
 WHERE name = %(name)s AND held_by IS NULL;

-- name: lock_breaker
-- %(name)s's breaker, locked until the transaction ends, with the database's now() (db_now).
SELECT name, state, consecutive_failures, cooldown, open_until, probe_until, paused_until,
       last_error, updated_at, held_by, held_at, held_reason, now() AS db_now
  FROM provider_state
 WHERE name = %(name)s
   FOR UPDATE;

-- name: fail
-- %(name)s's breaker after one more transient failure, as circuit.failure_transition decided
-- from its locked row.
UPDATE provider_state
   SET state = %(state)s, consecutive_failures = %(consecutive_failures)s,
       cooldown = %(cooldown)s, open_until = %(open_until)s, probe_until = %(probe_until)s,
       last_error = %(last_error)s, updated_at = %(updated_at)s
 WHERE name = %(name)s;

-- name: pause
-- Skip %(name)s for %(seconds)s seconds from now (it rate-limits us: a 429), unless a longer
-- pause holds already. Answers the pause's end, or nothing.
UPDATE provider_state
   SET paused_until = now() + %(seconds)s * interval '1 second', last_error = %(reason)s,
       updated_at = now()
 WHERE name = %(name)s
   AND (paused_until IS NULL OR paused_until < now() + %(seconds)s * interval '1 second')
RETURNING paused_until;

-- name: open_by_hand
-- %(actor)s opens %(name)s's breaker by hand (planned maintenance), for %(reason)s: it stays
-- open, with no probe, until an operator closes it.
INSERT INTO provider_state (name, state, consecutive_failures, cooldown, held_by, held_at,
                            held_reason, updated_at)
VALUES (%(name)s, 'open', 0, 0, %(actor)s, now(), %(reason)s, now())
ON CONFLICT (name) DO UPDATE
   SET state = 'open', open_until = NULL, probe_until = NULL, held_by = excluded.held_by,
       held_at = now(), held_reason = excluded.held_reason, updated_at = now();

-- name: close_by_hand
-- An operator closes %(name)s's breaker, whether held open by hand or opened by failures.
-- A 429's pause stays: that is the provider's own word.
UPDATE provider_state
   SET state = 'closed', consecutive_failures = 0, cooldown = 0, open_until = NULL,
       probe_until = NULL, held_by = NULL, held_at = NULL, held_reason = NULL,
       updated_at = now()
 WHERE name = %(name)s;

-- name: log_hand_action
-- One row of the log of breakers' actions by hand.
INSERT INTO provider_action (provider, action, actor, reason)
VALUES (%(name)s, %(action)s, %(actor)s, %(reason)s);

-- name: hand_actions
-- The latest %(limit)s breaker actions by hand, newest first.
SELECT id, provider, action, actor, reason, created_at
  FROM provider_action
 ORDER BY id DESC
 LIMIT %(limit)s;
