-- What the API lists and shows: GET /mail and GET /mail/<id>, one statement each. A listed mail
-- is read as its columns in reads.PAGE_COLUMNS order, the id as text (the answer shows it as
-- text), headers and metadata NULL when empty (shown as {} all the same, without a JSON text to
-- parse).

-- name: page
-- A page of mail, newest first, keyset-paged by (created_at, id): the first %(limit)s mails
-- created before the position (%(after_created)s, %(after_id)s) of the previous page's last one.
-- Each filter is off while its parameter is NULL (psycopg2 writes the values into the
-- statement, so the planner drops the clause): one status (%(status)s: an equality, which the
-- (status, created_at, id) index serves in the page's order), or several (%(statuses)s); a
-- recipient (%(to)s, by the GIN index of recipients); the template it was rendered from
-- (%(template)s, by ix_email_template in the page's order); the way it came in (%(source)s,
-- by ix_email_source for smtp); created after or before a time; one tenant's (%(tenant)s: the
-- tenant-leading indexes serve it, with or without one status); test mail or live mail only
-- (%(test)s: a filter on the rows the index finds).
SELECT email.id::text, email.status, email.from_address, email.to_address, email.cc, email.bcc,
       email.reply_to, email.subject, email.text, email.html, email.result, email.provider,
       email.provider_message_id, email.attempts, email.last_error, email.next_attempt_at,
       email.send_at, NULLIF(email.headers, jsonb_build_object()),
       NULLIF(email.metadata, jsonb_build_object()), email.tags, email.created_at,
       email.updated_at, email.sent_at, email.template, email.template_version, email.tenant,
       email.api_key_id::text, email.test, email.source
  FROM email
 WHERE (%(status)s::text IS NULL OR email.status = %(status)s)
   AND (%(statuses)s::text[] IS NULL OR email.status = ANY(%(statuses)s::text[]))
   AND (%(to)s::text IS NULL OR email.recipients @> ARRAY[%(to)s::text])
   AND (%(tenant)s::text IS NULL OR email.tenant = %(tenant)s)
   AND (%(test)s::boolean IS NULL OR email.test = %(test)s)
   AND (%(template)s::text IS NULL OR email.template = %(template)s)
   AND (%(source)s::text IS NULL OR email.source = %(source)s)
   AND (%(created_after)s::timestamptz IS NULL OR email.created_at > %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR email.created_at < %(created_before)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR (email.created_at, email.id) < (%(after_created)s, %(after_id)s::uuid))
 ORDER BY email.created_at DESC, email.id DESC
 LIMIT %(limit)s;

-- name: page_by_tag
-- As page, of the mails tagged %(tag)s: read from mail_tag, whose index (tag, created_at, id)
-- holds each tagged mail's created_at beside its id, in the page's order.
SELECT email.id::text, email.status, email.from_address, email.to_address, email.cc, email.bcc,
       email.reply_to, email.subject, email.text, email.html, email.result, email.provider,
       email.provider_message_id, email.attempts, email.last_error, email.next_attempt_at,
       email.send_at, NULLIF(email.headers, jsonb_build_object()),
       NULLIF(email.metadata, jsonb_build_object()), email.tags, email.created_at,
       email.updated_at, email.sent_at, email.template, email.template_version, email.tenant,
       email.api_key_id::text, email.test, email.source
  FROM mail_tag
  JOIN email ON email.id = mail_tag.email_id
 WHERE mail_tag.tag = %(tag)s
   AND (%(status)s::text IS NULL OR email.status = %(status)s)
   AND (%(statuses)s::text[] IS NULL OR email.status = ANY(%(statuses)s::text[]))
   AND (%(to)s::text IS NULL OR email.recipients @> ARRAY[%(to)s::text])
   AND (%(tenant)s::text IS NULL OR email.tenant = %(tenant)s)
   AND (%(test)s::boolean IS NULL OR email.test = %(test)s)
   AND (%(template)s::text IS NULL OR email.template = %(template)s)
   AND (%(source)s::text IS NULL OR email.source = %(source)s)
   AND (%(created_after)s::timestamptz IS NULL OR mail_tag.created_at > %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR mail_tag.created_at < %(created_before)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR (mail_tag.created_at, mail_tag.email_id) < (%(after_created)s, %(after_id)s::uuid))
 ORDER BY mail_tag.created_at DESC, mail_tag.email_id DESC
 LIMIT %(limit)s;

-- name: mail_detail
-- The mail %(id)s (of %(tenant)s, unless it is NULL) and everything its answer shows, in one
-- statement: its columns as page reads them, its recipients and route, and each list of its child rows as one array per column, in the
-- order the answer lists them (attachments by position, the attempt log by id, recipients by
-- address, the events oldest first by the provider's clock); of the events only the latest
-- %(events_shown)s (NULL: all), and how many there are; then its replies (the received mail
-- linked to it that is no automatic reply, by ix_inbound_reply), the latest %(replies_shown)s,
-- oldest first, and how many there are.
SELECT email.id::text, email.status, email.from_address, email.to_address, email.cc, email.bcc,
       email.reply_to, email.subject, email.text, email.html, email.result, email.provider,
       email.provider_message_id, email.attempts, email.last_error, email.next_attempt_at,
       email.send_at, NULLIF(email.headers, jsonb_build_object()),
       NULLIF(email.metadata, jsonb_build_object()), email.tags, email.created_at,
       email.updated_at, email.sent_at, email.template, email.template_version, email.tenant,
       email.api_key_id::text, email.test, email.source, email.recipients, email.route,
       attachments.*, attempts.*, recipients.*, events.*, replies.*,
       (SELECT count(*) FROM delivery_event WHERE email_id = email.id),
       (SELECT count(*) FROM inbound WHERE in_reply_to_mail_id = email.id AND NOT auto_reply)
  FROM email
 CROSS JOIN LATERAL (
       SELECT array_agg(filename ORDER BY position), array_agg(content_type ORDER BY position),
              array_agg(size ORDER BY position), array_agg(content_id ORDER BY position)
         FROM attachment WHERE email_id = email.id) AS attachments
 CROSS JOIN LATERAL (
       SELECT array_agg(number ORDER BY id), array_agg(provider ORDER BY id),
              array_agg(outcome ORDER BY id), array_agg(status_code ORDER BY id),
              array_agg(response ORDER BY id), array_agg(error ORDER BY id),
              array_agg(duration_ms ORDER BY id), array_agg(actor ORDER BY id),
              array_agg(created_at ORDER BY id)
         FROM delivery_attempt WHERE email_id = email.id) AS attempts
 CROSS JOIN LATERAL (
       SELECT array_agg(address ORDER BY address), array_agg(status ORDER BY address),
              array_agg(reason ORDER BY address), array_agg(updated_at ORDER BY address)
         FROM recipient WHERE email_id = email.id) AS recipients
 CROSS JOIN LATERAL (
       SELECT array_agg(type ORDER BY occurred_at, id), array_agg(provider ORDER BY occurred_at, id),
              array_agg(provider_event ORDER BY occurred_at, id),
              array_agg(recipient ORDER BY occurred_at, id),
              array_agg(severity ORDER BY occurred_at, id),
              array_agg(reason ORDER BY occurred_at, id),
              array_agg(occurred_at ORDER BY occurred_at, id),
              array_agg(received_at ORDER BY occurred_at, id)
         FROM (SELECT * FROM delivery_event WHERE email_id = email.id
                ORDER BY occurred_at DESC, id DESC LIMIT %(events_shown)s) AS shown) AS events
 CROSS JOIN LATERAL (
       SELECT array_agg(id ORDER BY received_at, id),
              array_agg(coalesce(from_address, envelope_from) ORDER BY received_at, id),
              array_agg(subject ORDER BY received_at, id),
              array_agg(received_at ORDER BY received_at, id)
         FROM (SELECT * FROM inbound WHERE in_reply_to_mail_id = email.id AND NOT auto_reply
                ORDER BY received_at DESC, id DESC LIMIT %(replies_shown)s) AS shown) AS replies
 WHERE email.id = %(id)s AND (%(tenant)s::text IS NULL OR email.tenant = %(tenant)s);

-- name: events_page
-- A page of the mail %(id)s's events, oldest first by the providers' clocks, after the
-- position (%(after_at)s, %(after_id)s); a mail without events has one row of NULLs, an unknown
-- mail (or one of another tenant than %(tenant)s, unless it is NULL) none. The
-- ix_delivery_event_email index serves every page.
SELECT shown.id, shown.type, shown.provider, shown.provider_event, shown.recipient,
       shown.severity, shown.reason, shown.occurred_at, shown.received_at
  FROM email
  LEFT JOIN LATERAL (
       SELECT * FROM delivery_event
        WHERE email_id = email.id AND (occurred_at, id) > (%(after_at)s, %(after_id)s)
        ORDER BY occurred_at, id LIMIT %(limit)s) AS shown ON true
 WHERE email.id = %(id)s AND (%(tenant)s::text IS NULL OR email.tenant = %(tenant)s)
 ORDER BY shown.occurred_at, shown.id;

-- name: database_now
-- The database's clock, which every lease and schedule is compared with.
SELECT now();

-- name: recipient_reasons
-- Each recipient with a reason (a bounce, a complaint, a suppression) of the mails
-- %(ids)s, by mail and address: the admin's CSV export shows them beside each mail.
SELECT email_id, address, status, reason
  FROM recipient
 WHERE email_id = ANY(%(ids)s::uuid[]) AND reason IS NOT NULL
 ORDER BY email_id, address;
