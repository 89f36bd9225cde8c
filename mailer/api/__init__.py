"""The REST API: resources, request bodies, listing, idempotency, errors, auth, health and the
OpenAPI document. It reads and changes mail only through ``mailer.queue``."""
