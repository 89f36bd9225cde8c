-- New mail: a client's (or an operator's) validated requests stored as queued, or scheduled
-- when send_at is later than the database's now() (a time in the past means now), each
-- statement all or nothing. The ids are made by the caller, so that a statement whose answer
-- was lost can run again without storing a second mail. The ids come back as text, as they
-- were sent. Each mail records its %(tenant)s, the stored key that sent it (%(api_key_id)s,
-- NULL for API_KEYS and the admin) and whether that is a %(test)s key; an Idempotency-Key
-- records the tenant too.

-- name: insert_mail
-- One mail without attachments or tags: the API's POST /mail.
INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html,
                   attempts, headers, metadata, tags, recipients, send_at, template,
                   template_version, tenant, api_key_id, test, source, status,
                   next_attempt_at)
VALUES (%(id)s, %(from_address)s, %(to_address)s, %(cc)s, %(bcc)s, %(reply_to)s, %(subject)s,
        %(text)s, %(html)s, 0, %(headers)s, %(metadata)s, %(tags)s, %(recipients)s,
        %(send_at)s, %(template)s, %(template_version)s, %(tenant)s, %(api_key_id)s::uuid,
        %(test)s, %(source)s,
        CASE WHEN %(send_at)s::timestamptz > now() THEN 'scheduled' ELSE 'queued' END,
        GREATEST(%(send_at)s::timestamptz, now()))
RETURNING id::text, created_at, status, next_attempt_at;

-- name: insert_mail_keyed
-- One mail without attachments or tags, and the client's Idempotency-Key (%(scope)s,
-- %(key)s) with the request's %(fingerprint)s and the answer it got (%(status_code)s, and
-- %(response)s: the body without what the database sets, which the key keeps beside it). A key
-- taken by a concurrent request makes this wait on the key's index until that one commits,
-- and then fail as a whole: the request replays the first one's answer.
WITH mail AS (
    INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html,
                       attempts, headers, metadata, tags, recipients, send_at, template,
                       template_version, tenant, api_key_id, test, source, status,
                       next_attempt_at)
    VALUES (%(id)s, %(from_address)s, %(to_address)s, %(cc)s, %(bcc)s, %(reply_to)s,
            %(subject)s, %(text)s, %(html)s, 0, %(headers)s, %(metadata)s, %(tags)s,
            %(recipients)s, %(send_at)s, %(template)s, %(template_version)s, %(tenant)s,
            %(api_key_id)s::uuid, %(test)s, %(source)s,
            CASE WHEN %(send_at)s::timestamptz > now() THEN 'scheduled' ELSE 'queued' END,
            GREATEST(%(send_at)s::timestamptz, now()))
    RETURNING id::text, created_at, status, next_attempt_at
), kept AS (
    INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response,
                                 mail_created_at, mail_status, mail_next_attempt_at, tenant)
    SELECT %(scope)s, %(key)s, %(fingerprint)s, %(status_code)s, %(response)s::jsonb,
           created_at, status, next_attempt_at, %(tenant)s
      FROM mail
)
SELECT id, created_at, status, next_attempt_at FROM mail;

-- name: insert_mail_tagged
-- One mail with tags, without attachments: as insert_mail, with each of its tags in mail_tag
-- (the index GET /mail?tag= reads), and the Idempotency-Key when %(key)s is not NULL (as
-- insert_mail_keyed).
WITH mail AS (
    INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html,
                       attempts, headers, metadata, tags, recipients, send_at, template,
                       template_version, tenant, api_key_id, test, source, status,
                       next_attempt_at)
    VALUES (%(id)s, %(from_address)s, %(to_address)s, %(cc)s, %(bcc)s, %(reply_to)s,
            %(subject)s, %(text)s, %(html)s, 0, %(headers)s, %(metadata)s, %(tags)s,
            %(recipients)s, %(send_at)s, %(template)s, %(template_version)s, %(tenant)s,
            %(api_key_id)s::uuid, %(test)s, %(source)s,
            CASE WHEN %(send_at)s::timestamptz > now() THEN 'scheduled' ELSE 'queued' END,
            GREATEST(%(send_at)s::timestamptz, now()))
    RETURNING id, created_at, status, next_attempt_at, tags
), tagged AS (
    INSERT INTO mail_tag (email_id, tag, created_at)
    SELECT DISTINCT id, unnest(tags), created_at FROM mail
), kept AS (
    INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response,
                                 mail_created_at, mail_status, mail_next_attempt_at, tenant)
    SELECT %(scope)s, %(key)s, %(fingerprint)s, %(status_code)s, %(response)s::jsonb,
           created_at, status, next_attempt_at, %(tenant)s
      FROM mail
     WHERE %(key)s::text IS NOT NULL
)
SELECT id::text, created_at, status, next_attempt_at FROM mail;

-- name: insert_mails
-- Any number of mails (%(mails)s, a JSON array of their columns: POST /mail/batch, and any
-- mail with attachments), with their attachments (one array per column, %(file_ids)s
-- naming each one's mail; %(content_ids)s NULL for an attached file, an inline part's
-- Content-ID otherwise), each tag of each mail in mail_tag (the index GET /mail?tag= reads),
-- and the Idempotency-Key when %(key)s is not NULL (as insert_mail_keyed, with what the
-- database set for the first mail: a batch's answer shows none of it). Each part that has
-- nothing to store stores nothing.
WITH mail AS (
    INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html,
                       attempts, headers, metadata, tags, recipients, send_at, template,
                       template_version, tenant, api_key_id, test, source, status,
                       next_attempt_at)
    SELECT m.id, m.from_address, m.to_address, m.cc, m.bcc, m.reply_to, m.subject, m.text,
           m.html, 0, m.headers, m.metadata, m.tags, m.recipients, m.send_at, m.template,
           m.template_version, m.tenant, m.api_key_id, m.test, m.source,
           CASE WHEN m.send_at > now() THEN 'scheduled' ELSE 'queued' END,
           GREATEST(m.send_at, now())
      FROM json_to_recordset(%(mails)s)
           AS m(id uuid, from_address text, to_address text[], cc text[], bcc text[],
                reply_to text, subject text, text text, html text, headers jsonb,
                metadata jsonb, tags text[], recipients text[], send_at timestamptz,
                template text, template_version int, tenant text, api_key_id uuid,
                test boolean, source text)
    RETURNING id, created_at, status, next_attempt_at, tags
), files AS (
    INSERT INTO attachment (email_id, position, filename, content_type, size, content,
                            content_id)
    SELECT * FROM unnest(%(file_ids)s::uuid[], %(positions)s::int[], %(filenames)s::text[],
                         %(content_types)s::text[], %(sizes)s::int[], %(contents)s::bytea[],
                         %(content_ids)s::text[])
), tagged AS (
    INSERT INTO mail_tag (email_id, tag, created_at)
    SELECT DISTINCT id, unnest(tags), created_at FROM mail
), kept AS (
    INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response,
                                 mail_created_at, mail_status, mail_next_attempt_at, tenant)
    SELECT %(scope)s, %(key)s, %(fingerprint)s, %(status_code)s, %(response)s::jsonb,
           created_at, status, next_attempt_at, %(tenant)s
      FROM mail
     WHERE %(key)s::text IS NOT NULL
     LIMIT 1
)
SELECT id::text, created_at, status, next_attempt_at FROM mail;

-- name: stored_mails
-- What the database set for the mails %(ids)s when it stored them (after a lost answer).
SELECT id::text, created_at, status, next_attempt_at FROM email WHERE id = ANY(%(ids)s::uuid[]);

-- name: read_key
-- The Idempotency-Key (%(scope)s, %(key)s) as kept: the request's fingerprint, the answer it
-- got and what the database set for its mail; and whether it is older than %(ttl)s seconds.
SELECT fingerprint, status_code, response, mail_created_at, mail_status, mail_next_attempt_at,
       created_at < now() - %(ttl)s * interval '1 second' AS expired
  FROM idempotency_key
 WHERE scope = %(scope)s AND key = %(key)s;

-- name: delete_key
-- Forget the Idempotency-Key (%(scope)s, %(key)s): expired, it is taken anew.
DELETE FROM idempotency_key WHERE scope = %(scope)s AND key = %(key)s;
