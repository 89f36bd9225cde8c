"""``Idempotency-Key`` on ``POST /mail`` and ``POST /mail/batch`` (the IETF draft, as Stripe).

A client that retries after a network failure sends the same key again; the same key with the
same request answers the first answer again (``Idempotent-Replayed: true``) and stores
nothing new, the same key with another request is a 422. Keys are scoped per API key (one
scope in protected mode) and kept for ``IDEMPOTENCY_TTL`` seconds. The key is taken in the
statement that stores the mail (``submit.enqueue_many``): concurrent repeats wait for the
first and replay it, and a request that fails validation takes no key.
"""

from flask import current_app, g, request

from mailer.api.auth import presented_api_key
from mailer.api.errors import ApiError
from mailer.idempotency import (
    HEADER,
    INVALID_KEY,
    VALID_KEY,
    fingerprint_of,
    key_scope,
)
from mailer.idempotency import (
    LOCAL_SCOPE as LOCAL_SCOPE,  # re-exported: resources.actor reads it here
)
from mailer.queue.submit import Idempotency

REPLAYED = "Idempotent-Replayed"


def requested(clean):
    """The request's ``Idempotency`` (key, scope, fingerprint), or None without the header."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not VALID_KEY.match(key):
        raise ApiError(
            400,
            INVALID_KEY,
            [{"field": HEADER, "message": "1-255 printable ASCII characters"}],
        )
    return Idempotency(scope(), key, fingerprint(clean), current_app.config["IDEMPOTENCY_TTL"])


def scope():
    """Whose key it is: a stored key's id, a digest of an ``API_KEYS`` key (never the key
    itself), or protected mode's."""
    principal = g.get("principal")  # None outside an authenticated request
    api_key = presented_api_key() if current_app.config["API_KEYS"] else None
    return key_scope(principal and principal.key_id, api_key)


def fingerprint(clean):
    """A digest of the parsed, validated request: the same mail however it was encoded."""
    return fingerprint_of(request.path, clean)


def conflict(key):
    """The 422 for a key that came before with another request."""
    return ApiError(
        422,
        f"This {HEADER} was used with a different request",
        [
            {
                "field": HEADER,
                "message": f"{key!r} was already used with another "
                "body; use a new key for a new request",
            }
        ],
    )
