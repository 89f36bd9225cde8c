"""The REST resources: submit a mail, read it back, and the service's health.

``POST /mail`` validates, stores the mail as ``queued`` and commits before it answers 202, so an
acknowledged mail is never lost; the worker sends it later. Clients poll ``GET /mail/<id>``.
"""

import uuid

from flask import current_app, request
from flask_restful import Api, Resource
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.routing import BaseConverter

from models import Email, db

from . import circuit, mailqueue
from .auth import require_api_key
from .bodies import form_fields
from .errors import ApiError, response_for
from .validation import ValidationError, validate_mail

JSON_TYPES = ("application/json",)
MAX_BATCH = 1000  # mails per POST /mail/batch
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class JsonApi(Api):
    """Flask-RESTful with our error shape for every exception raised in a resource."""

    def handle_error(self, e):
        """Answer with the JSON error of ``response_for`` (never a traceback)."""
        return response_for(e)


def authenticated(method):
    """Resource decorator: the API key check of ``auth.require_api_key``."""

    def checked(*args, **kwargs):
        require_api_key()
        return method(*args, **kwargs)

    return checked


def read_mail_request():
    """The submitted fields as a dict, from a JSON object or a form; 400/415 otherwise."""
    mimetype = request.mimetype
    if mimetype in JSON_TYPES or mimetype.endswith("+json"):
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # deeply nested arrays: silent=True only covers ValueError
            data = None
        if not isinstance(data, dict):
            raise ApiError(400, "The body must be a JSON object",
                           [{"field": "body", "message": "Malformed JSON or not an object"}])
        return data
    if mimetype in FORM_TYPES:
        # Uploaded files are included so that validation refuses them instead of dropping them.
        fields = form_fields()
        return {key: values[0] if len(values) == 1 else values for key, values in fields.items()}
    raise ApiError(415, f"Unsupported content type {mimetype or '(none)'!r}",
                   [{"field": "Content-Type", "message": "Use application/json, "
                     "application/x-www-form-urlencoded or multipart/form-data"}])


def find_mail(mail_id):
    """The mail with id ``mail_id`` and its attempts; 404 if unknown or not a UUID."""
    try:
        key = uuid.UUID(mail_id)
    except ValueError:
        key = None
    mail = None
    if key is not None:
        query = select(Email).where(Email.id == key).options(selectinload(Email.attempt_log))
        mail = db.session.scalars(query).first()
    if mail is None:
        raise ApiError(404, "No mail with this id", [{"field": "id", "message": "Unknown id"}])
    return mail


class MailList(Resource):
    """``/mail``: submit a mail."""

    method_decorators = [authenticated]

    def post(self):
        """Validate, store as queued, commit, answer 202 with the mail and its Location."""
        clean = validate_mail(read_mail_request(), current_app.config["MAX_RECIPIENTS"])
        mail = Email(**mailqueue.enqueue_many(db.session, [clean])[0])
        body = mail.to_dict(with_attempts=False)
        body["attempt_log"] = []
        return body, 202, {"Location": f"/mail/{mail.id}"}


class MailBatch(Resource):
    """``/mail/batch``: submit up to ``MAX_BATCH`` mails at once, all or none."""

    method_decorators = [authenticated]

    def post(self):
        """Validate every item, then store them all in one transaction; 400 names bad items."""
        items = read_batch_request()
        max_recipients = current_app.config["MAX_RECIPIENTS"]
        cleans, errors = [], []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ValidationError([{"field": "", "message": "Must be a JSON object"}])
                cleans.append(validate_mail(item, max_recipients))
            except ValidationError as err:
                errors += [{"field": f"[{index}]" + (f".{e['field']}" if e["field"] else ""),
                            "index": index, "message": e["message"]} for e in err.errors]
        if errors:
            bad = len({error["index"] for error in errors})
            raise ApiError(400, f"{bad} of {len(items)} mails are invalid; none was stored",
                           errors)
        ids = [str(row["id"]) for row in mailqueue.enqueue_many(db.session, cleans)]
        return {"success": True, "count": len(ids), "ids": ids}, 202


def read_batch_request():
    """The submitted list of mails from a JSON body; 400/415 otherwise."""
    if not (request.mimetype in JSON_TYPES or request.mimetype.endswith("+json")):
        raise ApiError(415, f"Unsupported content type {request.mimetype or '(none)'!r}",
                       [{"field": "Content-Type", "message": "Use application/json"}])
    try:
        items = request.get_json(silent=True)
    except RecursionError:
        items = None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(400, f"The body must be a JSON list of 1 to {MAX_BATCH} mails",
                       [{"field": "body", "message": f"Expected a list of 1 to {MAX_BATCH} "
                         "mail objects"}])
    return items


class MailItem(Resource):
    """``/mail/<id>``: one mail's status, the providers' answers and its attempts."""

    method_decorators = [authenticated]

    def get(self, mail_id):
        """The mail object."""
        return find_mail(mail_id).to_dict()


class Health(Resource):
    """``/health``: 200 while the database answers, with each provider's circuit."""

    def get(self):
        """The database's and the providers' health; 503 if the database is unreachable.

        Usable and meltdown mean here exactly what they mean to the worker (``circuit``).
        """
        health = circuit.health(db.session.connection(), current_app.config["PROVIDERS"])
        return {"status": health["status"], "database": "ok", "providers": health["providers"]}


class MailIdConverter(BaseConverter):
    """A mail id in a URL: any path segment but the fixed words of ``/mail/...`` routes.

    Without it ``GET /mail/batch`` matched ``/mail/<id>`` and answered "No mail with this id",
    and ``OPTIONS /mail/batch`` advertised GET; now it is a 405 that allows POST only.
    """

    regex = r"(?!batch$)[^/]+"


def init_app(app):
    """Register the resources on ``app``."""
    app.url_map.converters["mail_id"] = MailIdConverter
    api = JsonApi(app, catch_all_404s=False)
    api.add_resource(MailList, "/mail")
    api.add_resource(MailBatch, "/mail/batch")
    api.add_resource(MailItem, "/mail/<mail_id:mail_id>")
    api.add_resource(Health, "/health")
    return api
