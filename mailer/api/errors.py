"""Every API error is JSON of one shape, with the right status code, and never a traceback.

    {"success": false, "message": "...", "errors": [{"field": "...", "message": "..."}]}

A database outage becomes 503 with ``Retry-After``; anything unexpected becomes a 500 whose
body says nothing about the code (the traceback goes to the log only).
"""

import logging

from flask import current_app, jsonify, request
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from mailer.shapes.service import Error
from mailer.validation.mail import ValidationError
from models import db

log = logging.getLogger("mail_service.api")

DB_RETRY_AFTER = 5  # seconds a client should wait after a 503


class ApiError(Exception):
    """An error the API answers with ``status``; ``errors`` names the fields at fault."""

    def __init__(self, status, message, errors=None, headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}  # more members of the body, e.g. a mail's current status


def error_response(status, message, errors=None, headers=None, extra=None):
    """The JSON error response (``extra`` adds members to its body)."""
    response = jsonify({**Error.dump({"message": message, "errors": errors}), **(extra or {})})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def response_for(error):
    """Turn any exception raised while serving the API into its JSON error response."""
    if isinstance(error, ApiError):
        return error_response(error.status, error.message, error.errors, error.headers, error.extra)
    if isinstance(error, ValidationError):
        return error_response(error.status, error.message, error.errors)
    if isinstance(error, HTTPException):
        return _http_error(error)
    if isinstance(error, SQLAlchemyError):
        return _database_error(error)
    if isinstance(error, ValueError) and "NUL (0x00)" in str(error):
        # psycopg2 refuses a NUL in any text it sends; whatever field carried it, it is the
        # request's fault, not a server error.
        return error_response(
            400,
            "Text must not contain NUL characters",
            [{"field": "body", "message": "Must not contain NUL characters"}],
        )
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return error_response(500, "Internal error; it has been logged")


def _http_error(error):
    """Werkzeug's HTTP errors (404, 405, 413, ...) in our shape, keeping their headers."""
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    # (message, the part of the request at fault), so that ``errors`` always names something.
    known = {
        404: ("Not found", "url"),
        405: (f"Method {request.method} is not allowed here", "method"),
        413: (
            f"The request body is larger than the limit of "
            f"{current_app.config['MAX_CONTENT_LENGTH']} bytes",
            "body",
        ),
    }
    message, field = known.get(error.code, (error.description or error.name, "request"))
    return error_response(
        error.code or 500, message, [{"field": field, "message": error.name}], headers=headers
    )


def _database_error(error):
    """503 when the database is unreachable, or no pooled connection came free within the
    pool's timeout (a gevent worker serves more requests at once than its pool has
    connections); the session is reset for the next request."""
    db.session.rollback()
    unreachable = isinstance(error, OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )
    if unreachable:
        log.error("database unavailable: %s", error.__class__.__name__)
        return error_response(
            503,
            "The database is unavailable; try again shortly",
            [{"field": "database", "message": "Unavailable"}],
            headers={"Retry-After": str(DB_RETRY_AFTER)},
        )
    log.exception("database error serving %s %s", request.method, request.path)
    return error_response(500, "Internal error; it has been logged")


def is_api_path(path):
    """Whether a path belongs to the JSON API (the admin keeps its HTML pages)."""
    return path != "/admin" and not path.startswith("/admin/")


def init_app(app):
    """Answer errors outside the Flask-RESTful resources (unknown URLs, 413s) in JSON too."""

    @app.errorhandler(HTTPException)
    def handle_http(error):
        if not is_api_path(request.path):
            return error
        return response_for(error)

    @app.errorhandler(SQLAlchemyError)
    def handle_database(error):
        return response_for(error)

    @app.errorhandler(Exception)
    def handle_unexpected(error):
        return response_for(error)
