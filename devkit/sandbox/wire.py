"""What the providers' wire formats share: answers, reason phrases, timestamps, addresses, and
what a record keeps of a file and of the Message-ID a mail is delivered with."""

import hashlib
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


def file_record(filename, content_type, content, disposition="attachment", content_id=None):
    """What a message record keeps of a file: its name, type, size and a digest, its
    ``disposition`` (``inline`` or ``attachment``), and its Content-ID as a bare id
    (``logo@example.com``, whatever the provider's spelling: ``<...>``, ``cid:...``)."""
    return {
        "filename": filename,
        "content_type": content_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "disposition": disposition,
        "content_id": bare_content_id(content_id),
    }


def mime_files(message) -> list[dict]:
    """The files of a parsed MIME message (``email.policy.default``) as ``file_record`` keeps
    them, in order: every part that holds content but the text and HTML bodies, an inline part
    of a multipart/related too (``iter_attachments`` sees only the top level's)."""
    bodies = {id(message.get_body(preferencelist=(kind,))) for kind in ("plain", "html")}
    return [
        file_record(
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True) or b"",
            part.get_content_disposition() or "attachment",
            part["Content-ID"],
        )
        for part in message.walk()
        if not part.is_multipart() and id(part) not in bodies
    ]


def bare_content_id(value) -> str | None:
    """A Content-ID without its ``cid:`` prefix or angle brackets; None for none."""
    if not value:
        return None
    value = value.strip()
    if value[:4].lower() == "cid:":
        value = value[4:]
    return value.removeprefix("<").removesuffix(">") or None


def header(headers: dict, name: str) -> str | None:
    """The value of the header ``name`` (any case) among ``headers``, or None."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)
