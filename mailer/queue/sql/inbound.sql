-- Inbound mail (inbound, inbound_attachment): a received mail stored once per delivery, the
-- mail of ours it answers, and what the API and the admin read of it; the purge.

-- name: replied_mails
-- The mails a received mail may answer: by our id (%(ids)s, the local parts of its In-Reply-To
-- and References that are UUIDs) or by the provider's message id (%(message_ids)s, for a
-- provider that wrote its own Message-ID). FOR KEY SHARE: the mail stays until the reply that
-- names it commits (a purge running meanwhile waits), and a mail a purge deleted is not found.
SELECT id, tenant, provider_message_id
  FROM email
 WHERE id = ANY(%(ids)s::uuid[]) OR provider_message_id = ANY(%(message_ids)s::text[])
   FOR KEY SHARE;

-- name: insert
-- Store a received mail, unless the same delivery (%(source)s, %(delivery_id)s) or the same
-- Message-ID (%(message_id)s) is stored already: then nothing (the unique indexes decide, and a
-- concurrent insert of the same is waited for). received_at is the database's clock.
INSERT INTO inbound (source, delivery_id, envelope_from, envelope_to, from_address, to_address,
                     cc, subject, text, html, stripped_text, headers, message_id, in_reply_to,
                     reference_ids, spam_score, spam_verdict, auto_reply, in_reply_to_mail_id,
                     tenant, recipients, sender)
VALUES (%(source)s, %(delivery_id)s, %(envelope_from)s, %(envelope_to)s::text[],
        %(from_address)s, %(to_address)s::text[], %(cc)s::text[], %(subject)s, %(text)s,
        %(html)s, %(stripped_text)s, %(headers)s::jsonb, %(message_id)s, %(in_reply_to)s,
        %(reference_ids)s::text[], %(spam_score)s, %(spam_verdict)s, %(auto_reply)s,
        %(in_reply_to_mail_id)s::uuid, %(tenant)s, %(recipients)s::text[], %(sender)s)
ON CONFLICT DO NOTHING
RETURNING id, in_reply_to_mail_id, auto_reply;

-- name: stored_before
-- The record a replay met: the same delivery (%(source)s, %(delivery_id)s), or the same
-- Message-ID (%(message_id)s).
SELECT id, in_reply_to_mail_id, auto_reply
  FROM inbound
 WHERE (source = %(source)s AND delivery_id = %(delivery_id)s)
    OR message_id = %(message_id)s
 LIMIT 1;

-- name: insert_attachments
-- The attachments of the received mail %(id)s, one array per column, in the order received;
-- content NULL for one that was dropped (dropped says why).
INSERT INTO inbound_attachment (inbound_id, position, filename, content_type, content_id, size,
                                content, dropped)
SELECT %(id)s::uuid, * FROM unnest(%(positions)s::int[], %(filenames)s::text[],
                                   %(content_types)s::text[], %(content_ids)s::text[],
                                   %(sizes)s::int[], %(contents)s::bytea[], %(dropped)s::text[]);

-- name: page
-- A page of received mail, newest first, keyset-paged by (received_at, id): the first
-- %(limit)s before the position (%(after_received)s, %(after_id)s) of the previous page's last.
-- Each filter is off while its parameter is NULL: a tenant's (%(tenant)s, by
-- ix_inbound_tenant_received), sent to an address (%(to)s: envelope, To or Cc, by the GIN index
-- of recipients), from an address (%(sender)s, by ix_inbound_sender), answering a mail of ours
-- (%(in_reply_to)s, by ix_inbound_reply).
SELECT id, received_at, source, coalesce(from_address, envelope_from) AS from_address,
       to_address, cc, subject, message_id, in_reply_to_mail_id, auto_reply, tenant,
       spam_score, spam_verdict
  FROM inbound
 WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
   AND (%(to)s::text IS NULL OR recipients @> ARRAY[%(to)s::text])
   AND (%(sender)s::text IS NULL OR sender = %(sender)s)
   AND (%(in_reply_to)s::uuid IS NULL OR in_reply_to_mail_id = %(in_reply_to)s::uuid)
   AND (%(after_received)s::timestamptz IS NULL
        OR (received_at, id) < (%(after_received)s, %(after_id)s::uuid))
 ORDER BY received_at DESC, id DESC
 LIMIT %(limit)s;

-- name: detail
-- The received mail %(id)s (of %(tenant)s, unless it is NULL) with everything but its
-- attachments' bytes: each attachment's position, name, type, content id, size, why it was
-- dropped and where its bytes are (none if dropped), in order, as one JSON array.
SELECT id, received_at, source, delivery_id, envelope_from, envelope_to,
       coalesce(from_address, envelope_from) AS from_address, to_address, cc, subject, text,
       html, stripped_text, headers, message_id, in_reply_to, reference_ids, spam_score,
       spam_verdict, auto_reply, in_reply_to_mail_id, tenant,
       (SELECT coalesce(json_agg(json_build_object(
                   'position', position, 'filename', filename, 'content_type', content_type,
                   'content_id', content_id, 'size', size, 'dropped', dropped,
                   'url', CASE WHEN dropped IS NULL
                               THEN '/inbound/' || inbound_id || '/attachments/' || position
                          END)
                   ORDER BY position), '[]'::json)
          FROM inbound_attachment WHERE inbound_id = inbound.id) AS attachments
  FROM inbound
 WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s);

-- name: attachment
-- The attachment at %(position)s of the received mail %(id)s (of %(tenant)s, unless it is
-- NULL), with its bytes (NULL if it was dropped).
SELECT attachment.filename, attachment.content_type, attachment.content, attachment.dropped
  FROM inbound_attachment AS attachment
  JOIN inbound ON inbound.id = attachment.inbound_id
 WHERE attachment.inbound_id = %(id)s AND attachment.position = %(position)s
   AND (%(tenant)s::text IS NULL OR inbound.tenant = %(tenant)s);

-- name: purge
-- Delete up to %(batch_size)s received mails that came more than %(days)s days ago, by
-- ix_inbound_received; their attachments and mail.received webhooks go with them (ON DELETE
-- CASCADE).
DELETE FROM inbound
 WHERE id IN (SELECT id FROM inbound
               WHERE received_at < now() - %(days)s * interval '24 hours'
               LIMIT %(batch_size)s);

-- name: count_purgeable
-- How many received mails came more than %(days)s days ago.
SELECT count(*) FROM inbound WHERE received_at < now() - %(days)s * interval '24 hours';
