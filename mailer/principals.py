"""Who a request acts for: the ``Principal`` an API key stands for.

Every way in (the REST API, and the SMTP door) turns the credentials it was given into a
``Principal`` with ``authenticate`` and then asks it, not the settings, what it may do: its
tenant (whose mail it sees), its scopes, and its limits. Today the keys are ``API_KEYS``: each
stands for the ``default`` tenant with every scope and no limits, as the service always
worked. Protected mode (no ``API_KEYS``, a client on this machine) acts as ``LOCAL``, the same.
"""

import hmac
from dataclasses import dataclass

DEFAULT_TENANT = "default"
SCOPES = (
    "mail:send",
    "mail:read",
    "mail:manage",
    "suppressions:read",
    "suppressions:write",
    "templates:read",
    "templates:write",
    "webhooks:manage",
    "keys:manage",
    "admin",
)


@dataclass(frozen=True)
class Principal:
    """What one API key (or protected mode) may do.

    ``key_id`` is the stored key's id (None for ``API_KEYS`` and protected mode); ``test`` is a
    test-mode key's; ``allowed_from_domains`` empty means any sender domain; ``rate_limit``
    (mails per second) and ``daily_quota`` (mails per UTC day) None means no limit.
    """

    tenant: str
    key_id: str | None
    key_name: str
    scopes: frozenset
    test: bool = False
    allowed_from_domains: tuple = ()
    rate_limit: float | None = None
    daily_quota: int | None = None

    def may(self, scope):
        """Whether this principal holds ``scope`` (``admin`` holds every one)."""
        return scope in self.scopes or "admin" in self.scopes


LOCAL = Principal(DEFAULT_TENANT, None, "protected mode", frozenset(SCOPES))
SETTINGS_KEY = Principal(DEFAULT_TENANT, None, "API_KEYS", frozenset(SCOPES))


def matches_any(candidate, secrets):
    """Constant-time comparison of ``candidate`` against each configured secret."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate.encode(), secret.encode())
    return found


def authenticate(config, key):
    """The principal that API key ``key`` stands for, or None for an unknown key."""
    if key and matches_any(key, config["API_KEYS"]):
        return SETTINGS_KEY
    return None
