-- The Mailgun signature tokens already used, shared by every API process (webhook_token).

-- name: remember
-- Keep %(token)s with the digest of its event until %(expires)s (epoch seconds). Returns the
-- stored digest: the new one if the token was not seen, else the one it signed first (ON
-- CONFLICT waits for a concurrent first use to commit, then reads it). Up to %(purge)s expired
-- tokens go in the same statement; the token itself is never among them (another clock may
-- call it fresh).
WITH expired AS (
    DELETE FROM webhook_token WHERE token IN (
        SELECT token FROM webhook_token
         WHERE expires_at < now() AND token <> %(token)s
         ORDER BY expires_at LIMIT %(purge)s
           FOR UPDATE SKIP LOCKED)
)
INSERT INTO webhook_token AS seen (token, event_digest, expires_at)
VALUES (%(token)s, %(digest)s, to_timestamp(%(expires)s))
ON CONFLICT (token) DO UPDATE SET event_digest = seen.event_digest
RETURNING event_digest;
