-- Operators' and clients' actions on mail. Each changes only the mails its rule allows, in one
-- statement that re-checks the status (a worker may have moved the mail since the page was
-- drawn), and logs an attempt-log row per mail changed with who did it (%(actor)s) and what
-- (%(outcome)s): the mail's page shows who did what, and when. A client's retry and cancel
-- change only its own tenant's mail (%(tenant)s; NULL: any tenant's).

-- name: retry
-- Queue the failed or cancelled mails %(ids)s again, due now, with a fresh budget: attempts
-- keep counting (the log never shows two "#1"), while the budget of MAX_ATTEMPTS and MAX_AGE
-- starts again from now (retried_at, attempts_at_retry). Answers the mails queued.
WITH retried AS (
    UPDATE email
       SET status = 'queued', next_attempt_at = now(), last_error = NULL, retried_at = now(),
           attempts_at_retry = attempts, updated_at = now()
     WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('failed', 'cancelled')
       AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
    RETURNING id, attempts
), logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor)
    SELECT id, attempts, %(outcome)s, %(actor)s FROM retried
)
SELECT id FROM retried;

-- name: cancel
-- Cancel the mails %(ids)s that no worker has taken yet (queued or scheduled). A worker's
-- claim locks the row first (then this finds it sending and changes nothing) or waits for this
-- to commit (then finds it cancelled): a mail ends cancelled and never sent, or sent and not
-- cancelled. Answers the mails cancelled.
WITH cancelled AS (
    UPDATE email
       SET status = 'cancelled', updated_at = now(), next_attempt_at = now()
     WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('queued', 'scheduled')
       AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
    RETURNING id, attempts
), logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor)
    SELECT id, attempts, %(outcome)s, %(actor)s FROM cancelled
)
SELECT id FROM cancelled;

-- name: release_stuck
-- Hand the mails %(ids)s stuck in sending back to the queue, due now: their lease expired, or
-- (when %(alive)s, the names of the workers alive now, is not NULL) their worker is gone. As
-- the reaper does, the send cut short counts as an attempt, and one that spends the last of
-- %(max_attempts)s (when not NULL) fails the mail; the log row says %(error)s. Mail of a live
-- worker with a lease still running is left alone. Answers the mails released.
WITH released AS (
    UPDATE email
       SET status = CASE WHEN attempts + 1 - attempts_at_retry >= %(max_attempts)s::int
                         THEN 'failed' ELSE 'queued' END,
           attempts = attempts + 1, last_error = %(error)s, locked_by = NULL,
           locked_until = NULL, next_attempt_at = now(), updated_at = now()
     WHERE id = ANY(%(ids)s::uuid[]) AND status = 'sending'
       AND (locked_until < now()
            OR (%(alive)s::text[] IS NOT NULL
                AND (locked_by IS NULL OR locked_by <> ALL(%(alive)s::text[]))))
    RETURNING id, attempts
), logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor, error)
    SELECT id, attempts, %(outcome)s, %(actor)s, %(error)s FROM released
)
SELECT id FROM released;

-- name: send_now
-- Make the mails %(ids)s that wait for their time (a backoff after a failure, or a schedule)
-- due now: only mail not yet due changes; it becomes queued and the next claim takes it.
-- Answers the mails changed.
WITH hurried AS (
    UPDATE email
       SET status = 'queued', next_attempt_at = now(), updated_at = now()
     WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('queued', 'scheduled')
       AND next_attempt_at > now()
    RETURNING id, attempts
), logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor)
    SELECT id, attempts, %(outcome)s, %(actor)s FROM hurried
)
SELECT id FROM hurried;

-- name: resend
-- Send the mails %(old)s a provider already took (sent, delivered, bounced or complained)
-- again, each as a NEW mail, its id the one at the same place in %(new)s: the same sender,
-- recipients, body, headers, tags, metadata and attachments (inline parts keep their
-- Content-ID), queued now with a fresh budget.
-- The original keeps its history. Each side's log names the other mail (%(resent)s on the
-- original, %(resent_from)s on the copy). The copies' tags go into mail_tag, as a
-- submission's do; a copy belongs to the original's tenant and key. Answers the copies made.
WITH pair AS (
    SELECT * FROM unnest(%(old)s::uuid[], %(new)s::uuid[]) AS pair(old_id, new_id)
), copied AS (
    INSERT INTO email (id, status, attempts, next_attempt_at, from_address, to_address, cc, bcc,
                       reply_to, subject, text, html, headers, metadata, tags, recipients,
                       tenant, api_key_id, test)
    SELECT pair.new_id, 'queued', 0, now(), e.from_address, e.to_address, e.cc, e.bcc,
           e.reply_to, e.subject, e.text, e.html, e.headers, e.metadata, e.tags, e.recipients,
           e.tenant, e.api_key_id, e.test
      FROM email AS e
      JOIN pair ON e.id = pair.old_id
     WHERE e.status IN ('sent', 'delivered', 'bounced', 'complained')
    RETURNING id, tags, created_at
), made AS (
    SELECT pair.* FROM pair WHERE pair.new_id IN (SELECT id FROM copied)
), tagged AS (
    INSERT INTO mail_tag (email_id, tag, created_at)
    SELECT DISTINCT id, unnest(tags), created_at FROM copied
), files AS (
    INSERT INTO attachment (email_id, position, filename, content_type, size, content,
                            content_id)
    SELECT made.new_id, a.position, a.filename, a.content_type, a.size, a.content, a.content_id
      FROM attachment AS a
      JOIN made ON a.email_id = made.old_id
), original_logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor, response, error)
    SELECT e.id, e.attempts, %(resent)s, %(actor)s,
           jsonb_build_object('resent_as', made.new_id)::json, 'resent as ' || made.new_id
      FROM email AS e
      JOIN made ON e.id = made.old_id
), copy_logged AS (
    INSERT INTO delivery_attempt (email_id, number, outcome, actor, response, error)
    SELECT made.new_id, 0, %(resent_from)s, %(actor)s,
           jsonb_build_object('resent_from', made.old_id)::json, 'a resend of ' || made.old_id
      FROM made
)
SELECT id FROM copied;
