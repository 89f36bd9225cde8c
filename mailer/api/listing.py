"""``GET /mail`` (and ``GET /suppressions``, ``GET /mail/<id>/events``): a client's record of
what it sent, newest first, in stable pages.

Filters: ``status`` (repeatable), ``to`` (a recipient's address, exact), ``tag``, ``template``
(the name a mail was rendered from), ``source`` (``api`` or ``smtp``), ``created_after``,
``created_before``, ``tenant`` (a key with ``admin`` lists every tenant's mail unless it names
one; any other key lists its own tenant's only); ``test`` (``true``: test mail only, ``false``:
live mail only; by default the key's own kind: a ``mk_test_`` key lists test mail, any other
live mail, so the two never mix unless asked); ``limit`` (default 50, at most 500). Pages follow
a keyset cursor, ``next_cursor`` in the answer: the position (created_at, id) of the page's last
mail, so mail that arrives while a client walks the pages never shifts them, and each mail
appears exactly once. The cursor is opaque to clients (base64 of that position).

The answer is written straight from the page's rows (``page_json``), by the writers of the
shapes ``MailPage`` and ``ListedMail``.
"""

import base64
import binascii
import uuid
from datetime import datetime

from flask import request

from mailer.api.errors import ApiError
from mailer.principals import TENANT_NAME
from mailer.queue.reads import PAGE_COLUMNS
from mailer.queue.submit import SOURCES
from mailer.queue.suppressions import REASONS
from mailer.shapes.mail import ListedMail, MailPage
from mailer.validation.extras import MAX_UTC_OFFSET
from mailer.validation.headers import header_problem
from models import STATUSES

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
FILTERS = (
    "status",
    "to",
    "tag",
    "template",
    "source",
    "created_after",
    "created_before",
    "tenant",
    "test",
    "limit",
    "cursor",
)


def bad(field, message):
    """A 400 naming the query parameter at fault."""
    return ApiError(400, "Invalid query", [{"field": field, "message": message}])


def parse_query(principal):
    """The listing's filters from the query string, checked, for ``principal`` (whose tenant
    it lists); 400 names a bad parameter."""
    args = request.args
    unknown = sorted(set(args) - set(FILTERS))
    if unknown:
        raise bad(unknown[0], "Unknown query parameter")
    statuses = args.getlist("status")
    for status in statuses:
        if status not in STATUSES:
            raise bad("status", f"One of {', '.join(STATUSES)}")
    # Each parameter's first value, in a dict: werkzeug's MultiDict.get raises and catches an
    # exception for each parameter missing, and most of these are.
    given = args.to_dict()
    return {
        "statuses": statuses,
        "to": text_filter(given.get("to"), "to"),
        "tag": text_filter(given.get("tag"), "tag"),
        "template": text_filter(given.get("template"), "template"),
        "source": _source(given.get("source")),
        "created_after": _time(given.get("created_after"), "created_after"),
        "created_before": _time(given.get("created_before"), "created_before"),
        "tenant": listed_tenant(given.get("tenant"), principal),
        "test": _test(given.get("test"), principal),
        "limit": parse_limit(given.get("limit")),
        "after": decode_cursor(given.get("cursor")),
    }


def listed_tenant(value, principal):
    """The tenant listed: the one asked for (``admin`` only) or the key's own; None for every
    tenant's (``admin`` asking for none). Another key naming another tenant is a 403."""
    if value is None:
        return principal.tenant_filter
    if not TENANT_NAME.match(value):
        raise bad("tenant", "1-64 letters, digits, _ . or -")
    if not principal.sees_all and value != principal.tenant:
        raise ApiError(
            403,
            "This key lists its own tenant's only",
            [{"field": "tenant", "message": f"Only {principal.tenant}, or leave it out"}],
        )
    return value


def _test(value, principal):
    """Whether test mail is listed, or live mail: as asked (``true``/``false``), else the
    key's own kind (a ``mk_test_`` key lists its test mail, any other key live mail)."""
    if value is None:
        return principal.test
    if value not in ("true", "false"):
        raise bad("test", "true or false")
    return value == "true"


def _source(value):
    """The ``source`` filter (``api`` or ``smtp``), or None."""
    if value is None:
        return None
    if value not in SOURCES:
        raise bad("source", f"One of {', '.join(SOURCES)}")
    return value


def text_filter(value, field):
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


def parse_limit(value):
    """The page size, 1 to ``MAX_LIMIT``."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise bad("limit", f"Must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


ID, CREATED_AT = PAGE_COLUMNS.index("id"), PAGE_COLUMNS.index("created_at")


def encode_cursor(row):
    """The cursor that continues after ``row`` (a listed mail: ``reads.page``'s)."""
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


def parse_events_query():
    """``GET /mail/<id>/events``' (limit, position after) from the query string, checked."""
    args = request.args
    unknown = sorted(set(args) - {"limit", "cursor"})
    if unknown:
        raise bad(unknown[0], "Unknown query parameter")
    position = decode_position(args.get("cursor"))
    if position is not None:
        if not (position[1].isascii() and position[1].isdigit()):
            raise bad("cursor", "Not a cursor from this API: pass next_cursor as given")
        position = position[0], int(position[1])
    return parse_limit(args.get("limit")), position


def parse_suppression_query():
    """``GET /suppressions``' (reason, limit, position after) from the query string, checked."""
    args = request.args
    unknown = sorted(set(args) - {"reason", "limit", "cursor"})
    if unknown:
        raise bad(unknown[0], "Unknown query parameter")
    reason = args.get("reason")
    if reason is not None and reason not in REASONS:
        raise bad("reason", f"One of {', '.join(REASONS)}")
    return reason, parse_limit(args.get("limit")), decode_position(args.get("cursor"))


# The answer of GET /mail ----------------------------------------------------------------------
#
# Written straight from the page's rows by the shapes' writers: the bytes json.dumps (with its
# default settings) makes of the page's dict, without building 50 dicts of 25 members.

write_mail = ListedMail.writer(PAGE_COLUMNS)
write_page = MailPage.writer(("mails", "count", "next_cursor"), written={"mails"})


def page_json(rows, more):
    """``GET /mail``'s answer for ``reads.page``'s ``(rows, more)``, as JSON text."""
    mails = "[" + ", ".join(map(write_mail, rows)) + "]"
    return write_page((mails, len(rows), encode_cursor(rows[-1]) if more else None)) + "\n"
