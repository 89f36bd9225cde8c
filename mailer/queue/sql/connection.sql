-- The connection itself.

-- name: ping
-- Whether the connection answers (after an error that may mean it is gone: see
-- queries.fetch_all).
SELECT 1;
