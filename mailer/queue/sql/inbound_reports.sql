-- Bounce reports received as mail, applied to the mail they return (inbound_reports.py): the
-- recipients they give up on become bounced through the providers' event path (events.sql).

-- name: lock_reported_mails
-- The mails of %(ids)s that a provider took (status one of %(handed_off)s: a report of a mail
-- never sent is no one's), each with the provider that took it and the addresses it was sent
-- to, locked in id order as lock_for_events locks them (record_events locks them again, in the
-- same transaction).
SELECT id::text AS mail_id, provider, recipients
  FROM email
 WHERE id = ANY(%(ids)s::uuid[])
   AND status = ANY(%(handed_off)s::text[])
   AND provider IS NOT NULL
 ORDER BY id
   FOR UPDATE;

-- name: recipient_statuses
-- The status of each of %(addresses)s among the recipients of mail %(mail_id)s; an address
-- with no row yet has none.
SELECT address, status
  FROM recipient
 WHERE email_id = %(mail_id)s::uuid AND address = ANY(%(addresses)s::text[]);
