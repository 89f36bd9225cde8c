"""The REST resources: submit mail, list it, read it back, cancel or retry it; the suppression
list; the health.

``POST /mail`` validates, stores the mail as ``queued`` (or ``scheduled``) and commits before it
answers 202, so an acknowledged mail is never lost; the worker sends it later. Clients poll
``GET /mail/<id>`` and list ``GET /mail``. Every read and change goes through the queue
(``mailer.queue``), on a connection of ``database.transaction``.

Each endpoint needs a scope of the request's key (``needs``), and sees only the key's tenant's
mail and suppressions (``tenant_filter``; a key with ``admin`` sees every tenant's): another
tenant's mail id answers 404 exactly as an unknown id does. A stored key's
``allowed_from_domains``, ``rate_limit`` and ``daily_quota`` are checked before its mail is
stored (``admit``).
"""

import functools
import json
import uuid

from flask import Response, current_app, request
from flask_restful import Api, Resource
from werkzeug.routing import BaseConverter

from mailer.api import idempotency, listing, templated
from mailer.api.auditing import audited
from mailer.api.auth import current_principal, require_api_key, require_scope
from mailer.api.bodies import form_fields, parsed_json
from mailer.api.errors import ApiError, response_for
from mailer.database import transaction
from mailer.queue import actions, keys, reads, submit, suppressions
from mailer.queue.reads import AttachmentRow
from mailer.shapes import service
from mailer.shapes.mail import BatchAccepted, EventPage, Mail
from mailer.shapes.requests import MAX_BATCH
from mailer.shapes.wire import iso
from mailer.validation.addresses import bare_address
from mailer.validation.mail import ValidationError, validate_address, validate_mail
from mailer.worker import circuit
from models import WAITING

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ATTACHMENT_FIELDS = ("attachment", "attachments")  # multipart file fields that attach


class JsonApi(Api):
    """Flask-RESTful with our error shape for every exception raised in a resource, and our
    JSON (``output_json``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.representations["application/json"] = output_json

    def handle_error(self, e):
        """Answer with the JSON error of ``response_for`` (never a traceback)."""
        return response_for(e)


def output_json(data, code, headers=None):
    """A resource's answer as JSON, the same bytes in debug mode as in production:
    Flask-RESTful's own representation indents in debug mode, where ``GET /mail``, written by
    the shapes' writers, would not."""
    return json_response(encoded(data), code, headers or {})


def authenticated(method):
    """Resource decorator: the API key check of ``auth.require_api_key``."""

    def checked(*args, **kwargs):
        require_api_key()
        return method(*args, **kwargs)

    return checked


def needs(scope):
    """Method decorator: the key must hold ``scope`` (403 naming it otherwise); runs after
    ``authenticated``, which a resource's ``method_decorators`` put around it."""

    def decorate(method):
        @functools.wraps(method)
        def checked(*args, **kwargs):
            require_scope(scope)
            return method(*args, **kwargs)

        return checked

    return decorate


def tenant_filter():
    """The tenant the request's reads and actions are limited to (None: every tenant's, for a
    key with ``admin``)."""
    return current_principal().tenant_filter


def suppression_view():
    """Whose suppression list the request reads and changes (None: every one, for ``admin``):
    its key's tenant's, or for a ``mk_test_`` key the tenant's test view
    (``suppressions.view``), where test mail's bounces and complaints go."""
    principal = current_principal()
    tenant = principal.tenant_filter
    return None if tenant is None else suppressions.view(tenant, principal.test)


def owner():
    """Whose mail the request submits (``submit.Owner``): its key's tenant, id and mode."""
    principal = current_principal()
    return submit.Owner(principal.tenant, principal.key_id, principal.test)


def admit(cleans):
    """Check validated mail against the key's ``allowed_from_domains`` (403 naming the domain)
    and count it against its ``rate_limit`` and ``daily_quota`` (429 with ``Retry-After``);
    a key without limits costs nothing here. A batch counts each mail."""
    principal = current_principal()
    if principal.allowed_from_domains:
        errors = [
            {
                "field": f"[{index}].from" if len(cleans) > 1 else "from",
                "message": f"{domain} is not one of this key's allowed_from_domains",
            }
            for index, clean in enumerate(cleans)
            for domain in [bare_address(clean["from_address"]).rpartition("@")[2]]
            if domain not in principal.allowed_from_domains
        ]
        if errors:
            raise ApiError(403, f"This key may not send from {errors[0]['message']}", errors)
    if not principal.limited:
        return
    with transaction() as conn:
        refusal = keys.take(
            conn, principal.key_id, len(cleans), principal.rate_limit, principal.daily_quota
        )
    if refusal is not None:
        what = "rate limit" if refusal.field == "rate_limit" else "daily quota"
        raise ApiError(
            429,
            f"This key's {what} is spent",
            [{"field": refusal.field, "message": f"Try again in {refusal.retry_after}s"}],
            headers={"Retry-After": str(refusal.retry_after)},
        )


def read_mail_request():
    """The submitted fields as a dict, from a JSON object or a form; 400/415 otherwise."""
    mimetype = request.mimetype
    if mimetype in JSON_TYPES or mimetype.endswith("+json"):
        data = parsed_json(request.get_data(cache=True))
        if not isinstance(data, dict):
            raise ApiError(
                400,
                "The body must be a JSON object",
                [{"field": "body", "message": "Malformed JSON or not an object"}],
            )
        return data
    if mimetype in FORM_TYPES:
        return from_form(form_fields())
    raise ApiError(
        415,
        f"Unsupported content type {mimetype or '(none)'!r}",
        [
            {
                "field": "Content-Type",
                "message": "Use application/json, "
                "application/x-www-form-urlencoded or multipart/form-data",
            }
        ],
    )


def from_form(fields):
    """A form's fields as the JSON object they stand for.

    Files named ``attachment`` (or ``attachments``) are the attachments; any other file is kept
    so that validation refuses it instead of dropping it. ``headers`` and ``metadata`` are JSON
    objects in a form field; ``tags`` may repeat.
    """
    data = {
        key: values[0] if len(values) == 1 else values
        for key, values in fields.items()
        if key not in ATTACHMENT_FIELDS
    }
    files = [item for key in ATTACHMENT_FIELDS for item in fields.get(key, [])]
    if files:
        data["attachments"] = files
    for key in ("headers", "metadata"):
        if isinstance(data.get(key), str):
            data[key] = _json_field(key, data[key])
    return data


def _json_field(key, text):
    """A form field that holds a JSON object; 400 naming it if it does not."""
    value = parsed_json(text, key)
    if value is None:
        raise ApiError(
            400, "Invalid mail request", [{"field": key, "message": "Must be a JSON object"}]
        )
    return value


def limits():
    """The settings that bound a mail request, for ``validate_mail``."""
    config = current_app.config
    return {
        "max_recipients": config["MAX_RECIPIENTS"],
        "max_attachment_bytes": config["MAX_ATTACHMENT_BYTES"],
        "max_attachments": config["MAX_ATTACHMENTS"],
        "max_schedule_days": config["MAX_SCHEDULE_DAYS"],
    }


def store(cleans, answer, stamp=None):
    """Store validated mail (idempotently when the client sent a key); the HTTP answer.

    ``answer(rows)`` gives (body, status, headers) without what the database sets, and
    ``stamp(body, stamps)`` puts that in: the key is stored in the statement that stores the
    mail, before the database's values are known, so it keeps the body and those values
    apart. A replay answers the first request's status and body again, stamped the same way,
    with ``Idempotent-Replayed: true``.
    """
    key = idempotency.requested(cleans if len(cleans) > 1 else cleans[0])
    built = []  # the (body, status, headers) kept with the key

    def keep(rows):
        """(status, JSON text of the body) to keep with the key."""
        built[:] = [answer(rows)]
        return built[0][1], encoded(built[0][0])

    admit(cleans)
    try:
        result = submit.enqueue_many(transaction, cleans, key, keep if key else None, owner())
    except submit.IdempotencyConflict as err:
        raise idempotency.conflict(str(err)) from None
    if isinstance(result, submit.Replay):
        body = result.response
        if stamp is not None and result.stamps is not None:
            body = stamp(body, result.stamps)
        return json_response(
            encoded(body), result.status_code, {idempotency.REPLAYED: "true", **location(body)}
        )
    body, status, headers = built[0] if built else answer(result)
    if stamp is not None:
        first = result[0]
        body = stamp(body, (first["created_at"], first["status"], first["next_attempt_at"]))
    return json_response(encoded(body), status, headers)


def encoded(body):
    """A body as JSON text: ``json.dumps`` with its defaults, and a newline."""
    return json.dumps(body) + "\n"


def json_response(text, status, headers):
    """A finished JSON response, which Flask-RESTful passes on as it is (no second encoding)."""
    return Response(text, status, headers, mimetype="application/json")


# What the database sets when it stores a mail: not known when the answer is built.
UNSTAMPED = {"status": None, "created_at": None, "updated_at": None, "next_attempt_at": None}
# What a mail just stored has none of yet: the columns of its delivery, and its child rows.
UNDELIVERED = {
    "result": None,
    "provider": None,
    "provider_message_id": None,
    "route": None,
    "last_error": None,
    "sent_at": None,
    "attempt_log": (),
    "recipient_rows": (),
    "events": (),
    "event_count": 0,
    "replies": (),
    "reply_count": 0,
}


def location(body):
    """The Location header of a stored mail's answer (none for a batch)."""
    return {"Location": f"/mail/{body['id']}"} if "id" in body else {}


def known_key(mail_id):
    """The UUID a mail id in a URL stands for; 404 if it is not one."""
    key = mail_key(mail_id)
    if key is None:
        raise unknown_mail()
    return key


def mail_key(mail_id):
    """The UUID a mail id in a URL stands for, or None if it is not one."""
    try:
        return uuid.UUID(mail_id)
    except ValueError:
        return None


def unknown_mail():
    """The 404 of a mail id that names no mail."""
    return ApiError(404, "No mail with this id", [{"field": "id", "message": "Unknown id"}])


def accepted_mail(rows):
    """The 202 of ``POST /mail``: the mail as stored, and its Location, without what the
    database set (``stamp_mail`` puts it in)."""
    row = rows[0]
    files = [AttachmentRow(**item) for item in row["files"]]
    body = Mail.dump({**row, **UNSTAMPED, **UNDELIVERED, "attachments": files})
    return body, 202, location(body)


def stamp_mail(body, stamps):
    """``accepted_mail``'s body with what the database set for the mail: ``stamps`` is its
    (created_at, status, next_attempt_at). The result is the ``Mail`` of the stored row, as
    ``GET /mail/<id>`` shows it (tests/unit/api/test_mail_dict.py holds them together)."""
    created, status, due = stamps
    body.update(
        status=status,
        created_at=iso(created),
        updated_at=iso(created),
        next_attempt_at=iso(due) if status in WAITING else None,
    )
    for recipient in body["recipients"]:
        recipient["status"] = status
    return body


def accepted_batch(rows):
    """The 202 of ``POST /mail/batch``: the ids (text already), in the order given."""
    ids = [row["id"] for row in rows]
    return BatchAccepted.dump({"count": len(ids), "ids": ids}), 202, {}


class MailList(Resource):
    """``/mail``: submit a mail, or list them."""

    method_decorators = [authenticated]

    @needs("mail:send")
    def post(self):
        """Validate (render its template first, if it names one), store as queued or
        scheduled, commit, answer 202 with the mail."""
        data = read_mail_request()
        if not templated.uses_template(data):
            clean = validate_mail(templated.without_template(data), **limits())
            return store([clean], accepted_mail, stamp_mail)
        [(_, clean, errors, status)] = templated.validate_all(
            [data], limits(), current_principal().tenant
        )
        if errors:
            raise ValidationError(errors, status=status)
        return store([clean], accepted_mail, stamp_mail)

    @needs("mail:read")
    def get(self):
        """A page of mail, newest first, with the cursor of the next page (or null)."""
        query = listing.parse_query(current_principal())
        with transaction(single_statement=True) as conn:
            rows, more = reads.page(conn, **query)
        return json_response(listing.page_json(rows, more), 200, {})


class MailBatch(Resource):
    """``/mail/batch``: submit up to ``MAX_BATCH`` mails at once, all or none."""

    method_decorators = [authenticated]

    @needs("mail:send")
    def post(self):
        """Validate every item (each rendered from its template, if it names one), then store
        them all in one transaction; 400 names bad items."""
        items = read_batch_request()
        cleans, errors = [], []
        tenant = current_principal().tenant
        for index, clean, problems, _status in templated.validate_all(items, limits(), tenant):
            if clean is not None:
                cleans.append(clean)
            errors += [
                {
                    "field": f"[{index}]" + (f".{e['field']}" if e["field"] else ""),
                    "index": index,
                    "message": e["message"],
                }
                for e in problems
            ]
        if errors:
            bad = len({error["index"] for error in errors})
            raise ApiError(400, f"{bad} of {len(items)} mails are invalid; none was stored", errors)
        return store(cleans, accepted_batch)


BATCH_MEMBERS = ("defaults", "mails")


def read_batch_request():
    """The submitted mails from a JSON body: a list, or ``{"defaults", "mails"}`` whose every
    item is merged over the defaults (an item's field wins); 400/415 otherwise."""
    if not (request.mimetype in JSON_TYPES or request.mimetype.endswith("+json")):
        raise ApiError(
            415,
            f"Unsupported content type {request.mimetype or '(none)'!r}",
            [{"field": "Content-Type", "message": "Use application/json"}],
        )
    body = parsed_json(request.get_data(cache=True))
    items = body
    if isinstance(body, dict):
        items = body.get("mails")
        unknown = sorted(set(body) - set(BATCH_MEMBERS))
        if unknown:
            raise ApiError(
                400,
                "Invalid batch",
                [{"field": name, "message": "Unknown field"} for name in unknown],
            )
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(
            400,
            f"The body must be a JSON list of 1 to {MAX_BATCH} mails, or an object whose "
            "`mails` is one",
            [{"field": "body", "message": f"Expected a list of 1 to {MAX_BATCH} mail objects"}],
        )
    if isinstance(body, dict):
        return merged(body.get("defaults"), items)
    return items


def merged(defaults, items):
    """Each item merged over ``defaults`` (None: none); 400 if they are not an object."""
    if defaults is None:
        return items
    if not isinstance(defaults, dict):
        raise ApiError(
            400, "Invalid batch", [{"field": "defaults", "message": "Must be a JSON object"}]
        )
    return [{**defaults, **item} if isinstance(item, dict) else item for item in items]


class MailItem(Resource):
    """``/mail/<id>``: one mail's status, the providers' answers and its attempts."""

    method_decorators = [authenticated]

    @needs("mail:read")
    def get(self, mail_id):
        """The mail object (one statement: ``reads.mail_detail``); 404 for an unknown id (or
        another tenant's)."""
        mail = shown(known_key(mail_id))
        if mail is None:
            raise unknown_mail()
        return mail


def shown(key, conn=None):
    """The mail with the UUID ``key`` as ``GET /mail/<id>`` shows it, or None (also for
    another tenant's): one statement (``reads.mail_detail``), read as it is now, with its latest
    ``MAX_EVENTS_SHOWN`` events; on ``conn`` (a Connection, an action's) if given, else in a
    statement of its own."""
    events_shown, tenant = current_app.config["MAX_EVENTS_SHOWN"], tenant_filter()
    if conn is None:
        with transaction(single_statement=True) as conn:
            mail = reads.mail_detail(conn, key, events_shown, tenant)
    else:
        mail = reads.mail_detail(conn, key, events_shown, tenant)
    return None if mail is None else Mail.dump(mail)


class MailEvents(Resource):
    """``/mail/<id>/events``: every event of a mail, oldest first, in stable pages."""

    method_decorators = [authenticated]

    @needs("mail:read")
    def get(self, mail_id):
        """A page of the mail's events (``?limit=``, ``?cursor=``); 404 for an unknown id."""
        limit, after = listing.parse_events_query()
        key = known_key(mail_id)
        with transaction(single_statement=True) as conn:
            found = reads.events_page(conn, key, limit, after, tenant_filter())
        if found is None:
            raise unknown_mail()
        rows, more = found
        last = rows[-1] if more else None
        return EventPage.dump(
            {
                "events": [event for _, event in rows],
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last[1].occurred_at, last[0]),
            }
        )


class Health(Resource):
    """``/health``: 200 while the database answers, with each provider's circuit."""

    def get(self):
        """The database's and the providers' health; 503 if the database is unreachable.

        Usable and meltdown mean here exactly what they mean to the worker (``circuit``).
        """
        with transaction(single_statement=True) as conn:
            health = circuit.health(conn, current_app.config["PROVIDERS"])
        return service.Health.dump({**health, "database": "ok"})


class MailIdConverter(BaseConverter):
    """A mail id in a URL: any path segment but the fixed words of ``/mail/...`` routes.

    Without it ``GET /mail/batch`` would match ``/mail/<id>`` and answer "No mail with this id",
    and ``OPTIONS /mail/batch`` would advertise GET; with it, any method but POST is a 405.
    """

    regex = r"(?!batch$)[^/]+"


class MailCancel(Resource):
    """``/mail/<id>/cancel``: cancel a mail no worker has taken yet."""

    method_decorators = [authenticated]

    @needs("mail:manage")
    def post(self, mail_id):
        """200 with the cancelled mail; 409 with its status once it is being sent or later."""
        key = known_key(mail_id)
        with transaction() as conn:
            cancelled = actions.cancel(
                conn, [key], actor(), current_app.extensions["webhooks"], tenant_filter()
            )
            mail = shown(key, conn)
        if mail is None:
            raise unknown_mail()
        if not cancelled:
            raise too_late(mail, "cancelled", "only queued or scheduled mail can be cancelled")
        return mail, 200


class MailRetry(Resource):
    """``/mail/<id>/retry``: queue a failed or cancelled mail again."""

    method_decorators = [authenticated]

    @needs("mail:manage")
    def post(self, mail_id):
        """202 with the queued mail; 409 with its status if it is not failed or cancelled."""
        key = known_key(mail_id)
        with transaction() as conn:
            retried = actions.retry(conn, [key], actor(), tenant_filter())
            mail = shown(key, conn)
        if mail is None:
            raise unknown_mail()
        if not retried:
            raise too_late(mail, "retried", "only failed or cancelled mail can be retried")
        return mail, 202, {"Location": f"/mail/{key}"}


class SuppressionList(Resource):
    """``/suppressions``: the addresses mail does not go to; add one by hand."""

    method_decorators = [authenticated]

    @needs("suppressions:read")
    def get(self):
        """A page of entries in force, newest first (``?reason=``, ``?limit=``, ``?cursor=``):
        the key's tenant's (every tenant's for ``admin``)."""
        reason, limit, after = listing.parse_suppression_query()
        with transaction(single_statement=True) as conn:
            rows, more = suppressions.page(conn, reason, limit, after, suppression_view())
        last = rows[-1] if more else None
        return service.SuppressionPage.dump(
            {
                "suppressions": rows,
                "count": len(rows),
                "next_cursor": last
                and listing.encode_position(last["created_at"], last["address"]),
            }
        )

    @needs("suppressions:write")
    def post(self):
        """Add an address (``{"address", "reason"?, "detail"?}``) to the key's tenant's list;
        201, or 200 if it was on."""
        address, reason, detail = validate_suppression(read_mail_request())
        with transaction() as conn:
            row, added = suppressions.add(
                conn,
                address,
                reason,
                detail,
                current_app.config["SUPPRESSION_DAYS"],
                suppressions.view(current_principal().tenant, current_principal().test),
            )
            if added:
                audited(
                    conn,
                    "suppression.add",
                    row["address"],
                    {"reason": row["reason"], "detail": row["detail"]},
                    row["tenant"],
                )
        body = service.SuppressionAdded.dump(row)
        return body, 201 if added else 200, {"Location": f"/suppressions/{row['address']}"}


class SuppressionItem(Resource):
    """``/suppressions/<address>``: take an address off the list."""

    method_decorators = [authenticated]

    @needs("suppressions:write")
    def delete(self, address):
        """204 once it is off the key's tenant's list (off every list for ``admin``); 404 if
        it was not on it."""
        tenant = suppression_view()
        with transaction() as conn:
            removed = suppressions.remove(conn, address, tenant)
            if removed:
                audited(conn, "suppression.remove", bare_address(address), {}, tenant)
        if not removed:
            raise ApiError(
                404,
                "This address is not on the suppression list",
                [{"field": "address", "message": "Not suppressed"}],
            )
        return "", 204


def validate_suppression(data):
    """(address, reason, detail) of a request to suppress an address; 400 names what is wrong."""
    unknown = sorted(set(data) - {"address", "reason", "detail"})
    reason = data.get("reason")
    reason = suppressions.MANUAL if reason is None else reason
    detail = data.get("detail")
    errors = [{"field": name, "message": "Unknown field"} for name in unknown]
    if not isinstance(reason, str) or reason not in suppressions.REASONS:
        errors.append({"field": "reason", "message": f"One of {', '.join(suppressions.REASONS)}"})
    if detail is not None and (
        not isinstance(detail, str) or len(detail) > 1000 or "\x00" in detail
    ):
        errors.append(
            {"field": "detail", "message": "A string of at most 1000 characters, without NUL"}
        )
    try:
        address = validate_address(data.get("address"))
    except ValidationError as err:
        errors += err.errors
        address = None
    if errors:
        raise ApiError(400, "Invalid suppression", errors)
    return address, reason, detail


def too_late(mail, verb, rule):
    """The 409 of an action that the mail's current status does not allow (``mail``: as
    ``reads.mail_detail`` read it after the action)."""
    current = mail["status"]
    return ApiError(
        409,
        f"The mail is {current} and cannot be {verb}",
        [{"field": "status", "message": f"{current}: {rule}"}],
        extra=service.StatusConflict.dump({"status": current}),
    )


def actor():
    """Who acted through the API: a stored key's id, a digest of an ``API_KEYS`` key (never the
    key), or ``api:local``."""
    principal = current_principal()
    if principal.key_id is not None:
        return f"api:key-{principal.key_id}"
    scope = idempotency.scope()
    return "api:local" if scope == idempotency.LOCAL_SCOPE else f"api:key-{scope[:8]}"


def init_app(app):
    """Register the resources on ``app``."""
    app.url_map.converters["mail_id"] = MailIdConverter
    api = JsonApi(app, catch_all_404s=False)
    api.add_resource(MailList, "/mail")
    api.add_resource(MailBatch, "/mail/batch")
    api.add_resource(MailItem, "/mail/<mail_id:mail_id>")
    api.add_resource(MailCancel, "/mail/<mail_id:mail_id>/cancel")
    api.add_resource(MailRetry, "/mail/<mail_id:mail_id>/retry")
    api.add_resource(MailEvents, "/mail/<mail_id:mail_id>/events")
    api.add_resource(SuppressionList, "/suppressions")
    api.add_resource(SuppressionItem, "/suppressions/<path:address>")
    api.add_resource(Health, "/health")
    return api
