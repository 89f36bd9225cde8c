"""Stored API keys and their shared limits (``sql/keys.sql``).

A key is stored as its SHA-256 only; ``lookup`` finds a live key by that hash. ``take`` counts
mail against a key's ``rate_limit`` (a token bucket) and ``daily_quota`` (a count per UTC day)
in the key's ``key_usage`` row, which every API process shares: the limits hold however many
processes serve the API.
"""

import math
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from mailer.queue.queries import load

SQL = load("keys.sql")
LISTED = (
    "id",
    "tenant",
    "name",
    "prefix",
    "last4",
    "scopes",
    "allowed_from_domains",
    "rate_limit",
    "daily_quota",
    "test",
    "created_at",
    "last_used_at",
    "revoked_at",
)


def create(conn, fields):
    """Store a new key (``fields``: the columns of ``sql/keys.sql``'s ``create``); its row as a
    dict, without the hash."""
    return dict(conn.exec_driver_sql(SQL.create, fields).mappings().one())


def lookup(conn, key_hash):
    """The live key whose SHA-256 (hex) is ``key_hash`` as a dict, or None; marks it used."""
    row = conn.exec_driver_sql(SQL.lookup, {"key_hash": key_hash}).mappings().first()
    return None if row is None else dict(row)


def any_live(conn):
    """Whether any stored key is live."""
    return conn.exec_driver_sql(SQL.any_live).scalar()


def any_live_if_known(begin):
    """Whether any stored key is live, on a connection of ``begin()``; None when the database
    cannot be asked (down). A pooled connection that died raises, as any statement's does: the
    request answers 503 and SQLAlchemy replaces the pool's connections."""
    try:
        with begin() as conn:
            return bool(any_live(conn))
    except DBAPIError as err:
        if err.connection_invalidated:
            raise
        return None


def page(conn, tenant=None, limit=50, after=None):
    """A page of keys (of ``tenant``; None: every tenant's), newest first, and whether more
    follow: ``(rows, more)``. ``after``: the (created_at, id) of the previous page's last."""
    created, key_id = after or (None, None)
    params = {
        "tenant": tenant,
        "after_created": created,
        "after_id": key_id,
        "limit": limit + 1,
    }
    rows = [dict(row) for row in conn.exec_driver_sql(SQL.page, params).mappings()]
    return rows[:limit], len(rows) > limit


def revoke(conn, key_id, tenant=None):
    """Revoke the key ``key_id`` (a UUID) of ``tenant`` (None: any); whether there is one."""
    return conn.exec_driver_sql(SQL.revoke, {"id": key_id, "tenant": tenant}).first() is not None


@dataclass(frozen=True)
class Refusal:
    """Why a key's limits refused mail: ``field`` (``rate_limit`` or ``daily_quota``) and the
    whole seconds to wait before trying again."""

    field: str
    retry_after: int


def burst_of(rate_limit):
    """How many mails a key with ``rate_limit`` may send at once: one second's worth, and at
    least one."""
    return max(1.0, float(rate_limit))


def take(conn, key_id, count, rate_limit=None, daily_quota=None):
    """Count ``count`` mails against the key's limits: None when they allow them (and they are
    counted), else a ``Refusal``. One round trip, on ``conn``: a transaction of its own, as
    short as can be (the key's row stays locked until it ends)."""
    burst = burst_of(rate_limit) if rate_limit is not None else 1.0
    params = {
        "key_id": key_id,
        "n": count,
        "rate": rate_limit,
        "burst": burst,
        "quota": daily_quota,
    }
    rate_ok, quota_ok, tokens, to_next_day = conn.exec_driver_sql(SQL.take, params).one()
    if not quota_ok:
        return Refusal("daily_quota", max(1, math.ceil(to_next_day)))
    if not rate_ok:
        wanted = min(count, burst)
        return Refusal("rate_limit", max(1, math.ceil((wanted - tokens) / rate_limit)))
    return None
