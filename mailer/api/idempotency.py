"""``Idempotency-Key`` on ``POST /mail`` and ``POST /mail/batch`` (the IETF draft, as Stripe).

A client that retries after a network failure sends the same key again; the same key with the
same request answers the first answer again (``Idempotent-Replayed: true``) and stores
nothing new, the same key with another request is a 422. Keys are scoped per API key (one
scope in protected mode) and kept for ``IDEMPOTENCY_TTL`` seconds. The key is taken in the
statement that stores the mail (``submit.enqueue_many``): concurrent repeats wait for the
first and replay it, and a request that fails validation takes no key.
"""

import base64
import functools
import hashlib
import json
import re

from flask import current_app, g, request

from mailer.api.auth import presented_api_key
from mailer.api.errors import ApiError
from mailer.queue.submit import Idempotency

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}\Z")  # printable ASCII, 1-255 characters
LOCAL_SCOPE = "protected-mode"


def requested(clean):
    """The request's ``Idempotency`` (key, scope, fingerprint), or None without the header."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not VALID_KEY.match(key):
        raise ApiError(
            400,
            f"{HEADER} must be 1 to 255 printable ASCII characters",
            [{"field": HEADER, "message": "1-255 printable ASCII characters"}],
        )
    return Idempotency(scope(), key, fingerprint(clean), current_app.config["IDEMPOTENCY_TTL"])


def scope():
    """Whose key it is: a stored key's id, a digest of an ``API_KEYS`` key (never the key
    itself), or protected mode's."""
    principal = g.get("principal")  # None outside an authenticated request
    key_id = principal and principal.key_id
    if key_id is not None:
        return f"key-{key_id}"
    api_key = presented_api_key() if current_app.config["API_KEYS"] else None
    if api_key is None:
        return LOCAL_SCOPE
    return _digest(api_key)


@functools.lru_cache(maxsize=64)
def _digest(api_key):
    """The scope of an API key: computed once per key (only accepted keys reach here)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def fingerprint(clean):
    """A digest of the parsed, validated request: the same mail however it was encoded."""
    text = json.dumps([request.path, clean], sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value):
    """JSON for what ``json`` cannot write itself: bytes (attachments) and datetimes."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value.isoformat()


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
