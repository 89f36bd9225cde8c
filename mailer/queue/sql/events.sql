-- After the hand-off: the providers' events move each recipient forward, and each mail with
-- its recipients (the roll-up). A recipient's status only moves forward, in the order
-- sent, deferred, delivered, bounced, unsubscribed, complained (models.RECIPIENT_ORDER); a
-- suppressed recipient, not in it, never moves. A mail only moves forward too, in the order
-- sent, delivered, bounced, complained (models.HANDED_OFF).

-- name: lock_for_events
-- The mails of a batch of events, found by our id (%(ids)s) or by the provider's message id
-- (%(message_ids)s), locked in id order: an event waits while a worker records the send of its
-- mail, so that the roll-up never sees half of a mail's recipients. Each with the recipients it
-- was sent to, its tenant (whose suppression list its bounces go on) and whether it is test
-- mail.
SELECT id::text AS mail_id, recipients, provider_message_id, tenant, test
  FROM email
 WHERE id = ANY(%(ids)s::uuid[]) OR provider_message_id = ANY(%(message_ids)s::text[])
 ORDER BY id
   FOR UPDATE;

-- name: store_and_move
-- Store a batch of events (%(events)s, a JSON array, one object per event, n its position from
-- 1; %(payloads)s the JSON array of their payloads, in the same order), move their recipients
-- and roll their mails up, in one statement. Run once the mails are locked (lock_for_events):
-- its snapshot then sees every recipient a worker's send committed before. Its parts:
-- - item: the events; moves_to is the status an event moves its recipient to (NULL: none: an
--   open, or an address the mail was not sent to), fanout the number of addresses its mail
--   was sent to, live whether the mail is live (not test mail);
-- - fresh: the events not stored before (a repeat meets the dedup index and is skipped), in
--   the batch's order (the ids, the timeline's tie-break, follow it); fresh_item: their items,
--   found once for what follows (one hash of the batch, rather than each part that filters
--   the items first looking each up among the fresh events); news: those that move a
--   recipient;
-- - moves: each recipient's furthest status among the new events (the last of equals);
-- - moved: the recipients that moved (a recipient keeps its status unless the new one comes
--   later);
-- - said, then rolled: each mail of a moved recipient, rolled up: complained if one recipient
--   complained, else bounced if one bounced, else delivered once every recipient is delivered,
--   unsubscribed or suppressed; only ever forward. All parts see the same snapshot, so said
--   reads the mail's recipients from moved and from the rows that did not move. A mail sent to
--   one address has no row but the one that moved: the table is read only for the others;
-- - counted: the new delivered, bounced, deferred and complained events added to the
--   per-minute counts of their provider and recipient domain (deliverability; of live mail
--   only: test mail's never steer the guard), by the minute
--   they occurred in (never later than now), in key order so that two batches never wait on
--   each other's rows in a circle;
-- - reported: what the client hears of (when %(report)s, and an endpoint may take webhooks:
--   the settings' one, %(settings)s, or a tenant's live one; with none, nothing is built and
--   the outbox need not be asked): each moved recipient that is now
--   delivered, bounced or complained, in the order of its first new event; and each mail the
--   roll-up moved with no recipient of its new status among those (the last of its recipients
--   unsubscribed), with no recipient, after its mail's recipients.
-- It answers the number of new events, the positions of the new events that suppress their
-- recipient (a bounce, a complaint, an unsubscribe), and the reported webhooks as a JSON array
-- of [mail id, recipient, status, reason].
WITH item AS (
    SELECT *
      FROM json_to_recordset(%(events)s)
           AS item(n int, email_id uuid, provider text, dedup_key text, type text,
                   provider_event text, recipient text, severity text, reason text,
                   occurred_at timestamptz, moves_to text, fanout int, live boolean)
), fresh AS (
    INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event, recipient,
                                severity, reason, occurred_at, payload)
    SELECT email_id, provider, dedup_key, type, provider_event, recipient, severity, reason,
           occurred_at, CAST(%(payloads)s AS jsonb) -> (n - 1)
      FROM item
     ORDER BY n
    ON CONFLICT (provider, dedup_key) DO NOTHING
    RETURNING provider, dedup_key
), fresh_item AS MATERIALIZED (
    SELECT * FROM item WHERE (provider, dedup_key) IN (SELECT provider, dedup_key FROM fresh)
), news AS (
    SELECT * FROM fresh_item WHERE moves_to IS NOT NULL
), moves AS (
    SELECT DISTINCT ON (email_id, recipient) email_id, recipient AS address,
           moves_to AS status, reason, fanout,
           min(n) OVER (PARTITION BY email_id, recipient) AS first
      FROM news
     ORDER BY email_id, recipient,
              array_position(ARRAY['sent', 'deferred', 'delivered', 'bounced', 'unsubscribed',
                                   'complained'], moves_to) DESC,
              n DESC
), moved AS (
    INSERT INTO recipient (email_id, address, status, reason)
    SELECT email_id, address, status, reason FROM moves ORDER BY first
    ON CONFLICT (email_id, address) DO UPDATE
       SET status = excluded.status, reason = excluded.reason, updated_at = now()
     WHERE array_position(ARRAY['sent', 'deferred', 'delivered', 'bounced', 'unsubscribed',
                                'complained'], recipient.status)
           < array_position(ARRAY['sent', 'deferred', 'delivered', 'bounced', 'unsubscribed',
                                  'complained'], excluded.status)
    RETURNING email_id, address, status, reason
), said AS (
    SELECT email_id,
           CASE WHEN bool_or(status = 'complained') THEN 'complained'
                WHEN bool_or(status = 'bounced') THEN 'bounced'
                WHEN bool_and(status IN ('delivered', 'unsubscribed', 'suppressed'))
                    THEN 'delivered'
                ELSE 'sent' END AS status
      FROM (SELECT email_id, status FROM moved
            UNION ALL
            SELECT email_id, status FROM recipient
             WHERE email_id IN (SELECT email_id FROM moves WHERE fanout > 1)
               AND (email_id, address) NOT IN (SELECT email_id, address FROM moved)) AS now
     GROUP BY email_id
), rolled AS (
    UPDATE email SET status = said.status, updated_at = now()
      FROM said
     WHERE email.id = said.email_id
       AND array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], email.status)
           < array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], said.status)
    RETURNING email.id, email.status
), counted AS (
    INSERT INTO deliverability AS d (minute, provider, domain, delivered, bounced, deferred,
                                     complained)
    SELECT date_trunc('minute', least(coalesce(occurred_at, now()), now())) AS minute,
           provider, lower(substring(recipient FROM '[^@]*$')) AS domain,
           count(*) FILTER (WHERE type = 'delivered'), count(*) FILTER (WHERE type = 'bounced'),
           count(*) FILTER (WHERE type = 'deferred'), count(*) FILTER (WHERE type = 'complained')
      FROM fresh_item
     WHERE type IN ('delivered', 'bounced', 'deferred', 'complained')
       AND live
       AND strpos(recipient, '@') > 0
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (minute, provider, domain) DO UPDATE
       SET delivered = d.delivered + excluded.delivered, bounced = d.bounced + excluded.bounced,
           deferred = d.deferred + excluded.deferred,
           complained = d.complained + excluded.complained
), reported AS (
    SELECT moved.email_id, moved.address, moved.status, moved.reason, moves.first,
           0 AS after_recipients
      FROM moved JOIN moves USING (email_id, address)
     WHERE moved.status IN ('delivered', 'bounced', 'complained')
    UNION ALL
    SELECT rolled.id, NULL, rolled.status, NULL,
           (SELECT min(first) FROM moves WHERE moves.email_id = rolled.id), 1
      FROM rolled
     WHERE NOT EXISTS (SELECT 1 FROM moved
                        WHERE moved.email_id = rolled.id AND moved.status = rolled.status)
)
SELECT (SELECT count(*) FROM fresh),
       ARRAY(SELECT n FROM news WHERE type IN ('bounced', 'complained', 'unsubscribed')
              ORDER BY n),
       (SELECT json_agg(json_build_array(email_id, address, status, reason)
                        ORDER BY first, after_recipients)
          FROM reported
         WHERE %(report)s
           AND (%(settings)s
                OR EXISTS (SELECT FROM webhook_endpoint WHERE deleted_at IS NULL AND NOT disabled)));
