-- A tenant's client webhook endpoints: each with its URL, the event types it takes (empty:
-- every one), its secret (whsec_..., which signs what it is sent) and whether it is disabled.
-- A deleted endpoint keeps its row, its secret blanked, so that its webhooks still name it.
-- Only create answers the secret.

-- name: create
-- A new endpoint %(id)s of %(tenant)s: %(url)s, %(events)s, signed with %(secret)s.
INSERT INTO webhook_endpoint (id, tenant, url, events, secret, created_by)
VALUES (%(id)s, %(tenant)s, %(url)s, %(events)s, %(secret)s, %(created_by)s)
RETURNING id, tenant, url, events, disabled, created_at, updated_at, secret;

-- name: page
-- A page of live endpoints, newest first, keyset-paged by (created_at, id): the first
-- %(limit)s after the position (%(after_created)s, %(after_id)s); of %(tenant)s, unless it is
-- NULL (every tenant's). Never the secret.
SELECT id, tenant, url, events, disabled, created_at, updated_at
  FROM webhook_endpoint
 WHERE deleted_at IS NULL
   AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
   AND (%(after_created)s::timestamptz IS NULL
        OR (created_at, id) < (%(after_created)s, %(after_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s;

-- name: get
-- The live endpoint %(id)s (of %(tenant)s, unless it is NULL), without its secret.
SELECT id, tenant, url, events, disabled, created_at, updated_at
  FROM webhook_endpoint
 WHERE id = %(id)s AND deleted_at IS NULL
   AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s);

-- name: update
-- Change the live endpoint %(id)s (of %(tenant)s, unless it is NULL): its url, events and
-- disabled where given (NULL: unchanged). Answers it as it now is, without its secret.
UPDATE webhook_endpoint
   SET url = coalesce(%(url)s, url), events = coalesce(%(events)s::text[], events),
       disabled = coalesce(%(disabled)s, disabled), updated_at = now()
 WHERE id = %(id)s AND deleted_at IS NULL
   AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
RETURNING id, tenant, url, events, disabled, created_at, updated_at;

-- name: delete
-- Delete the live endpoint %(id)s (of %(tenant)s, unless it is NULL): marked deleted, its
-- secret blanked; its webhooks not delivered yet are given up. Answers its id if it was live.
WITH deleted AS (
    UPDATE webhook_endpoint
       SET deleted_at = now(), updated_at = now(), secret = '', disabled = true
     WHERE id = %(id)s AND deleted_at IS NULL
       AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
    RETURNING id
), given_up AS (
    UPDATE webhook_outbox
       SET status = 'failed', last_error = 'endpoint deleted', locked_until = NULL
     WHERE endpoint_id IN (SELECT id FROM deleted) AND status = 'pending'
)
SELECT id FROM deleted;
