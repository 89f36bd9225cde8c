"""The API's OpenAPI 3.0.3 document: JSON at ``/api/spec``, Swagger UI at ``/api/docs``.

The document is a plain dict assembled by the small functions below, one per part (info, a
path, a schema, ...), so that a change to the API is a change to one readable function. The
docs page is Swagger UI (from the ``flask-swagger-ui`` wheel, served by us, nothing from a CDN)
reading ``/api/spec``, so the two never disagree. Both routes are public and need no API key:
they describe the API, they do not use it.
"""

import json

from flask import current_app
from flask_swagger_ui import get_swaggerui_blueprint

from mailer.api.resources import JSON_TYPES, MAX_BATCH
from mailer.events.provider import EVENT_TYPES
from mailer.events.signatures import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP
from mailer.queue.suppressions import REASONS
from mailer.validation.mail import MAX_SUBJECT
from mailer.vocabulary import (
    ANSWER_OUTCOMES,
    ATTEMPT_OUTCOMES,
    CIRCUIT_STATES,
    MAIL_STATUSES,
    PAUSED,
)
from mailer.vocabulary import (
    RECIPIENT_STATUSES as STATUSES_OF_RECIPIENTS,
)
from mailer.worker.dispatch import STRATEGIES

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
# Each status code's shared answer in components/responses.
ERROR_RESPONSES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "404": "NotFound",
    "405": "MethodNotAllowed",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "429": "TooManyRequests",
    "500": "InternalError",
    "503": "ServiceUnavailable",
}
PROTECTED_MODE = (
    "When the server has no `API_KEYS` configured it runs in protected mode: it answers "
    "clients connecting over the loopback interface (and not through a proxy) without a key, "
    "and every other client with 401."
)
# What validation.py accepts, as ECMA-262 patterns. No regular expression says all that
# email-validator and the RFC 5322 parser do, so the address pattern matches their common forms
# only, each part within its limits, so that every string it matches is accepted: schemathesis
# sends such strings and expects a 202. What else the server takes (internationalised
# addresses, looser spacing) and refuses (special-use domains) is in ADDRESS_RULES.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext
# A dot-atom of at most 64 characters (RFC 5321's limit on a local part).
LOCAL_PART = rf"(?:{ATEXT}{{1,15}}\.){{0,3}}{ATEXT}{{1,16}}"
# Labels without "--" (IDNA keeps it for A-labels), a top-level domain ending in a letter (as
# email-validator requires), and short enough that an address stays within 254 characters.
LABEL = r"[A-Za-z0-9]{1,10}(?:-[A-Za-z0-9]{1,10}){0,2}"
ADDR_SPEC = rf"{LOCAL_PART}@(?:{LABEL}\.){{1,3}}[A-Za-z0-9]{{0,9}}[A-Za-z]"
# A display name of atoms (Latin letters too, as RFC 6532 allows) or one quoted string of ASCII,
# without "?": "=?...?=" is an RFC 2047 encoded word, which the parser decodes or refuses.
NAME_ATOM = r"[A-Za-z0-9!#$%&'*+/=^_`{|}~\u00c0-\u024f-]{1,20}"
DISPLAY_NAME = rf'(?:{NAME_ATOM}(?: {NAME_ATOM}){{0,3}}|"[ !#->@-\[\]-~]{{0,40}}")'
MAILBOX = rf"(?:{ADDR_SPEC}|(?:{DISPLAY_NAME} )?<{ADDR_SPEC}>)"
# A header field: no line breaks nor controls (headers.FORBIDDEN_IN_HEADERS, spelled out).
HEADER_TEXT = r"^[^\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]*$"
BODY_TEXT = r"^[^\x00]*$"  # a body may hold anything but NUL, which no database stores
ADDRESS_TEXT = "Addresses separated by commas, e.g. `a@example.com, B <b@example.com>`."
ADDRESS_RULES = (
    "An address is `local@domain`, optionally with a display name: `Name <local@domain>` or "
    '`"Name" <local@domain>`. The pattern is its common form, within RFC 5321\'s lengths. '
    "The server checks each address with email-validator and the RFC 5322 parser, so it also "
    "accepts internationalised addresses (UTF-8 local parts, IDN domains, any letters in a "
    "name), other dot-atoms of up to 64 characters and looser spacing, and it refuses the "
    "special-use domains (`.test`, `.local`, `.localhost`, `.invalid`, `.onion`, `.arpa`) "
    "that the pattern lets through. In a form, repeat the field to give an array."
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


# Small builders -----------------------------------------------------------------------------


def ref(name, kind="schemas"):
    """A ``$ref`` to a component of ``kind`` named ``name``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def string(description, **extra):
    """A string schema."""
    return {"type": "string", "description": description, **extra}


def nullable(schema):
    """``schema`` that may also be null."""
    return {**schema, "nullable": True}


def timestamp(description):
    """An ISO 8601 timestamp with a time zone."""
    return string(description, format="date-time")


def integer(description, **extra):
    """An integer schema."""
    return {"type": "integer", "description": description, **extra}


def obj(description, properties, required=None):
    """An object schema; every property is required unless ``required`` is given."""
    return {
        "type": "object",
        "description": description,
        "required": list(properties) if required is None else required,
        "properties": properties,
    }


def json_body(schema, description):
    """A response or body content of JSON described by ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# The document -------------------------------------------------------------------------------


def build_spec(config=None):
    """The whole OpenAPI document, with the limits of ``config`` (a Flask config) if given."""
    config = config or {}
    max_recipients = int(config.get("MAX_RECIPIENTS", 50))
    max_bytes = config.get("MAX_CONTENT_LENGTH")
    return {
        "openapi": OPENAPI_VERSION,
        "info": info(),
        "tags": [
            {"name": "mail", "description": "Submit mail and follow its delivery."},
            {"name": "service", "description": "The service's health and this documentation."},
        ],
        "paths": with_submission_life({**paths(), **delivery_paths(), **operations_paths()}),
        "components": {
            "schemas": {
                **with_submission_fields(with_delivery(schemas(max_recipients))),
                **operations_schemas(),
            },
            "responses": {**error_responses(max_bytes), **submission_errors()},
            "headers": headers(),
            "securitySchemes": security_schemes(),
        },
    }


def info():
    """The document's ``info``: title, version and how the API is used."""
    return {
        "title": "Mail service API",
        "version": API_VERSION,
        "description": INFO_DESCRIPTION,
    }


def paths():
    """Every URL the API serves (the admin's HTML pages under ``/admin`` are not part of it)."""
    return {
        "/mail": {"post": submit_mail()},
        "/mail/batch": {"post": submit_batch()},
        "/mail/{mail_id}": {"get": get_mail()},
        "/health": {"get": health()},
        "/api/spec": {"get": spec_operation()},
        "/api/docs": {"get": docs_operation()},
    }


# Operations ---------------------------------------------------------------------------------


def submit_mail():
    """``POST /mail``."""
    return {
        "tags": ["mail"],
        "operationId": "submitMail",
        "summary": "Submit a mail for delivery",
        "description": "Validates the fields, stores the mail as `queued` and commits it, then "
        "answers 202; a worker sends it later. Every invalid field is listed in "
        "the 400 answer at once.",
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "description": "The mail, as a JSON object (any `+json` type is read as JSON) or "
            "as form fields. In a form, repeat `to`, `cc` or `bcc` to give "
            "several addresses, or give one comma-separated value.",
            "content": {
                kind: {"schema": ref("MailRequest" if kind in JSON_TYPES else "MailForm")}
                for kind in MAIL_CONTENT_TYPES
            },
        },
        "responses": submit_responses(accepted()),
    }


def submit_batch():
    """``POST /mail/batch``."""
    return {
        "tags": ["mail"],
        "operationId": "submitMailBatch",
        "summary": f"Submit up to {MAX_BATCH:,} mails at once, all or none",
        "description": "Validates every mail, then stores them all as `queued` in one "
        "transaction and answers 202 with their ids in the order given. If any "
        "mail is invalid, none is stored and the 400 names each bad item by its "
        "index (`field` is like `[3].to`).",
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                        "items": ref("MailRequest"),
                    }
                }
            },
        },
        "responses": submit_responses(batch_answer()),
    }


def submit_responses(accepted_answer):
    """The answers of an operation that submits mail: 202 and the errors it can meet."""
    return {
        "202": accepted_answer,
        **error_refs("400", "401", "405", "413", "415", "429", "500", "503"),
    }


def error_refs(*codes):
    """The shared error answers with these status codes, as ``$ref``s."""
    return {code: ref(ERROR_RESPONSES[code], "responses") for code in codes}


def batch_answer():
    """The 202 answer of ``POST /mail/batch``."""
    answer = json_body(ref("BatchAccepted"), "Accepted: every mail is stored as `queued`.")
    answer["links"] = {
        "GetFirstMail": {
            "operationId": "getMail",
            "parameters": {"mail_id": "$response.body#/ids/0"},
            "description": "The first mail of the batch; the others are read the same way.",
        }
    }
    return answer


def batch_accepted():
    """The 202 body of ``POST /mail/batch``."""
    return obj(
        "The stored mails' ids, in the order given; poll `/mail/{id}` for each.",
        {
            "success": {"type": "boolean", "enum": [True]},
            "count": integer("How many mails were stored."),
            "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        },
    )


def accepted():
    """The 202 answer of ``POST /mail``."""
    answer = json_body(
        ref("Mail"),
        "Accepted: the mail is stored as `queued` (with an empty "
        "`attempt_log`). Poll the `Location` to follow it.",
    )
    answer["headers"] = {"Location": ref("Location", "headers")}
    answer["links"] = {
        "GetMail": {
            "operationId": "getMail",
            "parameters": {"mail_id": "$response.body#/id"},
            "description": "The mail just stored, by the `id` of this answer.",
        }
    }
    return answer


def get_mail():
    """``GET /mail/{mail_id}``."""
    return {
        "tags": ["mail"],
        "operationId": "getMail",
        "summary": "Read a mail's status, the providers' answers and its attempts",
        "security": SECURITY,
        "parameters": [
            {
                "name": "mail_id",
                "in": "path",
                "required": True,
                "description": (
                    "The mail's id, from the 202 answer or its `Location`. An id that is "
                    "not a UUID is answered like an unknown one, with 404."
                ),
                "schema": string("A UUID.", format="uuid"),
            }
        ],
        "responses": {
            "200": json_body(ref("Mail"), "The mail."),
            # 405 too: `GET /mail/batch` names the batch endpoint, which takes POST only.
            **error_refs("401", "404", "405", "429", "500", "503"),
        },
    }


def health():
    """``GET /health``."""
    return {
        "tags": ["service"],
        "operationId": "getHealth",
        "summary": "The service's health",
        "description": "200 while the database answers, with each provider's circuit breaker. "
        "`status` is `meltdown` when every provider's circuit is open or "
        "half-open: mail is still accepted but waits in the queue. Needs no key.",
        "security": [],
        "responses": {
            "200": json_body(ref("Health"), "The database answers."),
            **error_refs("500", "503"),
        },
    }


def spec_operation():
    """``GET /api/spec``."""
    return {
        "tags": ["service"],
        "operationId": "getSpec",
        "summary": "This OpenAPI document, as JSON",
        "security": [],
        "responses": {
            "200": json_body(
                {"type": "object", "description": "An OpenAPI 3.0 document."},
                "The OpenAPI document.",
            ),
        },
    }


def docs_operation():
    """``GET /api/docs``."""
    return {
        "tags": ["service"],
        "operationId": "getDocs",
        "summary": "This document as a page for people (Swagger UI)",
        "security": [],
        "responses": {
            "200": {
                "description": "Swagger UI reading `/api/spec`. Its scripts and styles are "
                "served from under `/api/docs/`; nothing is loaded from "
                "elsewhere.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
        },
    }


# Error responses and headers ----------------------------------------------------------------


def error_response(description, *header_names):
    """An error answer with the Error body and the named headers."""
    answer = json_body(ref("Error"), description)
    if header_names:
        answer["headers"] = {name: ref(name, "headers") for name in header_names}
    return answer


def error_responses(max_bytes):
    """The error answers the operations share, each with the Error body."""
    limit = f"{max_bytes} bytes" if max_bytes else "the server's `MAX_CONTENT_LENGTH`"
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
        "NotFound": error_response("No mail with this id (or the id is not a UUID)."),
        "MethodNotAllowed": error_response(
            "The path does not take this method (as `GET /mail`); `Allow` lists the methods it "
            "takes.",
            "Allow",
        ),
        "PayloadTooLarge": error_response(f"The request body is larger than {limit}."),
        "UnsupportedMediaType": error_response(
            "The body is neither JSON nor a form (`Content-Type` missing or another type)."
        ),
        "TooManyRequests": error_response(
            "Too many wrong API keys came from this client lately (`AUTH_FAILURE_LIMIT` "
            "within `AUTH_FAILURE_WINDOW` seconds): its wrong keys are refused so for "
            "`Retry-After` seconds; a valid key is still served. Behind a proxy listed in "
            "`TRUSTED_PROXIES`, the client is the address the proxy names in "
            "`X-Forwarded-For`.",
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
            "schema": string("A relative URL.", format="uri-reference"),
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": integer("Seconds.", minimum=0),
        },
        "Allow": {
            "description": "The methods this path takes, comma-separated.",
            "required": True,
            "schema": string("e.g. `POST, OPTIONS`."),
        },
        "WWW-Authenticate": {
            "description": "The authentication scheme to use.",
            "schema": string('e.g. `Bearer realm="mail"`.'),
        },
    }


def security_schemes():
    """The two ways to present an API key; either one is enough."""
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
    }


# Schemas ------------------------------------------------------------------------------------


def schemas(max_recipients):
    """Every schema of a request or answer body."""
    return {
        "MailRequest": mail_request(max_recipients),
        "MailForm": mail_form(max_recipients),
        "Mail": mail(),
        "ProviderAnswer": provider_answer(),
        "Attempt": attempt(),
        "BatchAccepted": batch_accepted(),
        "Error": error(),
        "FieldError": field_error(),
        "Health": health_body(),
        "AttachmentRequest": obj(
            "A file to attach.",
            {
                "filename": string(
                    "A file name, not a path: no `/`, `\\` or control characters.",
                    minLength=1,
                    maxLength=255,
                    pattern=r"^[^/\\\x00-\x1f\x7f-\x9f]+$",
                ),
                "content_type": string(
                    "A MIME type; application/octet-stream if absent.",
                    pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/"
                    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
                ),
                "content": string("The file, base64 (RFC 4648, padded).", format="byte"),
            },
            required=["filename", "content"],
        )
        | {"additionalProperties": False},
        "Attachment": obj(
            "An attachment as stored.",
            {
                "filename": string("Its name."),
                "content_type": string("Its type."),
                "size": integer("Bytes, decoded.", minimum=0),
            },
        ),
        "ProviderHealth": provider_health(),
    }


def addresses(description, most, required, nulls):
    """An address field: one string of ``most`` comma-separated addresses, or an array of them.

    An optional field may also be an empty string or an empty array, and null if ``nulls``; each
    means "none".
    """
    mailbox = {"type": "string", "pattern": f"^{MAILBOX}$"}
    listed = MAILBOX if most == 1 else f"{MAILBOX}(?:, ?{MAILBOX}){{0,{most - 1}}}"
    text = string(
        ADDRESS_TEXT if most > 1 else "One address, e.g. `Shop <shop@example.com>`.",
        pattern=f"^{listed}$" if required else f"^(?:{listed})?$",
    )
    array = {
        "type": "array",
        "items": mailbox,
        "maxItems": most,
        "description": "One address per item.",
    }
    if required:
        array["minItems"] = 1
    elif nulls:
        text["nullable"] = True
    return {"description": f"{description} {ADDRESS_RULES}", "oneOf": [text, array]}


def mail_request(max_recipients, nulls=True):
    """The fields of ``POST /mail``; null is "none" for optional fields if ``nulls`` (JSON)."""
    properties = {
        "from": addresses("The sender: exactly one address.", 1, True, nulls),
        "to": addresses(f"The recipients, at most {max_recipients}.", max_recipients, True, nulls),
        "cc": addresses(
            f"Copy recipients, at most {max_recipients}.", max_recipients, False, nulls
        ),
        "bcc": addresses(
            f"Blind copy recipients, at most {max_recipients}.", max_recipients, False, nulls
        ),
        "reply_to": addresses("At most one address for replies.", 1, False, nulls),
        "subject": string(
            "The subject: one line, without line breaks or control characters.",
            minLength=1,
            maxLength=MAX_SUBJECT,
            pattern=HEADER_TEXT,
        ),
        "text": body_text("The plain-text body", nulls),
        "html": body_text("The HTML body", nulls),
    }
    schema = obj(
        "A mail to send. Any field not listed here is rejected with 400.",
        properties,
        required=["from", "to", "subject"],
    )
    schema["additionalProperties"] = False
    # OpenAPI 3.0 has no "one of these two is required", but anyOf of two required ones says it;
    # each branch also asks for a non-empty string, as null and "" mean "no body".
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
        for name in ("text", "html")
    ]
    return schema


def body_text(description, nulls):
    """A body field: any text but NUL; empty (or null, if ``nulls``) means none."""
    schema = string(
        f"{description}, without NUL characters. Give `text`, `html` or both; "
        f"{'null or empty' if nulls else 'empty'} means none.",
        pattern=BODY_TEXT,
    )
    return nullable(schema) if nulls else schema


def mail_form(max_recipients):
    """``MailRequest`` as form fields: a form has no null, and repeats a field for an array."""
    schema = mail_request(max_recipients, nulls=False)
    schema["description"] = (
        "A mail to send, as form fields (every value a string; repeat "
        "`to`, `cc` or `bcc` for several). Any other field, and any "
        "uploaded file, is rejected with 400."
    )
    return schema


def mail():
    """The mail object of ``Email.to_dict``: the request as stored, and its delivery so far."""
    return obj(
        "A mail and its delivery so far.",
        {
            "id": string("The mail's id.", format="uuid"),
            "status": string(
                "`queued`, then `sending` while a worker holds it, and finally `sent` "
                "or `failed` (a failed delivery may also return it to `queued` for a "
                "retry).",
                enum=MAIL_STATUSES,
            ),
            "success": {"type": "boolean", "enum": [True], "description": "Always true."},
            "from_address": string("The sender, normalised."),
            "to_address": string(
                "The recipients, normalised and joined by `, ` (as the original "
                "service's clients read them)."
            ),
            "to": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The recipients, normalised, one address (with its display name) "
                "each.",
            },
            "cc": {"type": "array", "items": {"type": "string"}, "description": "Copy recipients."},
            "bcc": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Blind copy recipients.",
            },
            "reply_to": nullable(string("The reply-to address.")),
            "subject": string("The subject."),
            "mail": nullable(string("The plain-text body (the request's `text`).")),
            "html": nullable(string("The HTML body.")),
            "result": nullable(
                {
                    "type": "array",
                    "items": ref("ProviderAnswer"),
                    "description": "The answer of each provider called by the latest "
                    "delivery, in order; null before the first.",
                }
            ),
            "provider": nullable(string("The provider of the latest delivery that settled it.")),
            "provider_message_id": nullable(string("The id the provider gave the message.")),
            "attempts": integer("Deliveries tried so far.", minimum=0),
            "last_error": nullable(string("Why the latest delivery did not succeed.")),
            "next_attempt_at": nullable(
                timestamp("When the next delivery is due; only while `queued`.")
            ),
            "created_at": timestamp("When the mail was accepted."),
            "updated_at": timestamp("When the mail last changed."),
            "sent_at": nullable(timestamp("When a provider accepted the mail.")),
            "attempt_log": {
                "type": "array",
                "items": ref("Attempt"),
                "description": "Every provider call for this mail, oldest first.",
            },
        },
    )


def provider_answer():
    """One provider's answer to one delivery, as kept in a mail's ``result``."""
    return obj(
        "What one provider answered to one delivery.",
        {
            "provider": string("The provider's name, e.g. `mailgun`."),
            "outcome": string("What came of the call.", enum=ANSWER_OUTCOMES),
            "status_code": nullable(integer("The provider's HTTP status, if it answered.")),
            "message_id": nullable(string("The provider's id for the message, once sent.")),
            "response": {"description": "The provider's answer body: JSON, text, or null."},
            "error": nullable(string("Why the call did not succeed.")),
            "duration_ms": integer("How long the call took.", minimum=0),
            "at": timestamp("When the call ended."),
        },
    )


def attempt():
    """One row of a mail's ``attempt_log`` (``DeliveryAttempt.to_dict``)."""
    return obj(
        "One provider call for a mail (or a lease that expired mid-send).",
        {
            "number": integer("The mail's delivery attempt this call belongs to.", minimum=0),
            "provider": nullable(string("The provider called; null for `lease_expired`.")),
            "outcome": string("What came of the call.", enum=ATTEMPT_OUTCOMES),
            "status_code": nullable(integer("The provider's HTTP status, if it answered.")),
            "response": {"description": "The provider's answer body: JSON, text, or null."},
            "error": nullable(string("Why the call did not succeed.")),
            "duration_ms": nullable(integer("How long the call took.", minimum=0)),
            "actor": nullable(
                string("Who did an operator's action (`retried`), e.g. `admin:alice`.")
            ),
            "at": timestamp("When the provider was called (or the action was taken)."),
        },
    )


def error():
    """Every error answer of the API."""
    return obj(
        "An error. `errors` names each field at fault (it may be empty).",
        {
            "success": {"type": "boolean", "enum": [False], "description": "Always false."},
            "message": string("What went wrong, for people."),
            "errors": {"type": "array", "items": ref("FieldError")},
        },
    )


def field_error():
    """One field at fault in an error."""
    return obj(
        "A field at fault: a body field, or a header such as `Authorization`.",
        {
            "field": string("The field's (or header's) name; in a batch, `[index].field`."),
            "message": string("What is wrong with it."),
            "index": integer("In a batch: the position of the mail at fault, from 0."),
        },
        required=["field", "message"],
    )


def health_body():
    """The body of ``GET /health``."""
    return obj(
        "The service's health.",
        {
            "status": string(
                "`meltdown` when no provider's circuit is closed.", enum=["ok", "meltdown"]
            ),
            "database": string("The database answered.", enum=["ok"]),
            "providers": {"type": "array", "items": ref("ProviderHealth")},
        },
    )


def provider_health():
    """One provider's circuit breaker in ``GET /health``."""
    return obj(
        "A provider's circuit breaker and rate-limit pause.",
        {
            "name": string("The provider's name."),
            "state": string(
                "`paused` while a 429 pause lasts, else the circuit's state.",
                enum=[*CIRCUIT_STATES, PAUSED],
            ),
            "circuit": string(
                "`open` after repeated failures; `half_open` while one probe is allowed.",
                enum=CIRCUIT_STATES,
            ),
            "usable": {
                "type": "boolean",
                "description": "Whether a worker sends through it now "
                "(closed and not paused); the same rule the worker applies.",
            },
            "consecutive_failures": integer("Transient failures in a row.", minimum=0),
            "open_until": nullable(timestamp("When an open circuit allows a probe.")),
            "paused_until": nullable(timestamp("Until when the provider asked us to wait (429).")),
            "last_error": nullable(string("The provider's latest failure.")),
            "opened_by_hand": nullable(
                obj(
                    "An operator opened this breaker by hand (planned maintenance): it stays open "
                    "until closed by hand.",
                    {
                        "by": string("Who opened it."),
                        "at": timestamp("When."),
                        "reason": nullable(string("Why, in the operator's words.")),
                    },
                )
            ),
        },
    )


# The whole life of a submission: richer requests, idempotency, listing, actions ------------

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1 to 255 printable ASCII characters. The same key with the same request "
    "answers the first answer again (`Idempotent-Replayed: true`) and stores "
    "nothing; with another request it is 422. Scoped per API key, kept for "
    "`IDEMPOTENCY_TTL` seconds.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}
MAIL_ID = {
    "name": "mail_id",
    "in": "path",
    "required": True,
    "description": "The mail's id.",
    "schema": string("A UUID.", format="uuid"),
}
# OpenAPI 3.0 cannot constrain an object's property names, so the rules on header names and
# metadata keys are in the descriptions; the server names a bad key in its 400.
HEADER_VALUE = string(
    "A header value: one line, no control characters.", maxLength=998, pattern=HEADER_TEXT
)


def with_submission_life(all_paths):
    """The paths with the listing, cancel and retry, and idempotent submits added."""
    for path in ("/mail", "/mail/batch"):
        operation = all_paths[path]["post"]
        operation["parameters"] = [IDEMPOTENCY_KEY]
        operation["responses"]["422"] = ref("IdempotencyConflict", "responses")
    all_paths["/mail"]["get"] = list_mail()
    all_paths["/mail/{mail_id}/cancel"] = {
        "post": mail_action(
            "cancelMail",
            "Cancel a mail no worker has taken yet",
            "A `queued` or `scheduled` mail becomes `cancelled` (200). Once it is `sending`, "
            "`sent` or later the answer is 409 with its current `status`.",
            "200",
        )
    }
    all_paths["/mail/{mail_id}/retry"] = {
        "post": mail_action(
            "retryMail",
            "Queue a failed or cancelled mail again",
            "A `failed` or `cancelled` mail is queued again with a fresh budget of attempts "
            "(202); any other status is 409 with the current `status`.",
            "202",
        )
    }
    return all_paths


def list_mail():
    """``GET /mail``."""
    query = [
        (
            "status",
            {"type": "array", "items": string("A status.", enum=MAIL_STATUSES)},
            "Only these statuses (repeat the parameter for several).",
        ),
        (
            "to",
            string("An address.", minLength=1, maxLength=320, pattern=HEADER_TEXT),
            "Mail with this recipient (to, cc or bcc): the domain in any case, the local part "
            "as given.",
        ),
        (
            "tag",
            string("A tag.", minLength=1, maxLength=320, pattern=HEADER_TEXT),
            "Mail carrying this tag.",
        ),
        ("created_after", timestamp("With a zone."), "Created after this moment."),
        ("created_before", timestamp("With a zone."), "Created before this moment."),
        ("limit", integer("1 to 500.", minimum=1, maximum=500), "Page size (default 50)."),
        (
            "cursor",
            string("Opaque.", minLength=1, pattern="^[A-Za-z0-9_-]+$"),
            "`next_cursor` of the previous page.",
        ),
    ]
    return {
        "tags": ["mail"],
        "operationId": "listMail",
        "security": SECURITY,
        "summary": "List mail, newest first, in stable pages",
        "description": "Keyset pagination: walking every page while mail keeps arriving shows "
        "each mail exactly once. An unknown parameter is a 400.",
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": schema,
                **({"style": "form", "explode": True} if name == "status" else {}),
            }
            for name, schema, text in query
        ],
        "responses": {
            "200": json_body(ref("MailPage"), "A page of mail."),
            **error_refs("400", "401", "429", "500", "503"),
        },
    }


def mail_action(operation_id, summary, description, success):
    """``POST /mail/{mail_id}/cancel`` or ``/retry``."""
    return {
        "tags": ["mail"],
        "operationId": operation_id,
        "security": SECURITY,
        "summary": summary,
        "description": description + " Recorded in the mail's attempt log with who did it.",
        "parameters": [MAIL_ID],
        "responses": {
            success: json_body(ref("Mail"), "The mail as it is now."),
            "409": ref("WrongStatus", "responses"),
            **error_refs("401", "404", "429", "500", "503"),
        },
    }


def submission_errors():
    """The error answers of idempotent submits and of the actions on a mail."""
    conflict = error_response(
        "The mail's status does not allow this; `status` says what it is now."
    )
    conflict["content"]["application/json"]["schema"] = {
        "allOf": [
            ref("Error"),
            {
                "type": "object",
                "required": ["status"],
                "properties": {"status": string("The mail's current status.", enum=MAIL_STATUSES)},
            },
        ]
    }
    return {
        "IdempotencyConflict": error_response(
            "This `Idempotency-Key` came before with a different request; nothing stored."
        ),
        "WrongStatus": conflict,
    }


def with_submission_fields(all_schemas):
    """The schemas with the richer request's fields, and the mail's members that show them."""
    for name in ("MailRequest", "MailForm"):
        all_schemas[name]["properties"].update(request_extras(name == "MailRequest"))
    all_schemas["Mail"]["properties"].update(mail_extras())
    all_schemas["ListedMail"] = listed_mail(all_schemas["Mail"])
    all_schemas["MailPage"] = obj(
        "A page of mail, newest first.",
        {
            "success": {"type": "boolean", "enum": [True]},
            "count": integer("Mails on this page.", minimum=0),
            "mails": {"type": "array", "items": ref("ListedMail")},
            "next_cursor": nullable(
                string("Pass as `cursor` for the next page; null on the last.")
            ),
        },
        required=["success", "count", "mails", "next_cursor"],
    )
    return all_schemas


def listed_mail(mail_schema):
    """A mail as ``GET /mail`` lists it: the mail without its attempt log (one query a page)."""
    properties = {
        name: schema for name, schema in mail_schema["properties"].items() if name != "attempt_log"
    }
    return {
        **mail_schema,
        "description": "A mail as listed: without its `attempt_log`.",
        "properties": properties,
        "required": [name for name in mail_schema["required"] if name != "attempt_log"],
    }


def request_extras(json_request):
    """``headers``, ``tags``, ``metadata``, ``attachments`` and ``send_at`` of a request."""
    tag = string(
        "A tag: 1-128 characters, one line.", minLength=1, maxLength=128, pattern=HEADER_TEXT
    )
    extras = {
        "tags": {
            "description": "Up to 10 tags.",
            "oneOf": [tag, {"type": "array", "items": tag, "maxItems": 10}],
        },
        "send_at": {
            "description": "Hold the mail until then (`scheduled`): ISO 8601 with a "
            "zone, at most `MAX_SCHEDULE_DAYS` ahead; a time in the past means now. "
            "Empty (or null in JSON) means now.",
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "maxLength": 0},
            ],
            **({"nullable": True} if json_request else {}),
        },
    }
    if json_request:
        extras.update(
            {
                "headers": {
                    "type": "object",
                    "maxProperties": 50,
                    "additionalProperties": HEADER_VALUE,
                    "description": "Custom headers. Names are RFC 5322 field "
                    "names (printable ASCII, no space or colon), not one the service sets "
                    "(From, To, Cc, Bcc, Subject, Reply-To, Date, Message-ID, "
                    "Content-Type, MIME-Version, ...).",
                },
                "metadata": {
                    "type": "object",
                    "maxProperties": 10,
                    "additionalProperties": {"type": "string", "pattern": BODY_TEXT},
                    "description": "A flat "
                    "object of strings, at most 1 KB as JSON; keys are 1-64 letters, "
                    "digits, `_`, `.` or `-`, and not `mail_id`.",
                },
                "attachments": {
                    "type": "array",
                    "items": ref("AttachmentRequest"),
                    "description": "Files; their decoded total is at most "
                    "`MAX_ATTACHMENT_BYTES` (413 past it).",
                },
            }
        )
    return extras


def mail_extras():
    """The mail object's members for the richer request: schedule, headers, tags, metadata,
    attachments."""
    return {
        "send_at": nullable(timestamp("When the mail was asked to be sent, if scheduled.")),
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Custom headers.",
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "The client's metadata, as given.",
        },
        "attachments": {
            "type": "array",
            "items": ref("Attachment"),
            "description": "Each attachment's name, type and size.",
        },
    }


# After the hand-off: events in, the suppression list, recipients and timeline -------------


def delivery_paths():
    """The provider webhooks and the suppression list."""
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
                {
                    "type": "object",
                    "required": ["signature", "event-data"],
                    "properties": {
                        "signature": {"type": "object"},
                        "event-data": {"type": "object"},
                    },
                },
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
                {
                    "type": "array",
                    "items": {"type": "object", "required": ["event", "sg_event_id"]},
                },
                [signature_header(SENDGRID_SIGNATURE), signature_header(SENDGRID_TIMESTAMP)],
            )
        },
        "/suppressions": {"get": list_suppressions(), "post": add_suppression()},
        "/suppressions/{address}": {"delete": remove_suppression()},
    }


def signature_header(name):
    """A required header of SendGrid's signed event webhook."""
    return {"name": name, "in": "header", "required": True, "schema": string(name)}


def provider_webhook(provider, operation_id, description, body, parameters=()):
    """``POST /webhooks/<provider>``: signed events, no API key."""
    return {
        "tags": ["events"],
        "operationId": operation_id,
        "summary": f"Receive {provider}'s delivery events (set this URL at {provider})",
        "description": description + " No API key: the signature is the authentication, in "
        "every mode. A repeat of a stored event (same key) and an event of an "
        "unknown mail answer 200 and change nothing.",
        "security": [],
        "parameters": list(parameters),
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": json_body(ref("EventsReceived"), "Recorded (or known already)."),
            "400": error_response("The body is not what the provider sends; nothing stored."),
            "401": error_response("Missing, wrong or stale signature; nothing stored."),
            "404": error_response("The endpoint's key is not set: it is off."),
            "503": ref("ServiceUnavailable", "responses"),
        },
    }


def list_suppressions():
    """``GET /suppressions``."""
    return {
        "tags": ["suppressions"],
        "operationId": "listSuppressions",
        "summary": "The addresses mail does not go to, newest first",
        "security": SECURITY,
        "parameters": [
            {
                "name": "reason",
                "in": "query",
                "schema": string("Only this reason.", enum=list(REASONS)),
            },
            {
                "name": "limit",
                "in": "query",
                "schema": integer("Page size.", minimum=1, maximum=500, default=50),
            },
            {
                "name": "cursor",
                "in": "query",
                "schema": string("`next_cursor` of the previous page."),
            },
        ],
        "responses": {
            "200": json_body(ref("SuppressionPage"), "A page of entries in force."),
            "400": ref("BadRequest", "responses"),
            "401": ref("Unauthorized", "responses"),
            **error_refs("429", "500", "503"),
        },
    }


def add_suppression():
    """``POST /suppressions``."""
    return {
        "tags": ["suppressions"],
        "operationId": "addSuppression",
        "summary": "Suppress an address by hand",
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("SuppressionRequest")}},
        },
        "responses": {
            "201": json_body(ref("Suppression"), "Added."),
            "200": json_body(
                ref("Suppression"),
                "It was on the list already (a permanent entry stays as it was).",
            ),
            "400": ref("BadRequest", "responses"),
            "401": ref("Unauthorized", "responses"),
            **error_refs("413", "415", "429", "500", "503"),
        },
    }


def remove_suppression():
    """``DELETE /suppressions/{address}``."""
    return {
        "tags": ["suppressions"],
        "operationId": "removeSuppression",
        "summary": "Take an address off the suppression list",
        "security": SECURITY,
        "parameters": [
            {
                "name": "address",
                "in": "path",
                "required": True,
                "schema": string(
                    "The address; its domain compares case-insensitively, its local part as given."
                ),
            }
        ],
        "responses": {
            "204": {"description": "Removed."},
            "401": ref("Unauthorized", "responses"),
            "404": error_response("The address is not on the list."),
            **error_refs("429", "500", "503"),
        },
    }


def with_delivery(all_schemas):
    """The schemas with a mail's ``recipients`` and ``events``, and those of the events and the
    suppression list."""
    mail_schema = all_schemas["Mail"]
    mail_schema["properties"].update(
        {
            "recipients": {
                "type": "array",
                "items": ref("Recipient"),
                "description": "Each recipient's status (in `GET /mail/{id}`).",
            },
            "events": {
                "type": "array",
                "items": ref("DeliveryEvent"),
                "description": "The providers' events, oldest first (in `GET /mail/{id}`).",
            },
        }
    )
    return {**all_schemas, **timeline_schemas(), **suppression_schemas()}


def timeline_schemas():
    """The schemas of a mail's recipients and events, and of the providers' webhooks' answer."""
    return {
        "Recipient": obj(
            "One recipient; before the hand-off its status is the mail's.",
            {
                "address": string("The bare address."),
                "status": string(
                    "Only moves forward, in this order (suppressed: not sent to).",
                    enum=list(dict.fromkeys([*STATUSES_OF_RECIPIENTS, *MAIL_STATUSES])),
                ),
                "reason": nullable(string("The provider's words, or why it was suppressed.")),
                "updated_at": nullable(timestamp("When the status last moved.")),
            },
        ),
        "DeliveryEvent": obj(
            "One event a provider reported.",
            {
                "type": string("Ours.", enum=list(EVENT_TYPES)),
                "provider": string("Who reported it."),
                "event": string("The provider's own name for it."),
                "recipient": nullable(string("The address it is about.")),
                "severity": nullable(string("Of a failure.", enum=["permanent", "temporary"])),
                "reason": nullable(string("The provider's words.")),
                "at": timestamp("When it happened, by the provider's clock."),
                "received_at": timestamp("When we received it."),
            },
        ),
        "EventsReceived": obj(
            "What came of a request's events.",
            {
                "success": {"type": "boolean", "enum": [True]},
                "received": integer("Events in the request.", minimum=0),
                "new": integer("Recorded now.", minimum=0),
                "repeats": integer("Recorded before: nothing changed.", minimum=0),
                "unmatched": integer("Of no known mail: logged, not stored.", minimum=0),
            },
        ),
    }


def suppression_schemas():
    """The schemas of the suppression list."""
    return {
        "Suppression": obj(
            "An address mail does not go to.",
            {
                "address": string("The bare address."),
                "reason": string(
                    "Bounces expire after `SUPPRESSION_DAYS`; the rest never.", enum=list(REASONS)
                ),
                "detail": nullable(string("The provider's or the operator's words.")),
                "mail_id": nullable(string("The mail that caused it.", format="uuid")),
                "created_at": timestamp("When it was (last) added."),
                "expires_at": nullable(timestamp("When it stops suppressing; null: never.")),
            },
            required=["address", "reason", "detail", "mail_id", "created_at", "expires_at"],
        ),
        "SuppressionRequest": {
            **obj(
                "An address to suppress.",
                {
                    "address": string("One address.", pattern=f"^{MAILBOX}$"),
                    "reason": nullable(string("Default `manual`.", enum=[*REASONS, None])),
                    "detail": nullable(string("Why, at most 1000 characters.", maxLength=1000)),
                },
                required=["address"],
            ),
            "additionalProperties": False,
        },
        "SuppressionPage": obj(
            "A page of the suppression list.",
            {
                "success": {"type": "boolean", "enum": [True]},
                "suppressions": {"type": "array", "items": ref("Suppression")},
                "count": integer("Entries on this page.", minimum=0),
                "next_cursor": nullable(string("Pass as `cursor` for the next page.")),
            },
        ),
    }


# Health and metrics: liveness, readiness, Prometheus --------------------------------------


def operations_paths():
    """``/healthz``, ``/readyz`` and ``/metrics``."""
    return {
        "/healthz": {"get": healthz_operation()},
        "/readyz": {"get": readyz_operation()},
        "/metrics": {"get": metrics_operation()},
    }


def healthz_operation():
    """``GET /healthz``."""
    return {
        "tags": ["service"],
        "operationId": "getLiveness",
        "summary": "Liveness: the process answers",
        "description": "200 as long as the process serves requests; touches neither the "
        "database nor the providers. Needs no key.",
        "security": [],
        "responses": {"200": json_body(ref("Liveness"), "The process answers.")},
    }


def readyz_operation():
    """``GET /readyz``."""
    not_ready = json_body(
        ref("Readiness"),
        "Not ready: the database is unavailable, or its schema is not at this code's head.",
    )
    not_ready["headers"] = {"Retry-After": ref("Retry-After", "headers")}
    return {
        "tags": ["service"],
        "operationId": "getReadiness",
        "summary": "Readiness: the database answers and its schema is current",
        "description": "200 with each provider's circuit, weight, rate cap and current rate, "
        "`meltdown` and the workers alive; 503 when the database is unavailable "
        "or its schema is missing or behind. A meltdown does not make the API "
        "unready: it still stores mail. Needs no key.",
        "security": [],
        "responses": {"200": json_body(ref("Readiness"), "Ready."), "503": not_ready},
    }


def metrics_operation():
    """``GET /metrics``."""
    return {
        "tags": ["service"],
        "operationId": "getMetrics",
        "summary": "Prometheus metrics of the API and the queue",
        "description": "The Prometheus text format (OpenMetrics when asked for in `Accept`): "
        "requests, mails accepted and rejected, latency, summed over every "
        "gunicorn process; mail by status, the oldest due mail's age and the "
        "providers' state read from the database. With `METRICS_TOKEN` set it "
        "takes that bearer token (or an API key); otherwise it is protected like "
        "the API.",
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "responses": {
            "200": {
                "description": "The metrics.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_refs("401", "429", "500"),
        },
    }


def operations_schemas():
    """The bodies of ``/healthz`` and ``/readyz``."""
    return {
        "Liveness": obj("The process answers.", {"status": string("Always `ok`.", enum=["ok"])}),
        "Readiness": obj(
            "Whether the API can serve, and the providers' state.",
            {
                "status": string("`ready`, or `unavailable` (503).", enum=["ready", "unavailable"]),
                "database": string("Whether the database answered.", enum=["ok", "unavailable"]),
                "schema": obj(
                    "The database's Alembic revision and this code's head.",
                    {
                        "status": string(
                            "`current`; `missing` or `behind` (503); `unknown` when the "
                            "database did not answer.",
                            enum=["current", "missing", "behind", "unknown"],
                        ),
                        "revision": nullable(string("The database's revision.")),
                        "head": string("The revision this code needs."),
                    },
                ),
                "meltdown": {
                    "type": "boolean",
                    "description": "No provider can take mail now "
                    "(every one open, half-open or paused): mail waits in the queue.",
                },
                "strategy": string("`PROVIDER_STRATEGY`.", enum=list(STRATEGIES)),
                "providers": {"type": "array", "items": ref("ReadyProvider")},
                "workers_alive": integer("Workers whose heartbeat is recent.", minimum=0),
            },
            required=["status", "database", "schema"],
        ),
        "ReadyProvider": {
            "allOf": [
                ref("ProviderHealth"),
                obj(
                    "Its share of the sending.",
                    {
                        "weight": {
                            "type": "number",
                            "description": "`PROVIDER_WEIGHTS` (1 if not named).",
                        },
                        "rate_limit": nullable(
                            {
                                "type": "number",
                                "description": "`PROVIDER_RATE_LIMITS`, "
                                "mails per second, all workers together; null: uncapped.",
                            }
                        ),
                        "current_rate": nullable(
                            integer(
                                "Mails sent to it in the last whole second "
                                "(counted for capped providers only; else null).",
                                minimum=0,
                            )
                        ),
                    },
                ),
            ]
        },
    }


# Routes -------------------------------------------------------------------------------------


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
