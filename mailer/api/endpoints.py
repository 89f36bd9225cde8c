"""The client webhook endpoint resources: ``/webhook-endpoints`` (create, list) and
``/webhook-endpoints/<id>`` (read, change, delete).

A tenant's mail's webhooks go to its own endpoints only (``mailer.events.outbox``). An endpoint
has its own secret, made here, shown once in the answer to its creation and never again. Its
URL must be one a webhook may go to (``mailer.events.destinations``: https, public addresses),
checked here and again before every delivery. Every endpoint needs the scope
``webhooks:manage``; a key sees its own tenant's endpoints only (every tenant's with ``admin``),
another tenant's id answering 404 as an unknown one does.
"""

import uuid

from flask import current_app, request
from flask_restful import Resource

from mailer.api import listing
from mailer.api.auditing import audited
from mailer.api.auth import current_principal
from mailer.api.errors import ApiError
from mailer.api.resources import actor, authenticated, needs, read_mail_request, tenant_filter
from mailer.database import transaction
from mailer.events.destinations import creation_problem
from mailer.events.outbox import EVENTS
from mailer.events.signatures import new_webhook_secret
from mailer.queue import webhook_endpoints
from mailer.shapes.endpoints import CreatedWebhookEndpoint, WebhookEndpoint, WebhookEndpointPage

SCOPE = "webhooks:manage"
CREATE_FIELDS = ("url", "events")
CHANGE_FIELDS = ("url", "events", "disabled")


def unknown_endpoint():
    """The 404 of an id that names no endpoint of the key's tenant."""
    return ApiError(
        404, "No webhook endpoint with this id", [{"field": "endpoint_id", "message": "Unknown"}]
    )


def known_id(endpoint_id):
    """The UUID of an id from a URL, or a 404 if no endpoint could have it."""
    try:
        return uuid.UUID(endpoint_id)
    except ValueError:
        raise unknown_endpoint() from None


def validate(data, allowed, required=()):
    """The fields of a request body, checked; 400 names each bad one."""
    errors = [
        {"field": key, "message": "Unknown field"} for key in sorted(set(data) - set(allowed))
    ]
    errors += [
        {"field": key, "message": "This field is required"} for key in required if key not in data
    ]
    fields = {}
    if data.get("url") is not None:
        config = current_app.config
        problem = creation_problem(
            data["url"], config["WEBHOOK_ALLOW_HTTP"], config["WEBHOOK_ALLOW_PRIVATE"]
        )
        if problem:
            errors.append({"field": "url", "message": problem})
        fields["url"] = data["url"]
    elif "url" in data:
        errors.append({"field": "url", "message": "Must be a URL"})
    if data.get("events") is not None:
        events = data["events"]
        if not isinstance(events, list) or not all(e in EVENTS for e in events):
            errors.append({"field": "events", "message": f"A list of: {', '.join(EVENTS)}"})
        else:
            fields["events"] = list(dict.fromkeys(events))
    if data.get("disabled") is not None:
        if not isinstance(data["disabled"], bool):
            errors.append({"field": "disabled", "message": "true or false"})
        fields["disabled"] = data["disabled"]
    if errors:
        raise ApiError(400, "Invalid webhook endpoint", errors)
    return fields


class EndpointList(Resource):
    """``/webhook-endpoints``: create an endpoint, or list them."""

    method_decorators = [authenticated]

    @needs(SCOPE)
    def post(self):
        """201 with the new endpoint and its secret, shown this once."""
        fields = validate(read_mail_request(), CREATE_FIELDS, required=("url",))
        with transaction() as conn:
            row = webhook_endpoints.create(
                conn,
                {
                    "id": uuid.uuid4(),
                    "tenant": current_principal().tenant,
                    "url": fields["url"],
                    "events": fields.get("events", []),
                    "secret": new_webhook_secret(),
                    "created_by": actor(),
                },
            )
            audited(
                conn,
                "webhook_endpoint.create",
                str(row["id"]),
                {"url": row["url"], "events": row["events"]},
            )
        location = f"/webhook-endpoints/{row['id']}"
        return CreatedWebhookEndpoint.dump(row), 201, {"Location": location}

    @needs(SCOPE)
    def get(self):
        """A page of endpoints, newest first (``?limit=``, ``?cursor=``)."""
        limit, after = parse_query()
        with transaction(single_statement=True) as conn:
            rows, more = webhook_endpoints.page(conn, limit, after, tenant_filter())
        last = rows[-1] if more else None
        return WebhookEndpointPage.dump(
            {
                "endpoints": rows,
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last["created_at"], last["id"]),
            }
        )


def parse_query():
    """``GET /webhook-endpoints``' (limit, position after), checked; 400 names a bad one."""
    args = request.args
    unknown = sorted(set(args) - {"limit", "cursor"})
    if unknown:
        raise listing.bad(unknown[0], "Unknown query parameter")
    return listing.parse_limit(args.get("limit")), listing.decode_cursor(args.get("cursor"))


class EndpointItem(Resource):
    """``/webhook-endpoints/<id>``: one endpoint; change it; delete it."""

    method_decorators = [authenticated]

    @needs(SCOPE)
    def get(self, endpoint_id):
        """The endpoint (never its secret); 404 for an unknown id or another tenant's."""
        with transaction(single_statement=True) as conn:
            row = webhook_endpoints.get(conn, known_id(endpoint_id), tenant_filter())
        if row is None:
            raise unknown_endpoint()
        return WebhookEndpoint.dump(row)

    @needs(SCOPE)
    def patch(self, endpoint_id):
        """The endpoint with its ``url``, ``events`` or ``disabled`` changed."""
        key = known_id(endpoint_id)
        fields = validate(read_mail_request(), CHANGE_FIELDS)
        with transaction() as conn:
            row = webhook_endpoints.update(conn, key, fields, tenant_filter())
            if row is not None:
                audited(conn, "webhook_endpoint.update", str(key), fields, tenant=row["tenant"])
        if row is None:
            raise unknown_endpoint()
        return WebhookEndpoint.dump(row)

    @needs(SCOPE)
    def delete(self, endpoint_id):
        """204 once deleted: nothing more is sent to it, and what waited is given up."""
        with transaction() as conn:
            deleted = webhook_endpoints.delete(conn, known_id(endpoint_id), tenant_filter())
            if deleted:
                audited(conn, "webhook_endpoint.delete", endpoint_id)
        if not deleted:
            raise unknown_endpoint()
        return "", 204


def init_app(api):
    """Register the endpoint resources on ``api`` (the mail API's ``JsonApi``)."""
    api.add_resource(EndpointList, "/webhook-endpoints")
    api.add_resource(EndpointItem, "/webhook-endpoints/<string:endpoint_id>")
