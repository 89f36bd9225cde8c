-- A worker's side of the queue: take due mail under a lease, record what became of it, hand
-- back what it did not send, and return the mail of workers that died. Every time is the
-- database's now(), never a worker's.

-- name: claim_due
-- Take up to %(limit)s due mails (queued, or scheduled and due), the longest due first, and mark
-- them sending for %(worker)s under a lease of %(lease)s seconds, in one statement. The inner
-- SELECT skips rows another worker has locked, so two claims never wait for each other nor take
-- the same mail. With each mail come what the retry policy needs, measured by the database: the
-- attempts spent since the last operator's retry and the seconds since the mail was created or
-- retried; and whether it has attachments (most mail has none: no query for them); and its
-- tenant, whose suppression list holds its recipients back; and whether it is test mail, which
-- the simulator takes instead of a provider. Empty headers and metadata (most mail's) come back
-- as NULL: nothing for the driver to parse.
UPDATE email
   SET status = 'sending', locked_by = %(worker)s, updated_at = now(),
       locked_until = now() + %(lease)s * interval '1 second'
 WHERE id IN (SELECT id FROM email
               WHERE status IN ('queued', 'scheduled') AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id, from_address, to_address, cc, bcc, reply_to, subject, text, html, attempts,
          nullif(headers, '{}') AS headers, tags, nullif(metadata, '{}') AS metadata, tenant,
          test,
          attempts - attempts_at_retry AS budget_used,
          extract(epoch FROM now() - coalesce(retried_at, created_at))::float8 AS age,
          EXISTS (SELECT 1 FROM attachment WHERE attachment.email_id = email.id)
              AS has_attachments;

-- name: attachments_of
-- The attachments of the mails %(ids)s, with their content and (of an inline part) Content-ID,
-- in each mail's order.
SELECT email_id, filename, content_type, content, content_id
  FROM attachment
 WHERE email_id = ANY(%(ids)s::uuid[])
 ORDER BY email_id, position;

-- name: finish_owned
-- Record a batch of sends in one round trip, three statements in turn: lock the mails %(ids)s
-- that %(worker)s still leases, in id order (every writer that locks several mails takes them in
-- that order, so a batch of sends and a batch of events never deadlock); insert the batch's
-- attempt-log rows (%(attempts)s, a JSON array; a response of None is stored as JSON null);
-- record each mail's decision (%(decisions)s, a JSON array). The last statement answers the mails still owned: a worker whose lease was
-- taken over changes nothing of the newer owner's. A decision without a result (no provider
-- was called) keeps the result of the last call that was made, and one without a route (no
-- route was chosen) keeps the route of the last delivery.
SELECT id FROM email
 WHERE id = ANY(%(ids)s::uuid[]) AND locked_by = %(worker)s
 ORDER BY id
   FOR UPDATE;
INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, response, error,
                              duration_ms, worker, created_at)
SELECT email_id, number, provider, outcome, status_code, coalesce(response, 'null'), error,
       duration_ms, worker, created_at
  FROM json_to_recordset(%(attempts)s)
       AS a(email_id uuid, number int, provider text, outcome text, status_code int,
            response json, error text, duration_ms int, worker text, created_at timestamptz);
UPDATE email
   SET status = d.status, provider = d.provider, provider_message_id = d.message_id,
       result = coalesce(d.result, email.result), attempts = d.attempts,
       last_error = d.last_error, next_attempt_at = now() + d.retry_in * interval '1 second',
       sent_at = CASE WHEN d.status = 'sent' THEN now() END,
       route = coalesce(d.route, email.route),
       locked_by = NULL, locked_until = NULL, updated_at = now()
  FROM json_to_recordset(%(decisions)s)
       AS d(id uuid, status text, provider text, message_id text, result json, attempts int,
            last_error text, retry_in float8, route text)
 WHERE email.id = d.id AND email.locked_by = %(worker)s
RETURNING email.id;

-- name: suppressed_recipients
-- The recipients a send left out because they are on the suppression list (%(recipients)s, a
-- JSON array of mail id, address and reason), each marked suppressed with the list's reason.
INSERT INTO recipient (email_id, address, status, reason)
SELECT email_id, address, 'suppressed', reason
  FROM json_to_recordset(%(recipients)s) AS r(email_id uuid, address text, reason text)
ON CONFLICT DO NOTHING;

-- name: hand_off
-- The mails %(ids)s a provider took: every recipient starts sent (one suppressed, or moved by
-- an event that came before the send was recorded, keeps its row), then each mail is rolled up
-- from its recipients as the events' roll-up does (see events.sql, store_and_move): complained
-- if one complained, else bounced if one bounced, else delivered once every recipient is
-- delivered, unsubscribed or suppressed; only ever forward. Two statements, one round trip (the
-- roll-up sees the rows just inserted); the second answers the mails that moved, with their
-- status now.
INSERT INTO recipient (email_id, address, status)
SELECT id, unnest(recipients), 'sent' FROM email WHERE id = ANY(%(ids)s::uuid[])
ON CONFLICT DO NOTHING;
WITH said AS (
    SELECT email_id,
           CASE WHEN bool_or(status = 'complained') THEN 'complained'
                WHEN bool_or(status = 'bounced') THEN 'bounced'
                WHEN bool_and(status IN ('delivered', 'unsubscribed', 'suppressed'))
                    THEN 'delivered'
                ELSE 'sent' END AS status
      FROM recipient
     WHERE email_id = ANY(%(ids)s::uuid[])
     GROUP BY email_id
)
UPDATE email SET status = said.status, updated_at = now()
  FROM said
 WHERE email.id = said.email_id
   AND array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], email.status)
       < array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], said.status)
RETURNING email.id, email.status;

-- name: release_claimed
-- Hand the mails %(ids)s that %(worker)s claimed but did not send back to the queue, due now
-- (a graceful stop).
UPDATE email
   SET status = 'queued', locked_by = NULL, locked_until = NULL, updated_at = now()
 WHERE id = ANY(%(ids)s::uuid[]) AND locked_by = %(worker)s;

-- name: hold_claimed
-- Hand the mails %(ids)s that %(worker)s claimed but may not send yet back to the queue, due
-- again in %(seconds)s seconds (their route's providers have no token under their rate caps, or
-- are all open), so that the next claims take other mail first. No attempt is spent.
UPDATE email
   SET status = 'queued', locked_by = NULL, locked_until = NULL, updated_at = now(),
       next_attempt_at = now() + %(seconds)s * interval '1 second'
 WHERE id = ANY(%(ids)s::uuid[]) AND locked_by = %(worker)s;

-- name: reap_expired
-- Return the mails whose lease expired (their worker died mid-send) to the queue, due now, or
-- fail them once the send cut short spends the last of %(max_attempts)s; and log each
-- interrupted send as an attempt (%(outcome)s, %(error)s) by %(worker)s, who reaped it: the
-- provider may have taken the mail, so resending it makes delivery at-least-once. Answers the
-- mails reaped and their status now.
WITH reaped AS (
    UPDATE email
       SET status = CASE WHEN attempts + 1 - attempts_at_retry >= %(max_attempts)s
                         THEN 'failed' ELSE 'queued' END,
           attempts = attempts + 1, last_error = %(error)s,
           locked_by = NULL, locked_until = NULL, next_attempt_at = now(), updated_at = now()
     WHERE status = 'sending' AND locked_until < now()
    RETURNING id, attempts, status
), logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, error, worker)
    SELECT id, attempts, %(outcome)s, %(error)s, %(worker)s FROM reaped
)
SELECT id, status FROM reaped;

-- name: seconds_until_due
-- Seconds until the earliest waiting mail (queued or scheduled) falls due: negative if one is
-- due already, NULL if none waits.
SELECT extract(epoch FROM (SELECT min(next_attempt_at) FROM email
                            WHERE status IN ('queued', 'scheduled')) - now());
