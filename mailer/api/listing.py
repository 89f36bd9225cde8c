"""``GET /mail`` (and ``GET /suppressions``): a client's record of what it sent, newest first,
in stable pages.

Filters: ``status`` (repeatable), ``to`` (a recipient's address, exact), ``tag``,
``created_after``, ``created_before``; ``limit`` (default 50, at most 500). Pages follow a
keyset cursor, ``next_cursor`` in the answer: the position (created_at, id) of the page's last
mail, so mail that arrives while a client walks the pages never shifts them, and each mail
appears exactly once. The cursor is opaque to clients (base64 of that position).

The answer is written straight from the page's rows (``page_json``), as the bytes Flask-RESTful
made of the dict of ``Email.mail_dict``s (``page_body``) that it replaces.
"""

import base64
import binascii
import json
import uuid
from datetime import datetime
from json.encoder import encode_basestring_ascii

from flask import request

from mailer.api.errors import ApiError
from mailer.queue.mailqueue import PAGE_COLUMNS
from mailer.queue.suppressions import REASONS
from mailer.validation.extras import MAX_UTC_OFFSET
from mailer.validation.headers import header_problem
from models import STATUSES, WAITING, Email

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
FILTERS = ("status", "to", "tag", "created_after", "created_before", "limit", "cursor")


def bad(field, message):
    """A 400 naming the query parameter at fault."""
    return ApiError(400, "Invalid query", [{"field": field, "message": message}])


def parse_query():
    """The listing's filters from the query string, checked; 400 names a bad parameter."""
    args = request.args
    unknown = sorted(set(args) - set(FILTERS))
    if unknown:
        raise bad(unknown[0], "Unknown query parameter")
    statuses = args.getlist("status")
    for status in statuses:
        if status not in STATUSES:
            raise bad("status", f"One of {', '.join(STATUSES)}")
    return {
        "statuses": statuses,
        "to": _text(args.get("to"), "to"),
        "tag": _text(args.get("tag"), "tag"),
        "created_after": _time(args.get("created_after"), "created_after"),
        "created_before": _time(args.get("created_before"), "created_before"),
        "limit": _limit(args.get("limit")),
        "after": decode_cursor(args.get("cursor")),
    }


def _text(value, field):
    """A text filter, or None; no controls (they can match nothing and may break logs)."""
    if value is None:
        return None
    if not value or len(value) > 320 or header_problem(value):
        raise bad(field, "Must be a non-empty string without control characters")
    return value


def _time(value, field):
    """An ISO 8601 time with a zone, or None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or abs(moment.utcoffset()) > MAX_UTC_OFFSET:
        raise bad(
            field, "Must be an ISO 8601 time with a zone (within ±14:00), e.g. 2026-12-01T00:00:00Z"
        )
    return moment


def _limit(value):
    """The page size, 1 to ``MAX_LIMIT``."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise bad("limit", f"Must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


ID, CREATED_AT = PAGE_COLUMNS.index("id"), PAGE_COLUMNS.index("created_at")


def encode_cursor(row):
    """The cursor that continues after ``row`` (a listed mail: ``mailqueue.page``'s)."""
    return encode_position(row[CREATED_AT], row[ID])


def encode_position(created_at, key):
    """The cursor that continues after the item created at ``created_at`` with ``key``."""
    position = f"{created_at.isoformat()}|{key}"
    return base64.urlsafe_b64encode(position.encode()).decode("ascii").rstrip("=")


def decode_cursor(value):
    """The (created_at, id) a cursor points after, or None; 400 for a cursor we did not make."""
    position = decode_position(value)
    if position is None:
        return None
    try:
        return position[0], uuid.UUID(position[1])
    except ValueError:
        raise bad("cursor", "Not a cursor from this API: pass next_cursor as given") from None


def decode_position(value):
    """The (created_at, key) a cursor points after, or None; 400 for a cursor we did not make."""
    if value is None:
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, separator, key = text.partition("|")
        if not separator or "\x00" in key:
            raise ValueError(text)
        return datetime.fromisoformat(created), key
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad("cursor", "Not a cursor from this API: pass next_cursor as given") from None


def parse_suppression_query():
    """``GET /suppressions``' (reason, limit, position after) from the query string, checked."""
    args = request.args
    unknown = sorted(set(args) - {"reason", "limit", "cursor"})
    if unknown:
        raise bad(unknown[0], "Unknown query parameter")
    reason = args.get("reason")
    if reason is not None and reason not in REASONS:
        raise bad("reason", f"One of {', '.join(REASONS)}")
    return reason, _limit(args.get("limit")), decode_position(args.get("cursor"))


# The answer of GET /mail -----------------------------------------------------------------------
#
# ``page_body`` is the answer as a dict, each mail ``Email.mail_dict``, which Flask-RESTful
# encodes (``json.dumps``, then a newline). ``page_json`` writes the same bytes straight from the
# rows: building 50 dicts of 23 fields and encoding them was half of the page's Python.
# tests/unit/api/test_listing_json.py and tests/integration/api/test_listing_json.py hold the two
# together.

_string = encode_basestring_ascii  # json.dumps's own encoder of a str (ensure_ascii)
MAIL_JSON = (
    '{"id": %s, "status": %s, "success": true, "from_address": %s, "to_address": %s, '
    '"to": %s, "cc": %s, "bcc": %s, "reply_to": %s, "subject": %s, "mail": %s, "html": %s, '
    '"result": %s, "provider": %s, "provider_message_id": %s, "attempts": %s, '
    '"last_error": %s, "next_attempt_at": %s, "send_at": %s, "headers": %s, "tags": %s, '
    '"metadata": %s, "created_at": %s, "updated_at": %s, "sent_at": %s}'
)
PAGE_JSON = '{"success": true, "mails": [%s], "count": %d, "next_cursor": %s}\n'


def page_body(rows, more):
    """GET /mail's answer for ``mailqueue.page``'s ``(rows, more)``, as a dict."""
    return {
        "success": True,
        "mails": [Email.mail_dict(dict(zip(PAGE_COLUMNS, row, strict=True))) for row in rows],
        "count": len(rows),
        "next_cursor": encode_cursor(rows[-1]) if more else None,
    }


def page_json(rows, more):
    """``page_body`` as JSON text, byte for byte what ``json.dumps`` (with its default
    settings) and Flask-RESTful's newline make of it."""
    cursor = _string(encode_cursor(rows[-1])) if more else "null"
    return PAGE_JSON % (", ".join([mail_json(row) for row in rows]), len(rows), cursor)


def mail_json(row):
    """``json.dumps(Email.mail_dict(...))`` of one listed mail, from its row."""
    (
        key,
        status,
        from_address,
        to_address,
        cc,
        bcc,
        reply_to,
        subject,
        text,
        html,
        result,
        provider,
        provider_message_id,
        attempts,
        last_error,
        next_attempt_at,
        send_at,
        headers,
        metadata,
        tags,
        created_at,
        updated_at,
        sent_at,
    ) = row
    return MAIL_JSON % (
        _string(str(key)),
        _string(status),
        _nullable(from_address),
        _string(", ".join(to_address)),
        _strings(to_address),
        _strings(cc),
        _strings(bcc),
        _nullable(reply_to),
        _nullable(subject),
        _nullable(text),
        _nullable(html),
        "null" if result is None else json.dumps(result),
        _nullable(provider),
        _nullable(provider_message_id),
        int.__repr__(attempts),
        _nullable(last_error),
        _moment(next_attempt_at) if status in WAITING else "null",
        _moment(send_at),
        _object(headers),
        _strings(tags),
        _object(metadata),
        _moment(created_at),
        _moment(updated_at),
        _moment(sent_at),
    )


def _nullable(value):
    """A str or None as JSON."""
    return "null" if value is None else _string(value)


def _strings(values):
    """A list of str (None: an empty list) as JSON."""
    return "[" + ", ".join(map(_nullable, values)) + "]" if values else "[]"


def _object(value):
    """A JSON object column (None: empty) as ``dict(value or {})`` encodes."""
    return json.dumps(dict(value)) if value else "{}"


def _moment(value):
    """A datetime with its zone, or None, as ``iso`` shows it: its ISO 8601 text has nothing
    that JSON escapes."""
    return "null" if value is None else '"' + value.isoformat() + '"'
