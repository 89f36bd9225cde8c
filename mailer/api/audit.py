"""``GET /audit``: the audit log (``mailer.queue.audit``; the endpoints append to it with
``mailer.api.auditing.audited``).

: a key with ``admin`` reads every tenant's rows (or one tenant's with
``?tenant=``), a key with ``keys:manage`` its own tenant's only; any other key gets 403 naming
``keys:manage``. Filters ``action`` and ``target`` (exact); newest first, keyset-paged by
``next_cursor`` as ``GET /mail`` is.
"""

from flask import request
from flask_restful import Resource

from mailer.api import listing
from mailer.api.auth import current_principal
from mailer.api.errors import ApiError
from mailer.api.resources import authenticated, needs
from mailer.database import transaction
from mailer.principals import TENANT_NAME
from mailer.queue import audit
from mailer.shapes.audit import AuditPage

FILTERS = ("tenant", "action", "target", "limit", "cursor")
MAX_FILTER = 500  # characters of an action or target asked for


def parse_audit_query(principal):
    """``GET /audit``'s filters, checked: (tenant, action, target, limit, position after)."""
    args = request.args
    unknown = sorted(set(args) - set(FILTERS))
    if unknown:
        raise listing.bad(unknown[0], "Unknown query parameter")
    tenant = args.get("tenant")
    if tenant is not None and not TENANT_NAME.match(tenant):
        raise listing.bad("tenant", "1-64 letters, digits, _ . or -")
    if tenant is not None and not principal.sees_all and tenant != principal.tenant:
        raise ApiError(
            403,
            "This key reads its own tenant's audit log only",
            [{"field": "tenant", "message": f"Only {principal.tenant}, or leave it out"}],
        )
    filters = {name: _text(args.get(name), name) for name in ("action", "target")}
    return {
        "tenant": tenant if tenant is not None else principal.tenant_filter,
        **filters,
        "limit": listing.parse_limit(args.get("limit")),
        "after": _position(args.get("cursor")),
    }


def _text(value, field):
    """An exact filter's text, or None."""
    if value is None:
        return None
    if not value or len(value) > MAX_FILTER or not value.isprintable():
        raise listing.bad(field, f"1 to {MAX_FILTER} printable characters")
    return value


def _position(cursor):
    """The (at, id) a cursor points after, or None; 400 for a cursor we did not make."""
    position = listing.decode_position(cursor)
    if position is None:
        return None
    at, key = position
    if not (key.isascii() and key.isdigit() and len(key) < 19):
        raise listing.bad("cursor", "Not a cursor from this API: pass next_cursor as given")
    return at, int(key)


class AuditLog(Resource):
    """``/audit``: the audit log, newest first."""

    method_decorators = [authenticated]

    @needs("keys:manage")
    def get(self):
        """A page of the log: every tenant's for ``admin``, else the key's tenant's."""
        query = parse_audit_query(current_principal())
        with transaction(single_statement=True) as conn:
            rows, more = audit.page(conn, **query)
        last = rows[-1] if more else None
        return AuditPage.dump(
            {
                "entries": rows,
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last["at"], last["id"]),
            }
        )


def init_app(api):
    """Register ``/audit`` on the API (``resources.JsonApi``)."""
    api.add_resource(AuditLog, "/audit")
