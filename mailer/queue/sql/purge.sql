-- Retention: finished mail past RETENTION_DAYS and idempotency keys past IDEMPOTENCY_TTL go,
-- in small batches, each its own short transaction (the caller's), so that locks stay short
-- and autovacuum keeps up.

-- name: purge_mail
-- Delete up to %(batch_size)s finished mails (sent, delivered, bounced, complained,
-- suppressed, failed or cancelled) last updated more than %(days)s days ago; their
-- attachments, attempts, recipients, events, tags and webhooks go with them (ON DELETE
-- CASCADE). The (status, updated_at) index finds them.
DELETE FROM email
 WHERE id IN (SELECT id FROM email
               WHERE status IN ('sent', 'delivered', 'bounced', 'complained', 'suppressed',
                                'failed', 'cancelled')
                 AND updated_at < now() - %(days)s * interval '24 hours'
               LIMIT %(batch_size)s);

-- name: count_purgeable
-- How many finished mails were last updated more than %(days)s days ago.
SELECT count(*)
  FROM email
 WHERE status IN ('sent', 'delivered', 'bounced', 'complained', 'suppressed', 'failed',
                  'cancelled')
   AND updated_at < now() - %(days)s * interval '24 hours';

-- name: purge_keys
-- Delete up to %(batch_size)s idempotency keys kept longer than %(ttl)s seconds.
DELETE FROM idempotency_key
 WHERE (scope, key) IN (SELECT scope, key FROM idempotency_key
                         WHERE created_at < now() - %(ttl)s * interval '1 second'
                         LIMIT %(batch_size)s);

-- name: purge_deliverability
-- Delete up to %(batch_size)s per-minute delivery outcomes (deliverability) older than
-- %(keep)s seconds; the key leads with the minute, so they are one range of it.
DELETE FROM deliverability
 WHERE (minute, provider, domain) IN (SELECT minute, provider, domain FROM deliverability
                                       WHERE minute < now() - %(keep)s * interval '1 second'
                                       LIMIT %(batch_size)s);
