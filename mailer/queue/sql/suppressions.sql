-- The suppression list: addresses (bare: the domain lower-cased) that mail does not go to. An
-- entry is in force until expires_at (bounces only; NULL: never expires). Each entry holds back
-- one tenant's mail, or every tenant's (tenant '*': an operator's entry).

-- name: active
-- Which of %(addresses)s are suppressed now for one of %(tenants)s (or for every tenant), and
-- why: the primary key (tenant, address) finds each.
SELECT tenant, address, reason, detail
  FROM suppression
 WHERE tenant = ANY(%(tenants)s::text[] || '{*}'::text[])
   AND address = ANY(%(addresses)s::text[])
   AND (expires_at IS NULL OR expires_at > now());

-- name: add
-- Add or renew the entries %(entries)s (a JSON array of tenant, address, reason, detail and
-- the mail that caused it, one entry per tenant and address): a bounce expires %(days)s days from now, any other
-- reason never. An expiring entry gives way to a new one (a new bounce renews it, a complaint
-- makes it permanent); a permanent one stays as it is. Answers the entries that changed.
INSERT INTO suppression (tenant, address, reason, detail, email_id, expires_at)
SELECT tenant, address, reason, detail, email_id,
       CASE WHEN reason = 'bounce' THEN now() + %(days)s * interval '1 day' END
  FROM json_to_recordset(%(entries)s)
       AS entry(tenant text, address text, reason text, detail text, email_id uuid)
ON CONFLICT (tenant, address) DO UPDATE
   SET reason = excluded.reason, detail = excluded.detail, email_id = excluded.email_id,
       created_at = now(), expires_at = excluded.expires_at
 WHERE suppression.expires_at IS NOT NULL
RETURNING tenant, address, reason, detail, email_id, created_at, expires_at;

-- name: entry
-- The entry of %(address)s for %(tenant)s, in force or not.
SELECT tenant, address, reason, detail, email_id, created_at, expires_at
  FROM suppression
 WHERE tenant = %(tenant)s AND address = %(address)s;

-- name: remove
-- Take %(address)s off the list of %(tenant)s (NULL: off every tenant's).
DELETE FROM suppression
 WHERE address = %(address)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s);

-- name: page
-- A page of the entries in force, newest first, keyset-paged by (created_at, address): the
-- first %(limit)s after the position (%(after_created)s, %(after_address)s) of the previous
-- page's last one; of one %(reason)s and one %(tenant)s, unless each is NULL.
SELECT tenant, address, reason, detail, email_id, created_at, expires_at
  FROM suppression
 WHERE (expires_at IS NULL OR expires_at > now())
   AND (%(reason)s::text IS NULL OR reason = %(reason)s)
   AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR created_at < %(after_created)s
        OR (created_at = %(after_created)s AND address > %(after_address)s))
 ORDER BY created_at DESC, address
 LIMIT %(limit)s;

-- name: purge_expired
-- Delete up to %(batch_size)s entries that expired.
DELETE FROM suppression
 WHERE (tenant, address) IN (SELECT tenant, address FROM suppression WHERE expires_at <= now()
                              LIMIT %(batch_size)s);
