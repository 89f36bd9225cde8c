"""The audit log: who changed what, when, for which tenant, from where (``sql/audit.sql``).

Every change an operator makes in the admin, and every change a key makes through the API's
management endpoints (keys, client webhook endpoints, templates, suppressions), is appended
with ``record``, on the connection and in the transaction of the change itself: a change that
commits has its row, one that rolls back has none. A new management action needs only::

    audit.record(conn, who, tenant, action, target, summary, address)

``who`` is an ``Actor`` (``operator(name)`` in the admin, ``key(id, name)`` for an API key), the
``action`` a dotted name (``key.create``, ``suppression.remove``, ...), the ``target`` what it
acted on (a key's id, an address, a template's name), ``summary`` a dict of what changed, and
``address`` the client's (``mailer.api.auth.client_address``).

A summary never holds a secret: ``record`` drops every member whose name says it is one
(``SECRET_NAMES``: a key, a webhook secret, a password, a token, a hash), at any depth, so a
caller that passes a request's fields whole still stores none. Rows are never updated (the
table's trigger refuses it) and only ``purge`` deletes them, past ``AUDIT_RETENTION_DAYS``.
"""

import json
from typing import NamedTuple

from mailer.queue.queries import load

SQL = load("audit.sql")
# Members of a summary that are, or may be, a secret: never stored, at any depth.
SECRET_NAMES = frozenset(
    {"key", "api_key", "key_hash", "secret", "password", "token", "authorization"}
)
MAX_TEXT = 500  # characters kept of a target, an actor or a client address


class Actor(NamedTuple):
    """Who made a change: an operator (``key_id`` None) or a key (its id and name)."""

    name: str
    key_id: str | None = None


def operator(name):
    """An operator of the admin, by the name the admin knows them by (``admin:<user>``)."""
    return Actor(name)


def key(key_id, name):
    """An API key, by its id (None for ``API_KEYS`` and protected mode) and name."""
    return Actor(f"key:{name}", key_id)


def without_secrets(value):
    """``value`` (a summary: dicts, lists, scalars) without the members named in
    ``SECRET_NAMES``, at any depth."""
    if isinstance(value, dict):
        return {
            name: without_secrets(item)
            for name, item in value.items()
            if str(name).lower() not in SECRET_NAMES
        }
    if isinstance(value, list | tuple):
        return [without_secrets(item) for item in value]
    return value


def record(conn, who, tenant, action, target, summary=None, address=None):
    """Append one row to the log, in the caller's transaction; its (id, at)."""
    row = conn.exec_driver_sql(
        SQL.record,
        {
            "actor": who.name[:MAX_TEXT],
            "key_id": who.key_id,
            "tenant": tenant,
            "action": action,
            "target": None if target is None else str(target)[:MAX_TEXT],
            "summary": json.dumps(without_secrets(summary or {}), default=str),
            "client": None if address is None else address[:MAX_TEXT],
        },
    ).one()
    return row.id, row.at


def page(conn, tenant=None, action=None, target=None, limit=50, after=None):
    """A page of the log (of ``tenant``, ``action`` and ``target``; None: any), newest first,
    and whether more follow: ``(rows, more)``, each row a dict. Keyset-paged on (at, id):
    ``after`` is the position of the previous page's last row."""
    after_at, after_id = after or (None, None)
    rows = conn.exec_driver_sql(
        SQL.page,
        {
            "tenant": tenant,
            "action": action,
            "target": target,
            "after_at": after_at,
            "after_id": after_id,
            "limit": limit + 1,
        },
    )
    rows = [dict(row) for row in rows.mappings()]
    return rows[:limit], len(rows) > limit


def purge(conn, days, batch_size):
    """Delete up to ``batch_size`` rows older than ``days`` days; how many went."""
    return conn.exec_driver_sql(SQL.purge, {"days": float(days), "batch_size": batch_size}).rowcount
