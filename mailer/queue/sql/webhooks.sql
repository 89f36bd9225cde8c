-- The outbox of client webhooks (webhook_outbox): written in the transaction of the status
-- change it reports, then taken by the workers' senders under a lease, posted, and each
-- attempt recorded (webhook_attempt).

-- name: insert
-- A webhook for each of %(items)s (a JSON array of mail id, event type, recipient and
-- reason) and each endpoint of its mail's tenant that takes its type: the settings' endpoint
-- (WEBHOOK_URL: endpoint_id NULL) for the default tenant's mail when %(settings_events)s (its
-- event types) is not NULL, and each live, enabled endpoint of the tenant whose events are
-- empty (every type) or name it. Its body is built from the mail row as it is now: {"type",
-- "timestamp", "data": {"mail_id", "status", "recipient", "reason", "metadata", "tags"}, and
-- "test": true for test mail}; each row has a webhook-id of its own ("msg_" and 32 hex
-- digits), by which the client deduplicates. In the order of the items (a mail's "sent"
-- before the status it then rolled up to), the settings' endpoint first, then the endpoints
-- oldest first. The items find their mails by id first (reported); with no endpoint at all
-- (no WEBHOOK_URL, no tenant's endpoint) nothing else is read (a one-time filter).
WITH target AS (
    SELECT NULL::uuid AS id, 'default'::text AS tenant, %(settings_events)s::text[] AS events,
           NULL::timestamptz AS created_at
     WHERE %(settings_events)s::text[] IS NOT NULL
    UNION ALL
    SELECT id, tenant, events, created_at
      FROM webhook_endpoint
     WHERE deleted_at IS NULL AND NOT disabled
), reported AS MATERIALIZED (
    SELECT item.position, item.type, item.recipient, item.reason, mail.id, mail.tenant,
           mail.status, mail.metadata, mail.tags, mail.test
      FROM ROWS FROM (json_to_recordset(%(items)s)
                      AS (id uuid, type text, recipient text, reason text)) WITH ORDINALITY
           AS item(id, type, recipient, reason, position)
      JOIN email AS mail ON mail.id = item.id
     WHERE EXISTS (SELECT FROM target)
)
INSERT INTO webhook_outbox (message_id, event_type, email_id, payload, endpoint_id, tenant)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), reported.type, reported.id,
       jsonb_build_object(
           'type', reported.type,
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object(
               'mail_id', reported.id, 'status', reported.status,
               'recipient', reported.recipient, 'reason', reported.reason,
               'metadata', reported.metadata, 'tags', to_jsonb(reported.tags))
           || CASE WHEN reported.test THEN jsonb_build_object('test', true)
                   ELSE jsonb_build_object() END),
       target.id, reported.tenant
  FROM reported
  JOIN target ON target.tenant = reported.tenant
             AND (target.events = '{}' OR reported.type = ANY(target.events))
 ORDER BY reported.position, target.created_at NULLS FIRST, target.id;

-- name: by_index
-- For the rest of the transaction (the sender's record, release and claim), every plan reads
-- rows by index, one by one: no sequential scan, no sort, no bitmap. Each of those statements
-- touches a few rows of a table that holds many; but the statistics of a table of mostly
-- finished webhooks, or of one just emptied, count few pending ones, and with them the planner
-- would sort every due webhook and check each against its mail's by intersecting whole
-- indexes, or read the whole table once per recorded webhook: each claim of a backlog would
-- take longer than the one before.
SELECT set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true),
       set_config('enable_bitmapscan', 'off', true);

-- name: claim
-- Take up to %(limit)s due webhooks, the longest due first, under a lease of %(lease)s
-- seconds (FOR UPDATE SKIP LOCKED: several workers never post the same one at once): those
-- of the settings' endpoint if %(settings)s, those of the tenants' endpoints if
-- %(endpoints)s, but none of a disabled (or deleted) endpoint. Only the oldest pending
-- webhook of each mail and endpoint is taken, and only while no worker holds it: the next
-- one of that mail and endpoint waits until it is delivered or given up, so that one mail's
-- webhooks to one endpoint are never in flight together and arrive in the order they were
-- written, across workers too (a webhook being claimed by another transaction is skipped, and
-- is still pending for this one, so the one after it is not the oldest). Each with its
-- endpoint's URL and secret (NULL for the settings' endpoint). Run after by_index, it walks
-- ix_webhook_outbox_due in its order and stops at its batch; each candidate's earlier
-- webhooks are looked up among its mail's own rows (ix_webhook_outbox_email_id), "not
-- delivered or failed" rather than "pending": with few pending webhooks in its statistics,
-- the planner would look through every pending one (the due index) instead.
UPDATE webhook_outbox AS webhook
   SET locked_until = now() + %(lease)s * interval '1 second'
  FROM (SELECT outbox.id, endpoint.url, endpoint.secret
          FROM webhook_outbox AS outbox
          LEFT JOIN webhook_endpoint AS endpoint ON endpoint.id = outbox.endpoint_id
         WHERE outbox.status = 'pending' AND outbox.next_attempt_at <= now()
           AND (outbox.locked_until IS NULL OR outbox.locked_until < now())
           AND CASE WHEN outbox.endpoint_id IS NULL THEN %(settings)s
                    ELSE %(endpoints)s AND NOT endpoint.disabled END
           AND NOT EXISTS (SELECT FROM webhook_outbox AS earlier
                            WHERE earlier.email_id = outbox.email_id
                              AND earlier.endpoint_id IS NOT DISTINCT FROM outbox.endpoint_id
                              AND earlier.status NOT IN ('delivered', 'failed')
                              AND earlier.id < outbox.id)
         ORDER BY outbox.next_attempt_at, outbox.id
         LIMIT %(limit)s
           FOR UPDATE OF outbox SKIP LOCKED) AS due
 WHERE webhook.id = due.id
RETURNING webhook.id, webhook.message_id, webhook.payload, webhook.attempts,
          webhook.endpoint_id, due.url, due.secret;

-- name: record
-- Record a batch of posts (%(results)s, a JSON array of id, ok, status_code, error,
-- duration_ms and retry_in): an attempt row each, and each webhook still pending delivered,
-- or due again after retry_in seconds, or given up (failed) once older than %(max_age)s
-- seconds (one given up meanwhile, its endpoint deleted, stays so). The webhooks after one
-- due again, of its mail and endpoint, wait at least as long: they cannot go before it, and
-- a claim then need not pass over them. (Run after by_index. The webhooks are found by their
-- ids, whatever the planner thinks of the table; "not delivered or failed" is "pending",
-- written so that the planner finds them by id and by mail, as in claim.)
WITH result AS (
    SELECT *
      FROM json_to_recordset(%(results)s)
           AS result(id bigint, ok boolean, status_code int, error text, duration_ms int,
                     retry_in float8)
), attempt AS (
    INSERT INTO webhook_attempt (webhook_id, status_code, error, duration_ms)
    SELECT id, status_code, error, duration_ms FROM result
), recorded AS (
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
     WHERE webhook.id = ANY(ARRAY(SELECT id FROM result)) AND webhook.id = result.id
       AND webhook.status NOT IN ('delivered', 'failed')
    RETURNING webhook.id, webhook.email_id, webhook.endpoint_id, webhook.status,
              webhook.next_attempt_at
)
UPDATE webhook_outbox AS later
   SET next_attempt_at = recorded.next_attempt_at
  FROM recorded
 WHERE recorded.status = 'pending'
   AND later.email_id = recorded.email_id
   AND later.endpoint_id IS NOT DISTINCT FROM recorded.endpoint_id
   AND later.status NOT IN ('delivered', 'failed') AND later.id > recorded.id
   AND later.next_attempt_at < recorded.next_attempt_at
   AND later.id NOT IN (SELECT id FROM result);

-- name: release
-- Hand back claimed webhooks that were not posted (%(items)s, a JSON array of id and delay):
-- due again after delay seconds (0: now; their receiver is paused, or it failed a moment ago
-- in the same batch).
UPDATE webhook_outbox AS webhook
   SET locked_until = NULL,
       next_attempt_at = greatest(webhook.next_attempt_at,
                                  now() + item.delay * interval '1 second')
  FROM json_to_recordset(%(items)s) AS item(id bigint, delay float8)
 WHERE webhook.id = item.id;

-- name: insert_received
-- mail.received for the received mail %(id)s, for each endpoint of its tenant that takes it
-- (the targets as insert's, %(settings_events)s the settings' endpoint's types): its body says
-- who wrote to whom about what, the mail of ours it answers, whether it is an automatic reply,
-- and where the rest of it is (url, GET /inbound/<id>). With no endpoint at all nothing else is
-- read.
WITH target AS (
    SELECT NULL::uuid AS id, 'default'::text AS tenant, %(settings_events)s::text[] AS events,
           NULL::timestamptz AS created_at
     WHERE %(settings_events)s::text[] IS NOT NULL
    UNION ALL
    SELECT id, tenant, events, created_at
      FROM webhook_endpoint
     WHERE deleted_at IS NULL AND NOT disabled
), received AS MATERIALIZED (
    SELECT id, tenant, coalesce(from_address, envelope_from) AS sender, to_address, subject,
           in_reply_to_mail_id, auto_reply, received_at
      FROM inbound
     WHERE id = %(id)s AND EXISTS (SELECT FROM target)
)
INSERT INTO webhook_outbox (message_id, event_type, inbound_id, payload, endpoint_id, tenant)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'mail.received', received.id,
       jsonb_build_object(
           'type', 'mail.received',
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object(
               'inbound_id', received.id, 'from', received.sender,
               'to', to_jsonb(received.to_address), 'subject', received.subject,
               'in_reply_to_mail_id', received.in_reply_to_mail_id,
               'auto_reply', received.auto_reply,
               'received_at', to_char(received.received_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'url', '/inbound/' || received.id)),
       target.id, received.tenant
  FROM received
  JOIN target ON target.tenant = received.tenant
             AND (target.events = '{}' OR 'mail.received' = ANY(target.events))
 ORDER BY target.created_at NULLS FIRST, target.id;
