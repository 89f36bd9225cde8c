-- Waking idle workers with LISTEN/NOTIFY on the channel mail_queued (notify.CHANNEL). The
-- email table's trigger (migration 0002) notifies it when a transaction that inserted mail
-- commits.

-- name: listen
-- This session hears mail_queued from now on.
LISTEN mail_queued;

-- name: wake_workers
-- Wake the idle workers now, when the transaction commits (mail made due by other means than
-- an INSERT).
SELECT pg_notify('mail_queued', '');
