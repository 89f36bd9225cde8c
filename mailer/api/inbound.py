"""The received mail resources: ``GET /inbound`` (newest first, in stable pages),
``GET /inbound/<id>`` and ``GET /inbound/<id>/attachments/<position>`` (an attachment's bytes).

Received mail is stored by ``mailer.queue.inbound.receive``, whichever way it came in; here it
is only read. Each endpoint needs the scope ``mail:read``, as ``GET /mail`` does: replies to a
tenant's mail are its mail too. A key sees its own tenant's received mail only (every
tenant's with ``admin``): another tenant's id answers 404 exactly as an unknown one does.

Filters of the listing: ``to`` (an address it was sent to: envelope, To or Cc), ``from`` (its
sender), ``in_reply_to`` (a mail id: the mail's replies, automatic ones too), ``tenant`` (as
``GET /mail``'s), ``limit``, ``cursor`` (keyset on (received_at, id), as ``GET /mail``'s).

An attachment's bytes come as a download (``Content-Disposition: attachment``) under a policy
that runs nothing (``sandbox``): a stranger wrote them, and a browser must not open them as a
page of this origin.
"""

import io
import re
import uuid

from flask import request, send_file
from flask_restful import Resource
from werkzeug.routing import BaseConverter

from mailer.api import listing
from mailer.api.auth import current_principal
from mailer.api.errors import ApiError
from mailer.api.resources import authenticated, needs, tenant_filter
from mailer.database import transaction
from mailer.inbound.message import SOURCES
from mailer.queue import inbound
from mailer.shapes.inbound import Inbound, InboundPage

SCOPE = "mail:read"
FILTERS = ("to", "from", "in_reply_to", "tenant", "limit", "cursor")
MAX_POSITION = 2**31 - 1  # an attachment's position is an int
# A file's name in Content-Disposition: no control characters (a header cannot carry them).
CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(;[^\x00-\x1f\x7f]*)?")  # else octet-stream
DOWNLOAD_POLICY = "default-src 'none'; sandbox"


def unknown_inbound():
    """The 404 of an id that names no received mail of the key's tenant."""
    return ApiError(
        404, "No received mail with this id", [{"field": "inbound_id", "message": "Unknown id"}]
    )


def known_id(inbound_id):
    """The UUID of an id from a URL, or a 404 if no received mail could have it."""
    try:
        return uuid.UUID(inbound_id)
    except ValueError:
        raise unknown_inbound() from None


class InboundIdConverter(BaseConverter):
    """A received mail's id in a URL: any path segment but the ways in
    (``/inbound/mailgun``, ...), which take POST only: any other method is a 405 there."""

    regex = r"(?!(?:" + "|".join(SOURCES) + r")$)[^/]+"


class InboundList(Resource):
    """``/inbound``: the received mail, newest first."""

    method_decorators = [authenticated]

    @needs(SCOPE)
    def get(self):
        """A page of received mail with the cursor of the next page (or null)."""
        query = parse_query()
        with transaction(single_statement=True) as conn:
            rows, more = inbound.page(conn, **query)
        last = rows[-1] if more else None
        return InboundPage.dump(
            {
                "inbound": rows,
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last["received_at"], last["id"]),
            }
        )


def parse_query():
    """``GET /inbound``'s filters, checked; 400 names a bad one."""
    args = request.args
    unknown = sorted(set(args) - set(FILTERS))
    if unknown:
        raise listing.bad(unknown[0], "Unknown query parameter")
    return {
        "tenant": listing.listed_tenant(args.get("tenant"), current_principal()),
        "to": listing.text_filter(args.get("to"), "to"),
        "sender": listing.text_filter(args.get("from"), "from"),
        "in_reply_to": _mail_id(args.get("in_reply_to")),
        "limit": listing.parse_limit(args.get("limit")),
        "after": listing.decode_cursor(args.get("cursor")),
    }


def _mail_id(value):
    """The ``in_reply_to`` filter: a mail id, or None."""
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise listing.bad("in_reply_to", "A mail id (a UUID)") from None


class InboundItem(Resource):
    """``/inbound/<id>``: one received mail."""

    method_decorators = [authenticated]

    @needs(SCOPE)
    def get(self, inbound_id):
        """The received mail, all but its attachments' bytes; 404 for an unknown id (or
        another tenant's)."""
        with transaction(single_statement=True) as conn:
            row = inbound.detail(conn, known_id(inbound_id), tenant_filter())
        if row is None:
            raise unknown_inbound()
        return Inbound.dump(row)


class InboundAttachmentItem(Resource):
    """``/inbound/<id>/attachments/<position>``: an attachment's bytes."""

    method_decorators = [authenticated]

    @needs(SCOPE)
    def get(self, inbound_id, position):
        """The bytes as a download, of the type they came with; 404 for an unknown mail or
        position, 410 for an attachment whose bytes were dropped."""
        key = known_id(inbound_id)
        if not position.isdigit() or int(position) > MAX_POSITION:
            raise unknown_attachment()
        with transaction(single_statement=True) as conn:
            found = inbound.attachment(conn, key, int(position), tenant_filter())
        if found is None:
            raise unknown_attachment()
        if found["dropped"] is not None:
            raise ApiError(
                410,
                "This attachment's bytes were not kept",
                [{"field": "position", "message": f"Past {found['dropped']}"}],
            )
        return download(found["content"], found["content_type"], found["filename"], position)


def unknown_attachment():
    """The 404 of a position that names no attachment of the received mail."""
    return ApiError(
        404,
        "No attachment at this position",
        [{"field": "position", "message": "Unknown position"}],
    )


def download(content, content_type, filename, position):
    """``content`` as a download named ``filename`` (``attachment-<position>`` if it has
    none), under a policy that runs nothing."""
    name = CONTROLS.sub("", filename or "").strip() or f"attachment-{position}"
    kind = content_type.strip() if MEDIA_TYPE.fullmatch(content_type.strip()) else None
    response = send_file(
        io.BytesIO(bytes(content)),
        mimetype=kind or "application/octet-stream",
        as_attachment=True,
        download_name=name,
        max_age=0,
    )
    response.headers["Content-Security-Policy"] = DOWNLOAD_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(api):
    """Register the received mail resources on ``api`` (the mail API's ``JsonApi``)."""
    api.app.url_map.converters["inbound_id"] = InboundIdConverter
    api.add_resource(InboundList, "/inbound")
    api.add_resource(InboundItem, "/inbound/<inbound_id:inbound_id>")
    api.add_resource(
        InboundAttachmentItem, "/inbound/<inbound_id:inbound_id>/attachments/<string:position>"
    )
