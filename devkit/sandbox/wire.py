"""What both providers' wire formats share: answers, reason phrases, timestamps, addresses."""

import json
import math
import re
from datetime import UTC, datetime
from http import HTTPStatus

from werkzeug import Response

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class Answer(Response):
    """A response with no Content-Type unless one is given (SendGrid's 202 has none)."""

    default_mimetype = None


def dumps(obj) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_answer(status, obj, headers=()) -> Answer:
    """A JSON answer."""
    return Answer(dumps(obj), status, headers=list(headers), content_type=JSON)


def phrase(status) -> str:
    """Standard reason phrase, or a generic one for unregistered codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def retry_after(seconds) -> list[tuple[str, str]]:
    """The Retry-After header for a fault that set ``retry_after`` (none when unset)."""
    return [] if seconds is None else [("Retry-After", str(math.ceil(seconds)))]
