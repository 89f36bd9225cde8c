"""The parts of ``Idempotency-Key`` that every way in shares: which keys are valid, whose they
are (the scope) and what makes two requests the same (the fingerprint).

The REST API (``mailer.api.idempotency``) reads the key from a header of its request, the SMTP
door (``mailer.smtp``) from a header of the message; both scope it by the API key that sent it,
so a key means the same over either.
"""

import base64
import functools
import hashlib
import json
import re

HEADER = "Idempotency-Key"
VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}\Z")  # printable ASCII, 1-255 characters
LOCAL_SCOPE = "protected-mode"
INVALID_KEY = f"{HEADER} must be 1 to 255 printable ASCII characters"


def key_scope(key_id, api_key):
    """Whose key it is: a stored key's id (``key_id``), else a digest of an ``API_KEYS`` key
    (never the key itself), or protected mode's when there is neither."""
    if key_id is not None:
        return f"key-{key_id}"
    if api_key is None:
        return LOCAL_SCOPE
    return _digest(api_key)


@functools.lru_cache(maxsize=64)
def _digest(api_key):
    """The scope of an API key: computed once per key (only accepted keys reach here)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def fingerprint_of(path, clean):
    """A digest of a validated request (``clean``) made to ``path``: the same mail however it
    was encoded."""
    text = json.dumps([path, clean], sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value):
    """JSON for what ``json`` cannot write itself: bytes (attachments) and datetimes."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value.isoformat()
