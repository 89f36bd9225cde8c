"""The key resources: ``/keys`` (make a key, list them) and ``/keys/<id>`` (revoke one).

Each needs ``keys:manage``: a key with it manages its own tenant's keys, one with ``admin``
every tenant's. A new key is shown once, in the answer that makes it; lists show its prefix
and last four characters only. A revoked key stops working on every API process within a
second (``principals.KeyCache``).
"""

import uuid

from flask import request
from flask_restful import Resource

from mailer import principals
from mailer.api import listing
from mailer.api.auditing import audited
from mailer.api.auth import current_principal, keys_changed
from mailer.api.bodies import parsed_json
from mailer.api.errors import ApiError
from mailer.api.resources import JSON_TYPES, actor, authenticated, needs
from mailer.database import transaction
from mailer.queue import keys
from mailer.shapes.keys import ApiKeyPage, NewApiKey


def unknown_key():
    """The 404 of an id that names no key (of the caller's tenant)."""
    return ApiError(404, "No key with this id", [{"field": "id", "message": "Unknown id"}])


def read_key_request():
    """The JSON object of a request for a new key; 400/415 otherwise."""
    if not (request.mimetype in JSON_TYPES or request.mimetype.endswith("+json")):
        raise ApiError(
            415,
            f"Unsupported content type {request.mimetype or '(none)'!r}",
            [{"field": "Content-Type", "message": "Use application/json"}],
        )
    data = parsed_json(request.get_data(cache=True))
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "The body must be a JSON object",
            [{"field": "body", "message": "Malformed JSON or not an object"}],
        )
    return data


class KeyList(Resource):
    """``/keys``: make a key, or list them."""

    method_decorators = [authenticated]

    @needs("keys:manage")
    def post(self):
        """201 with the new key, shown this once; 400 names what is wrong."""
        data = read_key_request()
        creator = current_principal()
        errors = principals.key_problems(data, creator)
        if errors:
            raise ApiError(400, "Invalid key", errors)
        with transaction() as conn:
            made = principals.issue(conn, data, creator, actor())
            audited(
                conn,
                "key.create",
                str(made.row["id"]),
                principals.key_summary(made.row),
                tenant=made.row["tenant"],
            )
        keys_changed()
        body = NewApiKey.dump({**made.row, "key": made.key})
        return body, 201, {"Location": f"/keys/{made.row['id']}", "Cache-Control": "no-store"}

    @needs("keys:manage")
    def get(self):
        """A page of keys, newest first (``?limit=``, ``?cursor=``; ``?tenant=`` for admin)."""
        tenant, limit, after = parse_key_query(current_principal())
        with transaction(single_statement=True) as conn:
            rows, more = keys.page(conn, tenant, limit, after)
        last = rows[-1] if more else None
        return ApiKeyPage.dump(
            {
                "keys": rows,
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last["created_at"], last["id"]),
            }
        )


def parse_key_query(principal):
    """``GET /keys``' (tenant, limit, position after), checked; 400 names a bad one."""
    args = request.args
    unknown = sorted(set(args) - {"tenant", "limit", "cursor"})
    if unknown:
        raise listing.bad(unknown[0], "Unknown query parameter")
    position = listing.decode_position(args.get("cursor"))
    if position is not None:
        try:
            position = position[0], uuid.UUID(position[1])
        except ValueError:
            raise listing.bad("cursor", "Not a cursor from this API: pass next_cursor") from None
    tenant = listing.listed_tenant(args.get("tenant"), principal)
    return tenant, listing.parse_limit(args.get("limit")), position


class KeyItem(Resource):
    """``/keys/<id>``: revoke a key."""

    method_decorators = [authenticated]

    @needs("keys:manage")
    def delete(self, key_id):
        """204 once revoked (again for a key revoked already); 404 for an unknown id or another
        tenant's key."""
        try:
            found = uuid.UUID(key_id)
        except ValueError:
            raise unknown_key() from None
        with transaction() as conn:
            revoked = keys.revoke(conn, found, current_principal().tenant_filter)
            if revoked:
                audited(conn, "key.revoke", str(found))
        if not revoked:
            raise unknown_key()
        keys_changed()
        return "", 204


def init_app(api):
    """Register the key resources on ``api`` (the mail API's ``JsonApi``)."""
    api.add_resource(KeyList, "/keys")
    api.add_resource(KeyItem, "/keys/<string:key_id>")
