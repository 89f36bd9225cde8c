"""Who a request acts for: the ``Principal`` an API key stands for.

Every way in (the REST API, and the SMTP door) turns the credentials it was given into a
``Principal`` with ``authenticate`` and then asks it, not the settings, what it may do: its
tenant (whose mail it sees), its scopes, and its limits.

- ``API_KEYS``: each stands for the ``default`` tenant with every scope and no limits, as the
  service always worked. Protected mode (no key configured or stored, a client on this
  machine) acts as ``LOCAL``, the same.
- Stored keys (``issue``, ``mailer.queue.keys``): ``mk_live_`` or ``mk_test_`` and 43 random
  characters (``secrets.token_urlsafe(32)``), stored as their SHA-256 only and shown once. Each
  belongs to one tenant, with its own scopes and limits.

A stored key is looked up by its hash at most once a second per process (``KeyCache``): a
revoked key stops working everywhere within a second, and a flood of unknown keys costs one
look-up per key and second (the failed-authentication throttle still counts each).
"""

import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from flask import has_app_context

from mailer import database
from mailer.queue import keys as stored_keys

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

    @property
    def sees_all(self):
        """Whether it acts on every tenant's mail (scope ``admin``)."""
        return "admin" in self.scopes

    @property
    def tenant_filter(self):
        """The tenant its reads and actions are limited to; None for every tenant."""
        return None if self.sees_all else self.tenant

    @property
    def limited(self):
        """Whether its mail counts against a rate limit or a daily quota."""
        return self.rate_limit is not None or self.daily_quota is not None


LOCAL = Principal(DEFAULT_TENANT, None, "protected mode", frozenset(SCOPES))
SETTINGS_KEY = Principal(DEFAULT_TENANT, None, "API_KEYS", frozenset(SCOPES))


def matches_any(candidate, secrets):
    """Constant-time comparison of ``candidate`` against each configured secret."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate.encode(), secret.encode())
    return found


def authenticate(config, key):
    """The principal that API key ``key`` stands for, or None for an unknown (or revoked) key:
    ``API_KEYS`` first, in constant time, then the stored keys by hash (``KEYS``)."""
    if not key:
        return None
    if matches_any(key, config["API_KEYS"]):
        return SETTINGS_KEY
    if not key.startswith(PREFIXES) or len(key) > MAX_KEY:
        return None
    return KEYS.principal(config, hash_of(key))


# Stored keys ---------------------------------------------------------------------------------

LIVE_PREFIX, TEST_PREFIX = "mk_live_", "mk_test_"
PREFIXES = (LIVE_PREFIX, TEST_PREFIX)
SHOWN_CHARACTERS = 4  # of the random part, after the prefix, in ``prefix``
MAX_KEY = 200  # characters: longer is no key of ours, not worth a hash
TENANT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
KEY_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}\Z")
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
MAX_DOMAINS = 100
CACHE_SECONDS = 1.0  # a revoked key works on for at most this long in each process
MAX_CACHED = 10_000  # keys held by a process's cache; past it, it starts over


def hash_of(key):
    """The SHA-256 of a key, hex: what is stored, and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def principal_of(row):
    """The principal of a stored key's row (``keys.lookup``'s)."""
    return Principal(
        tenant=row["tenant"],
        key_id=str(row["id"]),
        key_name=row["name"],
        scopes=frozenset(row["scopes"]),
        test=row["test"],
        allowed_from_domains=tuple(row["allowed_from_domains"] or ()),
        rate_limit=row["rate_limit"],
        daily_quota=row["daily_quota"],
    )


@contextmanager
def connection(config):
    """A connection in a transaction to the database of ``config``: the Flask app's (and a
    test's transaction) inside a request, else a small engine of this process's own (the SMTP
    door)."""
    if has_app_context():
        with database.transaction() as conn:
            yield conn
        return
    with KEYS.engine(config).begin() as conn:
        yield conn


def stored_key_exists(config):
    """Whether the database of ``config`` holds a live stored key, asked on a connection of its
    own (a process about to fork must not keep one); False if it cannot be asked."""
    engine = database.make_engine(config, pool_size=1)
    try:
        return bool(stored_keys.any_live_if_known(engine.connect))
    finally:
        engine.dispose()


class KeyCache:
    """Stored keys by hash, each answer (a principal, or None for no live key) kept for
    ``CACHE_SECONDS``; and the engines of processes without Flask."""

    def __init__(self):
        self.answers = {}  # (database URL, hash) -> (principal or None, monotonic expiry)
        self.engines = {}
        self.lock = threading.Lock()

    def principal(self, config, key_hash):
        """The principal of the live key with ``key_hash``, or None."""
        slot = (config["DATABASE_URL"], key_hash)
        now = time.monotonic()
        cached = self.answers.get(slot)
        if cached is not None and cached[1] > now:
            return cached[0]
        with connection(config) as conn:
            row = stored_keys.lookup(conn, key_hash)
        found = None if row is None else principal_of(row)
        if len(self.answers) >= MAX_CACHED:
            self.answers = {}
        self.answers[slot] = (found, now + CACHE_SECONDS)
        return found

    def forget(self):
        """Drop every cached answer (a key this process revoked or made)."""
        self.answers = {}

    def engine(self, config):
        """This process's engine for ``config``'s database, made on first use."""
        url = config["DATABASE_URL"]
        with self.lock:
            if url not in self.engines:
                self.engines[url] = database.make_engine(config, pool_size=2)
            return self.engines[url]


KEYS = KeyCache()


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key``, to be shown once, and its stored row (without the hash)."""

    key: str
    row: dict


def tenant_of(fields, creator):
    """The tenant a new key is asked for: its ``tenant``, or its creator's."""
    tenant = fields.get("tenant")
    return creator.tenant if tenant is None else tenant


def key_problems(fields, creator):
    """What is wrong with a request for a new key (``fields``: name, tenant, scopes,
    allowed_from_domains, rate_limit, daily_quota, test), made by ``creator`` (a Principal):
    a list of ``{"field", "message"}``, empty when it is right. A creator without ``admin``
    makes keys of its own tenant only, and never an ``admin`` key."""
    known = {
        "name",
        "tenant",
        "scopes",
        "allowed_from_domains",
        "rate_limit",
        "daily_quota",
        "test",
    }
    errors = [{"field": f, "message": "Unknown field"} for f in sorted(set(fields) - known)]
    name, tenant = fields.get("name"), tenant_of(fields, creator)
    if not isinstance(name, str) or not KEY_NAME.match(name):
        errors.append({"field": "name", "message": "1-100 characters, no control characters"})
    if not isinstance(tenant, str) or not TENANT_NAME.match(tenant):
        errors.append({"field": "tenant", "message": "1-64 letters, digits, _ . or -"})
    elif not creator.sees_all and tenant != creator.tenant:
        errors.append({"field": "tenant", "message": f"Only your own tenant, {creator.tenant}"})
    scopes = fields.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(s in SCOPES for s in scopes):
        errors.append({"field": "scopes", "message": f"A list of: {', '.join(SCOPES)}"})
    elif "admin" in scopes and not creator.sees_all:
        errors.append({"field": "scopes", "message": "Only an admin key may give admin"})
    domains = fields.get("allowed_from_domains", [])
    if not (
        isinstance(domains, list)
        and len(domains) <= MAX_DOMAINS
        and all(isinstance(d, str) and DOMAIN.match(d.lower()) for d in domains)
    ):
        errors.append(
            {"field": "allowed_from_domains", "message": "A list of domain names, or empty"}
        )
    rate = fields.get("rate_limit")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.001 <= rate <= 1e6
    ):
        errors.append({"field": "rate_limit", "message": "Mails a second, from 0.001, or null"})
    quota = fields.get("daily_quota")
    if quota is not None and (
        isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= 2**31 - 1
    ):
        errors.append({"field": "daily_quota", "message": "A whole number from 1, or null"})
    if not isinstance(fields.get("test", False), bool):
        errors.append({"field": "test", "message": "true or false"})
    return errors


def key_summary(row):
    """What the audit log keeps of a new key: its name, tenant, scopes and limits (never the
    key, its hash or its prefix)."""
    kept = ("name", "tenant", "scopes", "allowed_from_domains", "rate_limit", "daily_quota", "test")
    return {name: row.get(name) for name in kept}


def issue(conn, fields, creator, created_by):
    """Make and store a key from checked ``fields`` (``key_problems``); a ``NewKey``."""
    test = fields.get("test", False)
    key = (TEST_PREFIX if test else LIVE_PREFIX) + secrets.token_urlsafe(32)
    start = len(TEST_PREFIX if test else LIVE_PREFIX) + SHOWN_CHARACTERS
    row = stored_keys.create(
        conn,
        {
            "id": uuid.uuid4(),
            "tenant": tenant_of(fields, creator),
            "name": fields["name"],
            "prefix": key[:start],
            "last4": key[-4:],
            "key_hash": hash_of(key),
            "scopes": list(dict.fromkeys(fields["scopes"])),
            "allowed_from_domains": sorted(
                {d.lower() for d in fields.get("allowed_from_domains", [])}
            ),
            "rate_limit": None if fields.get("rate_limit") is None else float(fields["rate_limit"]),
            "daily_quota": fields.get("daily_quota"),
            "test": test,
            "created_by": created_by,
        },
    )
    return NewKey(key, row)
