-- The outbox of client webhooks (webhook_outbox): written in the transaction of the status
-- change it reports, then taken by the workers' senders under a lease, posted, and each
-- attempt recorded (webhook_attempt).

-- name: insert
-- A webhook for each of %(items)s (a JSON array of mail id, event type, recipient and
-- reason), its body built from the mail row as it is now: {"type", "timestamp", "data":
-- {"mail_id", "status", "recipient", "reason", "metadata", "tags"}, and "test": true for test
-- mail}, and a webhook-id of its
-- own ("msg_" and 32 hex digits), by which the client deduplicates; in the order of the items
-- (a mail's "sent" before the status it then rolled up to).
INSERT INTO webhook_outbox (message_id, event_type, email_id, payload)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), item.type, mail.id,
       jsonb_build_object(
           'type', item.type,
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object(
               'mail_id', mail.id, 'status', mail.status, 'recipient', item.recipient,
               'reason', item.reason, 'metadata', mail.metadata, 'tags', to_jsonb(mail.tags))
           || CASE WHEN mail.test THEN jsonb_build_object('test', true)
                   ELSE jsonb_build_object() END)
  FROM ROWS FROM (json_to_recordset(%(items)s)
                  AS (id uuid, type text, recipient text, reason text)) WITH ORDINALITY
       AS item(id, type, recipient, reason, position)
  JOIN email AS mail ON mail.id = item.id
 ORDER BY item.position;

-- name: claim
-- Take up to %(limit)s due webhooks, the longest due first, under a lease of %(lease)s
-- seconds (FOR UPDATE SKIP LOCKED: several workers never post the same one at once).
UPDATE webhook_outbox
   SET locked_until = now() + %(lease)s * interval '1 second'
 WHERE id IN (SELECT id FROM webhook_outbox
               WHERE status = 'pending' AND next_attempt_at <= now()
                 AND (locked_until IS NULL OR locked_until < now())
               ORDER BY next_attempt_at, id
               LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id, message_id, payload, attempts;

-- name: record
-- Record a batch of posts (%(results)s, a JSON array of id, ok, status_code, error,
-- duration_ms and retry_in): an attempt row each, and each webhook delivered, or due again
-- after retry_in seconds, or given up (failed) once older than %(max_age)s seconds.
WITH result AS (
    SELECT *
      FROM json_to_recordset(%(results)s)
           AS result(id bigint, ok boolean, status_code int, error text, duration_ms int,
                     retry_in float8)
), attempt AS (
    INSERT INTO webhook_attempt (webhook_id, status_code, error, duration_ms)
    SELECT id, status_code, error, duration_ms FROM result
)
UPDATE webhook_outbox AS webhook
   SET attempts = webhook.attempts + 1, locked_until = NULL,
       status = CASE WHEN result.ok THEN 'delivered'
                     WHEN webhook.created_at < now() - %(max_age)s * interval '1 second'
                         THEN 'failed'
                     ELSE 'pending' END,
       delivered_at = CASE WHEN result.ok THEN now() END,
       last_error = result.error,
       next_attempt_at = now() + coalesce(result.retry_in, 0) * interval '1 second'
  FROM result
 WHERE webhook.id = result.id;

-- name: release
-- Hand back the claimed webhooks %(ids)s that were not posted (their receiver is paused):
-- due now.
UPDATE webhook_outbox SET locked_until = NULL WHERE id = ANY(%(ids)s::bigint[]);
