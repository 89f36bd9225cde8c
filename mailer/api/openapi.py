"""The API's OpenAPI 3.0.3 document: JSON at ``/api/spec``, Swagger UI at ``/api/docs``.

The document is the API's paths and their prose, by resource (mail, batches, the providers'
events, the suppression list, the service), around the schemas of the bodies, which come from
the shapes (``mailer.shapes``): what the API writes is what the document describes. The docs
page is Swagger UI (from the ``flask-swagger-ui`` wheel, served by us, nothing from a CDN)
reading ``/api/spec``, so the two never disagree. Both routes are public and need no API key:
they describe the API, they do not use it.
"""

import json

from flask import current_app
from flask_swagger_ui import get_swaggerui_blueprint

from mailer.api.listing import DEFAULT_LIMIT, MAX_LIMIT
from mailer.api.resources import JSON_TYPES
from mailer.events.signatures import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP
from mailer.queue.submit import SOURCES
from mailer.queue.suppressions import REASONS
from mailer.shapes import audit, endpoints, inbound, keys, mail, requests, service, templates
from mailer.shapes.requests import HEADER_TEXT, MAX_BATCH
from mailer.shapes.wire import openapi_schemas
from mailer.vocabulary import MAIL_STATUSES

SPEC_URL = "/api/spec"
DOCS_URL = "/api/docs"
DOCS_BLUEPRINT = "openapi_docs_ui"
# Swagger UI's settings, sent to the page as JSON. The page must load nothing from elsewhere:
# a null validatorUrl drops the badge that sends the document to validator.swagger.io, and an
# oauth2RedirectUrl given as a path keeps the request's Host out of the page (we use no OAuth).
SWAGGER_UI_CONFIG = {
    "app_name": "Mail service API",
    "validatorUrl": None,
    "oauth2RedirectUrl": f"{DOCS_URL}/oauth2-redirect.html",
}
OPENAPI_VERSION = "3.0.3"
API_VERSION = "0.1.0"
MAIL_CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
)
SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# The shapes whose schemas the document holds; the ones they hold come along.
ANSWERS = (
    mail.Mail,
    mail.MailPage,
    mail.EventPage,
    mail.BatchAccepted,
    service.Error,
    service.StatusConflict,
    service.SuppressionAdded,
    service.SuppressionPage,
    service.EventsReceived,
    service.InboundReceived,
    service.Health,
    service.Liveness,
    service.Readiness,
    templates.Template,
    templates.TemplateVersion,
    templates.TemplatePage,
    templates.RenderedTemplate,
    keys.NewApiKey,
    keys.ApiKeyPage,
    audit.AuditPage,
    endpoints.WebhookEndpoint,
    endpoints.CreatedWebhookEndpoint,
    endpoints.WebhookEndpointPage,
    inbound.Inbound,
    inbound.InboundPage,
)
REQUESTS = (
    requests.MailRequest,
    requests.BatchRequest,
    requests.SuppressionRequest,
    templates.TemplateRequest,
    templates.TemplateVersionRequest,
    templates.RenderRequest,
    keys.ApiKeyRequest,
    endpoints.WebhookEndpointRequest,
    endpoints.WebhookEndpointChange,
)
# Members of a mail request that a form does not carry (they are JSON, or files).
JSON_ONLY = ("headers", "metadata", "attachments")
# Each status code's shared answer in components/responses.
ERROR_RESPONSES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "405": "MethodNotAllowed",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "422": "IdempotencyConflict",
    "409": "WrongStatus",
    "429": "TooManyRequests",
    "500": "InternalError",
    "503": "ServiceUnavailable",
}
PROTECTED_MODE = (
    "When the server has no `API_KEYS` configured it runs in protected mode: it answers "
    "clients connecting over the loopback interface (and not through a proxy) without a key, "
    "and every other client with 401."
)
INFO_DESCRIPTION = (
    """\
A transactional mail service: clients submit mail over HTTP, a worker sends it through the
configured providers (Mailgun, with failover to SendGrid), and clients poll for the result.

The flow:

1. `POST /mail` with the mail's fields (JSON or a form). The service validates them, stores the
   mail as `queued` and commits it before answering, so an acknowledged mail is never lost.
2. The answer is `202 Accepted` with the Mail object and a `Location` header, `/mail/{id}`.
3. Poll `GET /mail/{id}` until `status` is `sent` or `failed`. While the mail is `queued` or
   `sending`, `next_attempt_at`, `attempts` and `attempt_log` show the worker's progress;
   `result` holds the providers' answers to the latest delivery.

Every error is JSON of one shape, the Error schema, listing each field at fault so that a
client can fix a request in one round trip.

"""
    + PROTECTED_MODE
)
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1 to 255 printable ASCII characters. The same key with the same request "
    "answers the first answer again (`Idempotent-Replayed: true`) and stores nothing; with "
    "another request it is 422. Scoped per API key, kept for `IDEMPOTENCY_TTL` seconds.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


# Building blocks ------------------------------------------------------------------------------


def ref(name, kind="schemas"):
    """A ``$ref`` to a component of ``kind`` named ``name``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def json_body(schema, description):
    """A response or body content of JSON described by ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def answer(shape, description):
    """A JSON answer whose body is ``shape``."""
    return json_body(ref(shape.__name__), description)


def error_refs(*codes):
    """The shared error answers with these status codes, as ``$ref``s."""
    return {code: ref(ERROR_RESPONSES[code], "responses") for code in codes}


def error_response(description, *header_names):
    """An error answer with the Error body and the named headers."""
    body = answer(service.Error, description)
    if header_names:
        body["headers"] = {name: ref(name, "headers") for name in header_names}
    return body


def query(name, schema, description, **extra):
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


def mail_id_parameter(description="The mail's id."):
    """The ``{mail_id}`` of a mail's path."""
    return {
        "name": "mail_id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "uuid", "description": "A UUID."},
    }


def operation(tag, operation_id, summary, responses, description=None, security=SECURITY, **more):
    """An operation of the API."""
    item = {"tags": [tag], "operationId": operation_id, "summary": summary}
    if description:
        item["description"] = description
    # A key without the scope it needs (every keyed operation but the metrics').
    if security == SECURITY and tag != "service" and "403" not in responses:
        responses = {**responses, **error_refs("403")}
    return {**item, "security": security, **more, "responses": responses}


# The document ---------------------------------------------------------------------------------


def build_spec(config=None):
    """The whole OpenAPI document, with the limits of ``config`` (a Flask config) if given."""
    config = config or {}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Mail service API",
            "version": API_VERSION,
            "description": INFO_DESCRIPTION,
        },
        "tags": [
            {"name": "mail", "description": "Submit mail and follow its delivery."},
            {"name": "events", "description": "The providers' delivery events, received."},
            {
                "name": "inbound",
                "description": "Received mail: replies, mail to our domains, bounce reports.",
            },
            {"name": "templates", "description": "Stored templates, rendered into mail."},
            {
                "name": "webhooks",
                "description": "The tenant's endpoints that receive its mail's webhooks.",
            },
            {"name": "suppressions", "description": "The addresses mail does not go to."},
            {"name": "keys", "description": "API keys: each acts for one tenant, with scopes."},
            {"name": "audit", "description": "Who changed what: the audit log."},
            {"name": "service", "description": "The service's health and this documentation."},
        ],
        "paths": {
            **mail_paths(),
            **batch_paths(),
            **template_paths(),
            **endpoint_paths(),
            **inbound_paths(),
            **event_paths(),
            **inbound_receiver_paths(),
            **suppression_paths(),
            **key_paths(),
            **audit_paths(),
            **service_paths(),
        },
        "components": {
            "schemas": schemas(config),
            "responses": error_responses(config.get("MAX_CONTENT_LENGTH")),
            "headers": headers(),
            "securitySchemes": security_schemes(),
        },
    }


def schemas(config):
    """Every body's schema, from the shapes, with ``config``'s limits; ``MailForm`` is
    ``MailRequest`` as form fields."""
    with requests.limits_of(config):
        found = openapi_schemas(ANSWERS, REQUESTS)
    found["MailForm"] = mail_form(found["MailRequest"])
    return found


def mail_form(mail_request):
    """``MailRequest`` as form fields: a form has no null, and repeats a field for an array."""
    form = without_nulls(mail_request)
    for name in JSON_ONLY:
        form["properties"].pop(name)
    form["properties"]["variables"] = {
        "type": "string",
        "description": "The template's variables: a JSON object, as JSON text.",
    }
    form["description"] = (
        "A mail to send, as form fields (every value a string; repeat `to`, `cc` or `bcc` for "
        "several). Any other field, and any uploaded file, is rejected with 400."
    )
    return form


def without_nulls(schema):
    """``schema`` with null allowed nowhere in it."""
    if isinstance(schema, list):
        return [without_nulls(item) for item in schema if item is not None]
    if not isinstance(schema, dict):
        return schema
    return {key: without_nulls(value) for key, value in schema.items() if key != "nullable"}


# Mail -----------------------------------------------------------------------------------------


def mail_paths():
    """Submit a mail, list them, read one back, cancel or retry it."""
    return {
        "/mail": {"post": submit_mail(), "get": list_mail()},
        "/mail/{mail_id}": {"get": get_mail()},
        "/mail/{mail_id}/events": {"get": list_events()},
        "/mail/{mail_id}/cancel": {
            "post": mail_action(
                "cancelMail",
                "Cancel a mail no worker has taken yet",
                "A `queued` or `scheduled` mail becomes `cancelled` (200). Once it is "
                "`sending`, `sent` or later the answer is 409 with its current `status`.",
                "200",
            )
        },
        "/mail/{mail_id}/retry": {
            "post": mail_action(
                "retryMail",
                "Queue a failed or cancelled mail again",
                "A `failed` or `cancelled` mail is queued again with a fresh budget of attempts "
                "(202); any other status is 409 with the current `status`.",
                "202",
            )
        },
    }


def submit_mail():
    """``POST /mail``."""
    accepted = answer(
        mail.Mail,
        "Accepted: the mail is stored as `queued` (with an empty `attempt_log`). Poll the "
        "`Location` to follow it.",
    )
    accepted["headers"] = {"Location": ref("Location", "headers")}
    accepted["links"] = {
        "GetMail": {
            "operationId": "getMail",
            "parameters": {"mail_id": "$response.body#/id"},
            "description": "The mail just stored, by the `id` of this answer.",
        }
    }
    return operation(
        "mail",
        "submitMail",
        "Submit a mail for delivery",
        submit_responses(accepted),
        "Validates the fields, stores the mail as `queued` and commits it, then answers 202; a "
        "worker sends it later. Every invalid field is listed in the 400 answer at once.",
        parameters=[IDEMPOTENCY_KEY],
        requestBody={
            "required": True,
            "description": "The mail, as a JSON object (any `+json` type is read as JSON) or as "
            "form fields. In a form, repeat `to`, `cc` or `bcc` to give several addresses, or "
            "give one comma-separated value.",
            "content": {
                kind: {"schema": ref("MailRequest" if kind in JSON_TYPES else "MailForm")}
                for kind in MAIL_CONTENT_TYPES
            },
        },
    )


def submit_responses(accepted):
    """The answers of an operation that submits mail: 202 and the errors it can meet."""
    return {
        "202": accepted,
        **error_refs("400", "401", "405", "413", "415", "422", "429", "500", "503"),
    }


def list_mail():
    """``GET /mail``."""
    header_text = {"type": "string", "minLength": 1, "maxLength": 320, "pattern": HEADER_TEXT}
    moment = {"type": "string", "format": "date-time", "description": "With a zone."}
    parameters = [
        query(
            "status",
            {"type": "array", "items": {"type": "string", "enum": MAIL_STATUSES}},
            "Only these statuses (repeat the parameter for several).",
            style="form",
            explode=True,
        ),
        query(
            "to",
            {**header_text, "description": "An address."},
            "Mail with this recipient (to, cc or bcc): the domain in any case, the local part "
            "as given.",
        ),
        query("tag", {**header_text, "description": "A tag."}, "Mail carrying this tag."),
        query(
            "template",
            {**header_text, "description": "A template's name."},
            "Mail rendered from this template.",
        ),
        query(
            "source",
            {"type": "string", "enum": list(SOURCES)},
            "Mail that came in this way: `api` or `smtp`.",
        ),
        query("created_after", moment, "Created after this moment."),
        query("created_before", moment, "Created before this moment."),
        query(
            "tenant",
            {"type": "string", "pattern": TENANT_PATTERN},
            "Mail of this tenant: any for a key with `admin` (which lists every tenant's "
            "without it); another key lists its own tenant's only (another is a 403).",
        ),
        limit_parameter(),
        cursor_parameter(),
    ]
    return operation(
        "mail",
        "listMail",
        "List mail, newest first, in stable pages",
        {
            "200": answer(mail.MailPage, "A page of mail."),
            **error_refs("400", "401", "429", "500", "503"),
        },
        "Keyset pagination: walking every page while mail keeps arriving shows each mail "
        "exactly once. An unknown parameter is a 400.",
        parameters=parameters,
    )


def get_mail():
    """``GET /mail/{mail_id}``."""
    return operation(
        "mail",
        "getMail",
        "Read a mail's status, the providers' answers and its attempts",
        {
            "200": answer(mail.Mail, "The mail."),
            # 405 too: `GET /mail/batch` names the batch endpoint, which takes POST only.
            **error_refs("401", "404", "405", "429", "500", "503"),
        },
        parameters=[
            mail_id_parameter(
                "The mail's id, from the 202 answer or its `Location`. An id that is not a UUID "
                "is answered like an unknown one, with 404."
            )
        ],
    )


def list_events():
    """``GET /mail/{mail_id}/events``."""
    return operation(
        "mail",
        "listMailEvents",
        "Every event of a mail, oldest first, in stable pages",
        {
            "200": answer(mail.EventPage, "A page of the mail's events."),
            **error_refs("400", "401", "404", "429", "500", "503"),
        },
        "`GET /mail/{id}` shows a mail's latest `MAX_EVENTS_SHOWN` events and `event_count`; "
        "this walks all of them, by the providers' clocks. Keyset pagination: events that "
        "arrive during a walk never shift the pages. An unknown parameter is a 400.",
        parameters=[mail_id_parameter(), limit_parameter(), cursor_parameter()],
    )


def limit_parameter():
    """``?limit=``, a page's size."""
    return query(
        "limit",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "description": f"1 to {MAX_LIMIT}.",
        },
        f"Page size (default {DEFAULT_LIMIT}).",
    )


def cursor_parameter():
    """``?cursor=``, where a page starts."""
    return query(
        "cursor",
        {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$", "description": "Opaque."},
        "`next_cursor` of the previous page.",
    )


def mail_action(operation_id, summary, description, success):
    """``POST /mail/{mail_id}/cancel`` or ``/retry``."""
    return operation(
        "mail",
        operation_id,
        summary,
        {
            success: answer(mail.Mail, "The mail as it is now."),
            **error_refs("409", "401", "404", "429", "500", "503"),
        },
        description + " Recorded in the mail's attempt log with who did it.",
        parameters=[mail_id_parameter()],
    )


# Batches --------------------------------------------------------------------------------------


def batch_paths():
    """Submit many mails at once."""
    accepted = answer(mail.BatchAccepted, "Accepted: every mail is stored as `queued`.")
    accepted["links"] = {
        "GetFirstMail": {
            "operationId": "getMail",
            "parameters": {"mail_id": "$response.body#/ids/0"},
            "description": "The first mail of the batch; the others are read the same way.",
        }
    }
    items = {
        "oneOf": [
            {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": ref("MailRequest")},
            ref("BatchRequest"),
        ]
    }
    submit = operation(
        "mail",
        "submitMailBatch",
        f"Submit up to {MAX_BATCH:,} mails at once, all or none",
        submit_responses(accepted),
        "Validates every mail, then stores them all as `queued` in one transaction and answers "
        "202 with their ids in the order given. If any mail is invalid, none is stored and the "
        "400 names each bad item by its index (`field` is like `[3].to`, or "
        "`[17].variables.order_id` for a template's variable). The body is a list of mails, or "
        '`{"defaults", "mails"}`: each item merged over the defaults.',
        parameters=[IDEMPOTENCY_KEY],
        requestBody={"required": True, "content": {"application/json": {"schema": items}}},
    )
    return {"/mail/batch": {"post": submit}}


# Templates ------------------------------------------------------------------------------------


def template_name_parameter():
    """The ``{name}`` of a template's path."""
    return {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "The template's name.",
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"},
    }


def template_body(name):
    """A JSON request body of the schema ``name``."""
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def template_paths():
    """Create, list, read, version, delete and preview templates."""
    stored = answer(templates.Template, "Stored: the version, with every version's number.")
    stored["headers"] = {"Location": ref("Location", "headers")}
    name = template_name_parameter()
    unknown = error_response("No live template with this name (or no such version).")
    create = operation(
        "templates",
        "createTemplate",
        "Create a template with its version 1",
        {
            "201": stored,
            "409": error_response("A live template has this name: add a version with PUT."),
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        "Each field is compiled (Jinja2, in its sandbox): one that does not compile is a 400 "
        "naming the field, with the line and the message.",
        requestBody=template_body("TemplateRequest"),
    )
    listed = operation(
        "templates",
        "listTemplates",
        "List the templates, newest first, in stable pages",
        {
            "200": answer(templates.TemplatePage, "A page of templates."),
            **error_refs("400", "401", "429", "500", "503"),
        },
        parameters=[
            query(
                "search",
                {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"},
                "Templates whose name contains this, in any case.",
            ),
            limit_parameter(),
            cursor_parameter(),
        ],
    )
    read = operation(
        "templates",
        "getTemplate",
        "Read a template's latest version",
        {
            "200": answer(templates.Template, "The latest version."),
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[name],
    )
    version = operation(
        "templates",
        "addTemplateVersion",
        "Add the next version of a template",
        {
            "201": stored,
            "404": unknown,
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        "Versions are never changed: this stores the next one, and mail that names no version "
        "uses it from now on.",
        parameters=[name],
        requestBody=template_body("TemplateVersionRequest"),
    )
    delete = operation(
        "templates",
        "deleteTemplate",
        "Delete a template",
        {
            "204": {"description": "Deleted."},
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        "No new mail can use it; mail already rendered from it is unaffected. Its name may be "
        "taken again.",
        parameters=[name],
    )
    one = operation(
        "templates",
        "getTemplateVersion",
        "Read one version of a template",
        {
            "200": answer(templates.TemplateVersion, "The version."),
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[
            name,
            {
                "name": "version",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            },
        ],
    )
    preview = operation(
        "templates",
        "renderTemplate",
        "Render a version with variables: a preview, nothing is stored",
        {
            "200": answer(templates.RenderedTemplate, "What a mail from it would hold."),
            "404": unknown,
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        "A variable the template uses and the request does not give is a 400 naming it "
        "(`variables.<name>`); so is a rendering over `MAX_RENDERED_BYTES`.",
        parameters=[name],
        requestBody=template_body("RenderRequest"),
    )
    return {
        "/templates": {"get": listed, "post": create},
        "/templates/{name}": {"get": read, "put": version, "delete": delete},
        "/templates/{name}/versions/{version}": {"get": one},
        "/templates/{name}/render": {"post": preview},
    }


def key_paths():
    """Make, list and revoke API keys."""
    made = answer(keys.NewApiKey, "The new key, shown this once.")
    made["headers"] = {"Location": ref("Location", "headers")}
    create = operation(
        "keys",
        "createKey",
        "Make an API key (scope `keys:manage`)",
        {"201": made, **error_refs("400", "401", "413", "415", "429", "500", "503")},
        "The answer holds the key itself, once: it is stored as its SHA-256 only. A key with "
        "`keys:manage` makes keys of its own tenant, never with `admin`; a key with `admin` "
        "makes any.",
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": ref("ApiKeyRequest")}},
        },
    )
    listed = operation(
        "keys",
        "listKeys",
        "List API keys, newest first, in stable pages (scope `keys:manage`)",
        {
            "200": answer(keys.ApiKeyPage, "A page of keys: never a key, only its prefix."),
            **error_refs("400", "401", "429", "500", "503"),
        },
        parameters=[
            query(
                "tenant",
                {"type": "string", "pattern": TENANT_PATTERN},
                "Keys of this tenant (a key with `admin` lists every tenant's without it).",
            ),
            limit_parameter(),
            cursor_parameter(),
        ],
    )
    revoke = operation(
        "keys",
        "revokeKey",
        "Revoke an API key (scope `keys:manage`)",
        {
            "204": {"description": "Revoked: every API process refuses it within a second."},
            "404": error_response("No key with this id (of the caller's tenant)."),
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[
            {
                "name": "key_id",
                "in": "path",
                "required": True,
                "description": "The key's id.",
                "schema": {"type": "string", "format": "uuid"},
            }
        ],
    )
    return {"/keys": {"get": listed, "post": create}, "/keys/{key_id}": {"delete": revoke}}


# Client webhook endpoints ---------------------------------------------------------------------


def endpoint_paths():
    """Create, list, read, change and delete the tenant's webhook endpoints."""
    endpoint_id = {
        "name": "endpoint_id",
        "in": "path",
        "required": True,
        "description": "The endpoint's id.",
        "schema": {"type": "string", "format": "uuid"},
    }
    unknown = error_response("No endpoint of the key's tenant has this id.")
    forbidden = error_response("The key lacks the scope `webhooks:manage`.")
    created = answer(
        endpoints.CreatedWebhookEndpoint, "Created: the endpoint, with its secret shown once."
    )
    created["headers"] = {"Location": ref("Location", "headers")}
    refused_url = (
        "A URL that is not `https` (without `WEBHOOK_ALLOW_HTTP`), or whose host resolves to a "
        "loopback, link-local, private or other non-public address (without "
        "`WEBHOOK_ALLOW_PRIVATE`), is a 400 naming `url`. The same check runs again before "
        "every delivery."
    )
    create = operation(
        "webhooks",
        "createWebhookEndpoint",
        "Create a webhook endpoint for the key's tenant",
        {
            "201": created,
            "403": forbidden,
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        "The tenant's mail's webhooks (of `events`, or every type) are posted to `url`, each "
        "signed with the endpoint's own `secret` by the Standard Webhooks scheme. " + refused_url,
        requestBody=template_body("WebhookEndpointRequest"),
    )
    listed = operation(
        "webhooks",
        "listWebhookEndpoints",
        "List the tenant's webhook endpoints, newest first, in stable pages",
        {
            "200": answer(endpoints.WebhookEndpointPage, "A page of endpoints."),
            "403": forbidden,
            **error_refs("400", "401", "429", "500", "503"),
        },
        parameters=[limit_parameter(), cursor_parameter()],
    )
    read = operation(
        "webhooks",
        "getWebhookEndpoint",
        "Read a webhook endpoint (never its secret)",
        {
            "200": answer(endpoints.WebhookEndpoint, "The endpoint."),
            "403": forbidden,
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[endpoint_id],
    )
    change = operation(
        "webhooks",
        "changeWebhookEndpoint",
        "Change a webhook endpoint's url, events or disabled",
        {
            "200": answer(endpoints.WebhookEndpoint, "The endpoint as it now is."),
            "403": forbidden,
            "404": unknown,
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        refused_url,
        parameters=[endpoint_id],
        requestBody=template_body("WebhookEndpointChange"),
    )
    delete = operation(
        "webhooks",
        "deleteWebhookEndpoint",
        "Delete a webhook endpoint",
        {
            "204": {"description": "Deleted: nothing more is sent to it."},
            "403": forbidden,
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        "Its webhooks not delivered yet are given up.",
        parameters=[endpoint_id],
    )
    return {
        "/webhook-endpoints": {"get": listed, "post": create},
        "/webhook-endpoints/{endpoint_id}": {"get": read, "patch": change, "delete": delete},
    }


# Received mail --------------------------------------------------------------------------------


def inbound_paths():
    """List received mail, read one, fetch an attachment's bytes."""
    inbound_id = {
        "name": "inbound_id",
        "in": "path",
        "required": True,
        "description": "The received mail's id. An id that is not a UUID is answered like an "
        "unknown one, with 404.",
        "schema": {"type": "string", "format": "uuid"},
    }
    unknown = error_response("No received mail of the key's tenant has this id.")
    header_text = {"type": "string", "minLength": 1, "maxLength": 320, "pattern": HEADER_TEXT}
    listed = operation(
        "inbound",
        "listInbound",
        "List received mail, newest first, in stable pages",
        {
            "200": answer(inbound.InboundPage, "A page of received mail."),
            **error_refs("400", "401", "429", "500", "503"),
        },
        "Keyset pagination: walking every page while mail keeps coming shows each received "
        "mail exactly once. A key sees its own tenant's (the tenant of the mail a received "
        "mail answers; `default` for one that answers none); a key with `admin` every "
        "tenant's. An unknown parameter is a 400.",
        parameters=[
            query(
                "to",
                {**header_text, "description": "An address."},
                "Received mail sent to this address (envelope, To or Cc): the domain in any "
                "case, the local part as given.",
            ),
            query(
                "from",
                {**header_text, "description": "An address."},
                "Received mail from this address (its From, else the envelope's sender).",
            ),
            query(
                "in_reply_to",
                {"type": "string", "format": "uuid", "description": "A mail's id."},
                "The received mail that answers this mail of ours, automatic replies too.",
            ),
            query(
                "tenant",
                {"type": "string", "pattern": TENANT_PATTERN},
                "Received mail of this tenant: any for a key with `admin`; another key its own "
                "tenant's only (another is a 403).",
            ),
            limit_parameter(),
            cursor_parameter(),
        ],
    )
    read = operation(
        "inbound",
        "getInbound",
        "Read a received mail: its envelope, headers, bodies and attachments",
        {
            "200": answer(inbound.Inbound, "The received mail."),
            "404": unknown,
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[inbound_id],
    )
    download = operation(
        "inbound",
        "getInboundAttachment",
        "Fetch an attachment's bytes",
        {
            "200": {
                "description": "The bytes, of the type they came with, as a download "
                "(`Content-Disposition: attachment`).",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404": error_response(
                "No received mail of the key's tenant has this id, or it "
                "has no attachment at this position."
            ),
            "410": error_response(
                "The attachment's bytes were not kept: it was past `MAX_ATTACHMENTS` or "
                "`MAX_ATTACHMENT_BYTES` (its `dropped`)."
            ),
            **error_refs("401", "429", "500", "503"),
        },
        parameters=[
            inbound_id,
            {
                "name": "position",
                "in": "path",
                "required": True,
                "description": "The attachment's `position`, from 0.",
                "schema": {"type": "integer", "minimum": 0},
            },
        ],
    )
    return {
        "/inbound": {"get": listed},
        "/inbound/{inbound_id}": {"get": read},
        "/inbound/{inbound_id}/attachments/{position}": {"get": download},
    }


# The providers' events ------------------------------------------------------------------------


def event_paths():
    """The providers' signed (or, for Postmark, authenticated) event webhooks."""
    mailgun = {
        "type": "object",
        "required": ["signature", "event-data"],
        "properties": {"signature": {"type": "object"}, "event-data": {"type": "object"}},
    }
    sendgrid = {"type": "array", "items": {"type": "object", "required": ["event", "sg_event_id"]}}
    sns = {
        "type": "object",
        "required": ["Type", "MessageId", "TopicArn", "Signature", "SigningCertURL"],
        "properties": {"Type": {"type": "string"}, "Message": {"type": "string"}},
    }
    postmark = {"type": "object", "required": ["RecordType"]}
    return {
        "/webhooks/mailgun": {
            "post": provider_webhook(
                "Mailgun",
                "receiveMailgunEvent",
                'One event, `{"signature": {"timestamp", "token", "signature"}, '
                '"event-data": {...}}`. The signature is the hex HMAC-SHA256 of `timestamp + '
                "token` with `MAILGUN_WEBHOOK_SIGNING_KEY`; a timestamp older than "
                "`WEBHOOK_MAX_AGE` or more than 5 minutes ahead is refused (401). The signature "
                "does not cover the event, so a token is kept with its event for as long as its "
                "timestamp is taken: the same token with the same event again is a repeat "
                "(200), with another event a replay (401, `signature.token`). `failed` with "
                "`severity: permanent` is a bounce, with `severity: temporary` a deferral.",
                mailgun,
            )
        },
        "/webhooks/sendgrid": {
            "post": provider_webhook(
                "SendGrid",
                "receiveSendGridEvents",
                "A batch of events (a JSON array), recorded in one transaction. The header "
                f"`{SENDGRID_SIGNATURE}` is the base64 ECDSA P-256/SHA-256 signature of "
                f"`{SENDGRID_TIMESTAMP}` followed by the raw body, checked with "
                "`SENDGRID_WEBHOOK_PUBLIC_KEY`; a timestamp older than `WEBHOOK_MAX_AGE`, more "
                "than 5 minutes ahead or not a number of seconds is refused (401).",
                sendgrid,
                [signature_header(SENDGRID_SIGNATURE), signature_header(SENDGRID_TIMESTAMP)],
            )
        },
        "/webhooks/ses": {"post": ses_webhook(sns)},
        "/webhooks/postmark": {
            "post": provider_webhook(
                "Postmark",
                "receivePostmarkEvent",
                "One event, a JSON object with its `RecordType`. Postmark signs nothing: the "
                "webhook URL carries HTTP basic auth, `https://user:password@host/webhooks/"
                "postmark`, checked against `POSTMARK_WEBHOOK_USERNAME` and "
                "`POSTMARK_WEBHOOK_PASSWORD` (the endpoint is off, 404, until both are set); "
                "missing or wrong credentials are refused (401, `Authorization`), and a client "
                "that keeps guessing gets 429. `Delivery` is a delivery, `Bounce` a bounce "
                "(`HardBounce` and the other permanent types) or a deferral (`SoftBounce`, "
                "`Transient`, ...) by its `Type`, `SpamComplaint` a complaint, "
                "`SubscriptionChange` with `SuppressSending` an unsubscribe.",
                postmark,
                authentication="the basic auth of its URL",
                extra={
                    "401": error_response(
                        "Missing or wrong basic auth; nothing stored.", "WWW-Authenticate"
                    ),
                    **error_refs("429"),
                },
                security=[{"postmarkWebhookAuth": []}],
            )
        },
    }


def ses_webhook(body):
    """``POST /webhooks/ses``: one SNS message (sent as text/plain), its origin checked."""
    hook = provider_webhook(
        "Amazon SES (through Amazon SNS)",
        "receiveSesEvents",
        "One SNS message. Its `TopicArn` must be one of `SES_SNS_TOPIC_ARNS` (else 403, "
        "`TopicArn`); its `SigningCertURL` must match `SNS_URL_PATTERN` (else 401, nothing is "
        "fetched); its `Signature` must be the RSA signature (SHA-1 for `SignatureVersion` 1, "
        "SHA-256 for 2) of SNS's string to sign with that certificate's key (401); its "
        "`Timestamp` must be within `WEBHOOK_MAX_AGE` (401). A `Notification` carries one SES "
        "event (Delivery, Bounce, Complaint, Reject, DeliveryDelay, ...), recorded once per "
        "recipient it names; a `SubscriptionConfirmation` is confirmed by a GET of its "
        "`SubscribeURL` when that matches `SNS_URL_PATTERN` (502 if the GET fails). The "
        "endpoint is off (404) while `SES_SNS_TOPIC_ARNS` is empty.",
        body,
    )
    hook["responses"]["403"] = error_response("A topic not in SES_SNS_TOPIC_ARNS; nothing stored.")
    hook["responses"]["502"] = error_response("The subscription could not be confirmed.")
    hook["requestBody"]["content"]["text/plain"] = {"schema": body}
    return hook


def signature_header(name):
    """A required header of SendGrid's signed event webhook."""
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}


def provider_webhook(
    provider,
    operation_id,
    description,
    body,
    parameters=(),
    authentication="the signature",
    extra=None,
    security=(),
):
    """``POST /webhooks/<provider>``: signed events, no API key; ``extra`` answers replace or
    add to the usual ones."""
    return operation(
        "events",
        operation_id,
        f"Receive {provider}'s delivery events (set this URL at {provider})",
        {
            "200": answer(service.EventsReceived, "Recorded (or known already)."),
            "400": error_response("The body is not what the provider sends; nothing stored."),
            "401": error_response("Missing, wrong or stale signature; nothing stored."),
            "404": error_response("The endpoint's key is not set: it is off."),
            **error_refs("503"),
            **(extra or {}),
        },
        description + f" No API key: {authentication} is the authentication, in every mode. A "
        "repeat of a stored event (same key) and an event of an unknown mail answer 200 and "
        "change nothing.",
        security=list(security),
        parameters=list(parameters),
        requestBody={"required": True, "content": {"application/json": {"schema": body}}},
    )


# Inbound mail ---------------------------------------------------------------------------------


def inbound_receiver_paths():
    """The providers' posts of mail received (the SMTP door takes it as an MX, not here)."""
    mailgun_form = {
        "type": "object",
        "required": ["timestamp", "token", "signature"],
        "properties": {
            name: {"type": "string"}
            for name in (
                "timestamp",
                "token",
                "signature",
                "recipient",
                "sender",
                "from",
                "subject",
                "body-plain",
                "body-html",
                "stripped-text",
                "message-headers",
                "attachment-count",
                "content-id-map",
                "body-mime",
            )
        },
    }
    mailgun = inbound_post(
        "Mailgun",
        "receiveMailgunInbound",
        "The form a route's `forward()` posts: fully parsed (`message-headers`, `body-plain`, "
        "`body-html`, `stripped-text`, `attachment-1`...), or, to a URL that ends in `mime`, "
        "the whole message in `body-mime`. Signed as Mailgun's delivery webhooks are: "
        "`signature` is the hex HMAC-SHA256 of `timestamp + token` with "
        "`MAILGUN_WEBHOOK_SIGNING_KEY` (the endpoint is off, 404, without it); a timestamp "
        "older than `WEBHOOK_MAX_AGE`, or a token that signed another post, is refused (401).",
        form_body(mailgun_form),
    )
    sendgrid = inbound_post(
        "SendGrid",
        "receiveSendGridInbound",
        "Inbound Parse's multipart form: `headers`, `text`, `html` (each in the charset "
        "`charsets` names), `envelope`, `attachment-info` and `attachment1`..., `spam_score`; "
        "or, in raw mode, the whole message in `email`. The Parse URL carries basic auth, "
        "`https://user:password@host/inbound/sendgrid`, checked against "
        "`SENDGRID_INBOUND_USERNAME` and `SENDGRID_INBOUND_PASSWORD` (off, 404, until both "
        "are set).",
        form_body({"type": "object", "properties": {"headers": {"type": "string"}}}),
        basic_auth=True,
    )
    postmark = inbound_post(
        "Postmark",
        "receivePostmarkInbound",
        "Postmark's inbound JSON: `FromFull`, `ToFull`, `CcFull`, `Subject`, `MessageID`, "
        "`TextBody`, `HtmlBody`, `StrippedTextReply`, `Headers`, `Attachments` (base64), "
        "`OriginalRecipient`, and `RawEmail` if it includes the raw message. The webhook URL "
        "carries basic auth, checked against `POSTMARK_WEBHOOK_USERNAME` and "
        "`POSTMARK_WEBHOOK_PASSWORD`, as for its delivery events.",
        {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        basic_auth=True,
    )
    return {
        "/inbound/mailgun": {"post": mailgun},
        "/inbound/mailgun/mime": {"post": {**mailgun, "operationId": "receiveMailgunInboundMime"}},
        "/inbound/sendgrid": {"post": sendgrid},
        "/inbound/postmark": {"post": postmark},
    }


def form_body(schema):
    """A request body posted as a form, multipart or urlencoded."""
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        },
    }


def inbound_post(provider, operation_id, description, body, basic_auth=False):
    """``POST /inbound/<provider>``: one mail the provider received, no API key."""
    authentication = "the basic auth of its URL" if basic_auth else "the signature"
    responses = {
        "200": answer(service.InboundReceived, "Taken: stored, a replay, or a bounce report."),
        "400": error_response(
            "The post is not what the provider sends; `errors` names the field. Nothing stored."
        ),
        "401": error_response(
            "Missing or wrong "
            + ("basic auth" if basic_auth else "signature, or a replayed one")
            + "; nothing stored.",
            *(("WWW-Authenticate",) if basic_auth else ()),
        ),
        "404": error_response("The endpoint's credentials are not set: it is off."),
        **error_refs("413", *(("429",) if basic_auth else ()), "503"),
    }
    return operation(
        "inbound",
        operation_id,
        f"Receive a mail {provider} received (set this URL at {provider})",
        responses,
        description + f" No API key: {authentication} is the authentication, in every mode. "
        "A delivery the provider posts again is a replay: 200, stored once.",
        security=[{"inboundBasicAuth": []}] if basic_auth else [],
        requestBody=body,
    )


# The suppression list -------------------------------------------------------------------------


def suppression_paths():
    """List the suppression list, add an address to it, take one off."""
    listed = operation(
        "suppressions",
        "listSuppressions",
        "The addresses mail does not go to, newest first",
        {
            "200": answer(service.SuppressionPage, "A page of entries in force."),
            **error_refs("400", "401", "429", "500", "503"),
        },
        parameters=[
            query(
                "reason",
                {"type": "string", "enum": list(REASONS), "description": "Only this reason."},
                "Only entries of this reason.",
            ),
            query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                "Page size.",
            ),
            query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
        ],
    )
    added = operation(
        "suppressions",
        "addSuppression",
        "Suppress an address by hand",
        {
            "201": answer(service.SuppressionAdded, "Added."),
            "200": answer(
                service.SuppressionAdded,
                "It was on the list already (a permanent entry stays as it was).",
            ),
            **error_refs("400", "401", "413", "415", "429", "500", "503"),
        },
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": ref("SuppressionRequest")}},
        },
    )
    removed = operation(
        "suppressions",
        "removeSuppression",
        "Take an address off the suppression list",
        {
            "204": {"description": "Removed."},
            "401": ref("Unauthorized", "responses"),
            "404": error_response("The address is not on the list."),
            **error_refs("429", "500", "503"),
        },
        parameters=[
            {
                "name": "address",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "description": "The address; its domain compares case-insensitively, its "
                    "local part as given.",
                },
            }
        ],
    )
    return {
        "/suppressions": {"get": listed, "post": added},
        "/suppressions/{address}": {"delete": removed},
    }


# The audit log --------------------------------------------------------------------------------


def audit_paths():
    """Read the audit log."""
    listed = operation(
        "audit",
        "listAudit",
        "The audit log, newest first, in stable pages",
        {
            "200": answer(audit.AuditPage, "A page of the log."),
            "403": error_response(
                "The key lacks `keys:manage` (field `scope`), or names another tenant without "
                "`admin` (field `tenant`)."
            ),
            **error_refs("400", "401", "429", "500", "503"),
        },
        "Every change an operator made in the admin, or a key made to keys, client webhook "
        "endpoints, templates or suppressions. A key with `admin` reads every tenant's rows "
        "(`tenant` narrows them to one); a key with `keys:manage` its own tenant's. Keyset "
        "pagination: rows appended during a walk never shift the pages.",
        parameters=[
            query(
                "tenant",
                {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                "Only this tenant's rows (another tenant's: `admin` only).",
            ),
            query(
                "action",
                {"type": "string", "minLength": 1, "maxLength": 500},
                "Only this action, e.g. `key.create`.",
            ),
            query(
                "target",
                {"type": "string", "minLength": 1, "maxLength": 500},
                "Only rows about this target (a key's id, an address, a template's name).",
            ),
            limit_parameter(),
            cursor_parameter(),
        ],
    )
    return {"/audit": {"get": listed}}


# The service ----------------------------------------------------------------------------------


def service_paths():
    """Health, liveness, readiness, metrics and this document."""
    not_ready = answer(
        service.Readiness,
        "Not ready: the database is unavailable, or its schema is not at this code's head.",
    )
    not_ready["headers"] = {"Retry-After": ref("Retry-After", "headers")}
    return {
        "/health": {
            "get": operation(
                "service",
                "getHealth",
                "The service's health",
                {
                    "200": answer(service.Health, "The database answers."),
                    **error_refs("500", "503"),
                },
                "200 while the database answers, with each provider's circuit breaker. `status` "
                "is `meltdown` when every provider's circuit is open or half-open: mail is still "
                "accepted but waits in the queue. Needs no key.",
                security=[],
            )
        },
        "/healthz": {
            "get": operation(
                "service",
                "getLiveness",
                "Liveness: the process answers",
                {"200": answer(service.Liveness, "The process answers.")},
                "200 as long as the process serves requests; touches neither the database nor "
                "the providers. Needs no key.",
                security=[],
            )
        },
        "/readyz": {
            "get": operation(
                "service",
                "getReadiness",
                "Readiness: the database answers and its schema is current",
                {"200": answer(service.Readiness, "Ready."), "503": not_ready},
                "200 with each provider's circuit, weight, rate cap and current rate, `meltdown` "
                "and the workers alive; 503 when the database is unavailable or its schema is "
                "missing or behind. A meltdown does not make the API unready: it still stores "
                "mail. Needs no key.",
                security=[],
            )
        },
        "/metrics": {
            "get": operation(
                "service",
                "getMetrics",
                "Prometheus metrics of the API and the queue",
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **error_refs("401", "429", "500"),
                },
                "The Prometheus text format (OpenMetrics when asked for in `Accept`): requests, "
                "mails accepted and rejected, latency, summed over every gunicorn process; mail "
                "by status, the oldest due mail's age and the providers' state read from the "
                "database. With `METRICS_TOKEN` set it takes that bearer token (or an API key); "
                "otherwise it is protected like the API.",
            )
        },
        SPEC_URL: {
            "get": operation(
                "service",
                "getSpec",
                "This OpenAPI document, as JSON",
                {
                    "200": json_body(
                        {"type": "object", "description": "An OpenAPI 3.0 document."},
                        "The OpenAPI document.",
                    )
                },
                security=[],
            )
        },
        DOCS_URL: {
            "get": operation(
                "service",
                "getDocs",
                "This document as a page for people (Swagger UI)",
                {
                    "200": {
                        "description": "Swagger UI reading `/api/spec`. Its scripts and styles "
                        "are served from under `/api/docs/`; nothing is loaded from elsewhere.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                security=[],
            )
        },
    }


# What the operations share --------------------------------------------------------------------


def error_responses(max_bytes):
    """The error answers the operations share, each with the Error body."""
    limit = f"{max_bytes} bytes" if max_bytes else "the server's `MAX_CONTENT_LENGTH`"
    conflict = error_response(
        "The mail's status does not allow this; `status` says what it is now."
    )
    conflict["content"]["application/json"]["schema"] = {
        "allOf": [ref("Error"), ref("StatusConflict")]
    }
    return {
        "BadRequest": error_response(
            "The body is not a JSON object, or fields are invalid, missing or unknown; `errors` "
            "names each one."
        ),
        "Unauthorized": error_response(
            "No valid API key. " + PROTECTED_MODE + " `WWW-Authenticate` is sent when keys are "
            "configured.",
            "WWW-Authenticate",
        ),
        "Forbidden": error_response(
            'The key lacks the scope this operation needs (`errors` names it: `{"field": '
            '"scope", "message": "needs mail:send"}`), the sender\'s domain is not '
            "one of the key's `allowed_from_domains` (field `from`), or the request names "
            "another tenant."
        ),
        "NotFound": error_response(
            "No mail with this id (or the id is not a UUID, or names another tenant's mail)."
        ),
        "MethodNotAllowed": error_response(
            "The path does not take this method (as `GET /mail`); `Allow` lists the methods it "
            "takes.",
            "Allow",
        ),
        "PayloadTooLarge": error_response(f"The request body is larger than {limit}."),
        "UnsupportedMediaType": error_response(
            "The body is neither JSON nor a form (`Content-Type` missing or another type)."
        ),
        "IdempotencyConflict": error_response(
            "This `Idempotency-Key` came before with a different request; nothing stored."
        ),
        "WrongStatus": conflict,
        "TooManyRequests": error_response(
            "Too many wrong API keys came from this client lately (`AUTH_FAILURE_LIMIT` "
            "within `AUTH_FAILURE_WINDOW` seconds): its wrong keys are refused so for "
            "`Retry-After` seconds; a valid key is still served. Behind a proxy listed in "
            "`TRUSTED_PROXIES`, the client is the address the proxy names in "
            "`X-Forwarded-For`. Or, submitting mail, the key's `rate_limit` or `daily_quota` "
            "is spent (`errors` names which; for the quota, `Retry-After` is the seconds until "
            "the next UTC day).",
            "Retry-After",
        ),
        "InternalError": error_response(
            "An unexpected error; it is logged, and the answer says nothing about it."
        ),
        "ServiceUnavailable": error_response(
            "The database is unreachable; retry after `Retry-After` seconds.", "Retry-After"
        ),
    }


def headers():
    """The response headers the answers refer to; ``required`` where an answer always has it."""
    return {
        "Location": {
            "description": "The mail's URL, `/mail/{id}`.",
            "required": True,
            "schema": {
                "type": "string",
                "format": "uri-reference",
                "description": "A relative URL.",
            },
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "description": "Seconds."},
        },
        "Allow": {
            "description": "The methods this path takes, comma-separated.",
            "required": True,
            "schema": {"type": "string", "description": "e.g. `POST, OPTIONS`."},
        },
        "WWW-Authenticate": {
            "description": "The authentication scheme to use.",
            "schema": {"type": "string", "description": 'e.g. `Bearer realm="mail"`.'},
        },
    }


def security_schemes():
    """The two ways to present an API key (either one is enough), and Postmark's webhook
    credentials."""
    return {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <key>`, with a key from the server's "
            "`API_KEYS`. " + PROTECTED_MODE,
        },
        "apiKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "`X-API-Key: <key>`, read when no bearer token is sent. "
            + PROTECTED_MODE,
        },
        "postmarkWebhookAuth": {
            "type": "http",
            "scheme": "basic",
            "description": "Postmark's webhooks only: the basic auth of the webhook URL, "
            "`POSTMARK_WEBHOOK_USERNAME` and `POSTMARK_WEBHOOK_PASSWORD`.",
        },
        "inboundBasicAuth": {
            "type": "http",
            "scheme": "basic",
            "description": "The providers' inbound posts: the basic auth of the URL set at the "
            "provider, `SENDGRID_INBOUND_USERNAME` and `SENDGRID_INBOUND_PASSWORD` for "
            "SendGrid, `POSTMARK_WEBHOOK_USERNAME` and `POSTMARK_WEBHOOK_PASSWORD` for Postmark.",
        },
    }


# Routes ---------------------------------------------------------------------------------------


def spec_view():
    """``GET /api/spec``: the document as JSON, in its readable key order."""
    body = json.dumps(build_spec(current_app.config), indent=2)
    return current_app.response_class(body + "\n", mimetype="application/json")


def docs_blueprint():
    """Swagger UI for ``/api/spec``, its scripts and styles served from under ``/api/docs/``."""
    return get_swaggerui_blueprint(
        DOCS_URL, SPEC_URL, config=SWAGGER_UI_CONFIG, blueprint_name=DOCS_BLUEPRINT
    )


def init_app(app):
    """Register ``GET /api/spec``, and Swagger UI at ``GET /api/docs`` with its assets."""
    app.add_url_rule(SPEC_URL, "openapi_spec", spec_view, methods=["GET"])
    app.register_blueprint(docs_blueprint())
    # The blueprint serves its page at /api/docs/ only; answer the documented URL itself too,
    # rather than with a redirect to the slash.
    page = app.view_functions[f"{DOCS_BLUEPRINT}.show"]
    app.add_url_rule(DOCS_URL, "openapi_docs", page, methods=["GET"])
