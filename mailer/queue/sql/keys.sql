-- Stored API keys: each is its SHA-256 (key_hash, hex) with the readable start and last four
-- characters that lists show; never the key. A revoked key keeps its row (revoked_at), so
-- the mail it sent still names it.

-- name: create
-- A new key: %(id)s of %(tenant)s named %(name)s, stored as %(key_hash)s, with its
-- %(scopes)s, %(allowed_from_domains)s, %(rate_limit)s, %(daily_quota)s and %(test)s.
INSERT INTO api_key (id, tenant, name, prefix, last4, key_hash, scopes, allowed_from_domains,
                     rate_limit, daily_quota, test, created_by)
VALUES (%(id)s, %(tenant)s, %(name)s, %(prefix)s, %(last4)s, %(key_hash)s, %(scopes)s,
        %(allowed_from_domains)s, %(rate_limit)s, %(daily_quota)s, %(test)s, %(created_by)s)
RETURNING id, tenant, name, prefix, last4, scopes, allowed_from_domains, rate_limit,
          daily_quota, test, created_at, last_used_at, revoked_at;

-- name: lookup
-- The live key whose hash is %(key_hash)s, if any; its last_used_at set to now() when it was
-- last set more than a minute ago (a write at most once a minute per key, not per request).
WITH found AS (
    SELECT * FROM api_key WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
), touched AS (
    UPDATE api_key SET last_used_at = now()
     WHERE id IN (SELECT id FROM found
                   WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT id, tenant, name, scopes, test, allowed_from_domains, rate_limit, daily_quota
  FROM found;

-- name: any_live
-- Whether any key is live (not revoked): protected mode ends with the first one.
SELECT EXISTS (SELECT FROM api_key WHERE revoked_at IS NULL);

-- name: page
-- A page of keys, newest first, keyset-paged by (created_at, id): the first %(limit)s after
-- the position (%(after_created)s, %(after_id)s); of %(tenant)s, unless it is NULL (every
-- tenant's). Never the hash.
SELECT id, tenant, name, prefix, last4, scopes, allowed_from_domains, rate_limit, daily_quota,
       test, created_at, last_used_at, revoked_at
  FROM api_key
 WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR (created_at, id) < (%(after_created)s, %(after_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s;

-- name: revoke
-- Revoke the key %(id)s (of %(tenant)s, unless it is NULL); a key revoked already stays as it
-- was. Answers the key if it exists (for that tenant).
WITH revoked AS (
    UPDATE api_key SET revoked_at = now()
     WHERE id = %(id)s AND revoked_at IS NULL
       AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
    RETURNING id
)
SELECT id FROM revoked
 UNION
SELECT id FROM api_key WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s);

-- name: take
-- Take %(n)s mails from the key %(key_id)s's limits, if they allow them. The first statement
-- makes the key's usage row, full (%(burst)s tokens, none counted today), when it has none.
-- The second locks it (so that every API process counts in the same row): its token bucket
-- refills at %(rate)s tokens a second up to %(burst)s (NULL rate: no rate limit) and must
-- hold at least least(%(n)s, %(burst)s) tokens (a batch larger than the bucket may take it
-- below zero: later mail waits the longer); the count of the current UTC day plus %(n)s must
-- not pass %(quota)s (NULL: no quota). Answers whether each allowed, the tokens held, and the
-- seconds until the next UTC day.
INSERT INTO key_usage (key_id, tokens, refilled_at, day, day_count)
VALUES (%(key_id)s, %(burst)s, now(), (now() AT TIME ZONE 'UTC')::date, 0)
ON CONFLICT (key_id) DO NOTHING;
WITH clock AS (
    SELECT now() AS t, (now() AT TIME ZONE 'UTC')::date AS today
), held AS (
    SELECT u.key_id, clock.t, clock.today,
           CASE WHEN %(rate)s::float8 IS NULL THEN u.tokens
                ELSE least(%(burst)s::float8,
                           u.tokens + %(rate)s::float8
                                      * greatest(extract(epoch FROM clock.t - u.refilled_at), 0))
           END AS tokens,
           CASE WHEN u.day = clock.today THEN u.day_count ELSE 0 END AS day_count
      FROM key_usage AS u, clock
     WHERE u.key_id = %(key_id)s
       FOR UPDATE OF u
), decided AS (
    SELECT held.*,
           (%(rate)s::float8 IS NULL OR held.tokens >= least(%(n)s, %(burst)s::float8))
               AS rate_ok,
           (%(quota)s::int IS NULL OR held.day_count + %(n)s <= %(quota)s::int) AS quota_ok
      FROM held
), taken AS (
    UPDATE key_usage AS u
       SET tokens = CASE WHEN %(rate)s::float8 IS NULL THEN d.tokens ELSE d.tokens - %(n)s END,
           refilled_at = d.t, day = d.today, day_count = d.day_count + %(n)s
      FROM decided AS d
     WHERE u.key_id = d.key_id AND d.rate_ok AND d.quota_ok
)
SELECT rate_ok, quota_ok, tokens,
       extract(epoch FROM ((today + 1)::timestamp AT TIME ZONE 'UTC') - t) AS to_next_day
  FROM decided;
