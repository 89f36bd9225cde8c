"""A tenant's client webhook endpoints (``sql/webhook_endpoints.sql``): created, listed, read,
changed and deleted through ``/webhook-endpoints`` (``mailer.api.endpoints``). The outbox fans
each webhook out to its tenant's endpoints (``sql/webhooks.sql``)."""

from mailer.queue.queries import load

SQL = load("webhook_endpoints.sql")


def create(conn, fields):
    """Store a new endpoint (``fields``: id, tenant, url, events, secret, created_by); its row
    as a dict, with the secret (to be shown this once)."""
    return dict(conn.exec_driver_sql(SQL.create, fields).mappings().one())


def page(conn, limit, after=None, tenant=None):
    """``(rows, more)``: a page of live endpoints, newest first, after the position ``after``
    (``(created_at, id)``, from a cursor); ``tenant``'s, or every tenant's for None."""
    after_created, after_id = after if after is not None else (None, None)
    rows = conn.exec_driver_sql(
        SQL.page,
        {
            "tenant": tenant,
            "after_created": after_created,
            "after_id": after_id,
            "limit": limit + 1,
        },
    ).mappings()
    rows = [dict(row) for row in rows]
    return rows[:limit], len(rows) > limit


def get(conn, endpoint_id, tenant=None):
    """The live endpoint ``endpoint_id`` (``tenant``'s, unless None) as a dict, or None."""
    row = conn.exec_driver_sql(SQL.get, {"id": endpoint_id, "tenant": tenant}).mappings().first()
    return None if row is None else dict(row)


def update(conn, endpoint_id, changes, tenant=None):
    """Change ``url``, ``events`` or ``disabled`` (those in ``changes``) of a live endpoint;
    the endpoint as it now is, or None if there is none (for ``tenant``)."""
    params = {
        "id": endpoint_id,
        "tenant": tenant,
        "url": changes.get("url"),
        "events": changes.get("events"),
        "disabled": changes.get("disabled"),
    }
    row = conn.exec_driver_sql(SQL.update, params).mappings().first()
    return None if row is None else dict(row)


def delete(conn, endpoint_id, tenant=None):
    """Delete a live endpoint and give up its undelivered webhooks; whether there was one."""
    found = conn.exec_driver_sql(SQL.delete, {"id": endpoint_id, "tenant": tenant}).first()
    return found is not None
