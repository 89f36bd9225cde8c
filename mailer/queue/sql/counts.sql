-- Operators' numbers, cheap at any size of the table. The number of mails in each status is
-- kept by the database itself (migration 0007): statement-level triggers append each
-- statement's net change per status to email_status_count, so a count is a sum over a few
-- rows, never a COUNT over email, and concurrent inserts never wait on one counter row.

-- name: status_counts
-- How many mails are in each status that has a row in the ledger.
SELECT status, sum(n)::bigint FROM email_status_count GROUP BY status;

-- name: mail_count
-- How many mails, live and test, are in one of the statuses %(statuses)s: the ledger's sum for
-- the live mail (it counts nothing else since migration 0017) and the test mail counted through
-- its own partial index (ix_email_test, which holds test mail only).
SELECT coalesce((SELECT sum(n) FROM email_status_count WHERE status = ANY(%(statuses)s)), 0)
       + (SELECT count(*) FROM email WHERE test AND status = ANY(%(statuses)s));

-- name: fold_status_counts
-- Fold the ledger to one row per status. Only one fold at a time (a second one skips: two
-- DELETEs of the same rows in different orders could deadlock), by the advisory lock 70070001.
-- Rows appended while it runs are not in its snapshot and stay.
WITH folded AS (
    DELETE FROM email_status_count WHERE (SELECT pg_try_advisory_xact_lock(70070001))
    RETURNING status, n
)
INSERT INTO email_status_count (status, n)
SELECT status, sum(n) FROM folded GROUP BY status HAVING sum(n) <> 0;

-- name: oldest_due_age
-- Seconds since the oldest due mail (queued, or scheduled and due) fell due, or NULL: how far
-- behind the workers are. The claim's partial index (ix_email_due) finds it in one probe.
SELECT extract(epoch FROM now() - min(next_attempt_at))
  FROM email
 WHERE status IN ('queued', 'scheduled') AND next_attempt_at <= now();
