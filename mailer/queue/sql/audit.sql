-- The audit log: one row per change an operator (the admin) or a managing key (the API) made,
-- appended in the transaction of the change. Rows are never updated (a trigger refuses it);
-- only the purge deletes them, past AUDIT_RETENTION_DAYS. Every time is the database's.

-- name: record
-- Append one row: %(actor)s (an operator's or a key's name) and %(key_id)s (the key's id, or
-- NULL), the %(tenant)s the change was for (NULL: every tenant), the %(action)s, its
-- %(target)s, the %(summary)s of what changed (a JSON object, never a secret) and the
-- %(client)s address. Answers the row's id and time.
INSERT INTO audit_log (actor, key_id, tenant, action, target, summary, client)
VALUES (%(actor)s, %(key_id)s::uuid, %(tenant)s, %(action)s, %(target)s,
        CAST(%(summary)s AS jsonb), %(client)s)
RETURNING id, at;

-- name: page
-- A page of the log, newest first, keyset-paged by (at, id): the first %(limit)s rows before
-- the position (%(after_at)s, %(after_id)s) of the previous page's last one; of one
-- %(tenant)s, one %(action)s and one %(target)s, unless each is NULL. The tenant-leading
-- index serves a tenant's page, the other every tenant's.
SELECT id, at, actor, key_id::text, tenant, action, target, summary, client
  FROM audit_log
 WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
   AND (%(action)s::text IS NULL OR action = %(action)s)
   AND (%(target)s::text IS NULL OR target = %(target)s)
   AND (%(after_at)s::timestamptz IS NULL OR (at, id) < (%(after_at)s, %(after_id)s::bigint))
 ORDER BY at DESC, id DESC
 LIMIT %(limit)s;

-- name: purge
-- Delete up to %(batch_size)s rows older than %(days)s days (AUDIT_RETENTION_DAYS), the
-- oldest first: the only deletion of the log.
DELETE FROM audit_log
 WHERE id IN (SELECT id FROM audit_log
               WHERE at < now() - %(days)s * interval '24 hours'
               ORDER BY at, id
               LIMIT %(batch_size)s);
