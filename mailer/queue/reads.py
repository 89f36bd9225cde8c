"""What the API lists and shows (``GET /mail``, ``GET /mail/<id>``), one statement each, and
the database's clock (``sql/reads.sql``)."""

from collections import namedtuple
from datetime import UTC, datetime

from mailer.queue.queries import fetch_all, load
from mailer.validation.addresses import bare_address

SQL = load("reads.sql")
# The columns of a listed mail, in the order the statements read them: what
# ``shapes.mail.ListedMail`` reads, and no more.
PAGE_COLUMNS = (
    "id",
    "status",
    "from_address",
    "to_address",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "result",
    "provider",
    "provider_message_id",
    "attempts",
    "last_error",
    "next_attempt_at",
    "send_at",
    "headers",
    "metadata",
    "tags",
    "created_at",
    "updated_at",
    "sent_at",
    "template",
    "template_version",
    "tenant",
    "api_key_id",
    "test",
    "source",
)
# The child rows of ``GET /mail/<id>``, each list read as one array per column, in this order,
# with the attributes their ``to_dict`` reads (as the ORM relationships of ``Email`` would).
AttachmentRow = namedtuple("AttachmentRow", "filename content_type size content_id")
AttemptRow = namedtuple(
    "AttemptRow", "number provider outcome status_code response error duration_ms actor created_at"
)
RecipientRow = namedtuple("RecipientRow", "address status reason updated_at")
EventRow = namedtuple(
    "EventRow", "type provider provider_event recipient severity reason occurred_at received_at"
)
ReplyRow = namedtuple("ReplyRow", "id from_address subject received_at")
FIRST = (datetime.min.replace(tzinfo=UTC), 0)  # a position before every event
DETAIL_CHILDREN = (  # (key in the mail, row type)
    ("attachments", AttachmentRow),
    ("attempt_log", AttemptRow),
    ("recipient_rows", RecipientRow),
    ("events", EventRow),
    ("replies", ReplyRow),
)
REPLIES_SHOWN = 100  # a mail's latest replies in GET /mail/<id>; GET /inbound pages all


def page(
    conn,
    statuses=(),
    to=None,
    tag=None,
    template=None,
    source=None,
    created_after=None,
    created_before=None,
    limit=50,
    after=None,
    tenant=None,
    test=None,
):
    """A page of mail, newest first, and whether more follow: ``(rows, more)``, each row its
    ``PAGE_COLUMNS`` (``listing.page_json`` writes the answer straight from them). The page is
    read on the connection's DB-API cursor (``queries.fetch_all``).

    Keyset pagination on (created_at, id): ``after`` is the position of the last mail of the
    previous page. Each filter has its index (status and created_at; recipients by GIN; a tag
    by mail_tag's, in the page's order; a tenant's, with or without a status, by the
    tenant-leading ones), so a page costs the same with a million rows as with a thousand.
    ``tenant`` None lists every tenant's mail; ``test`` True lists test mail only, False live
    mail only, None both.
    """
    params = {
        "status": statuses[0] if len(statuses) == 1 else None,
        "statuses": list(statuses) if len(statuses) > 1 else None,
        "to": bare_address(to) if to else None,
        "tag": tag,
        "template": template,
        "tenant": tenant,
        "test": test,
        "source": source,
        "created_after": created_after,
        "created_before": created_before,
        "after_created": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit + 1,
    }
    rows = fetch_all(conn, SQL.page_by_tag if tag else SQL.page, params)
    return rows[:limit], len(rows) > limit


def mail_detail(conn, mail_id, events_shown=None, tenant=None):
    """The mail ``mail_id`` (a UUID) as a dict of its ``PAGE_COLUMNS``, ``recipients`` and
    ``route``, with its ``attachments``, ``attempt_log``,
    ``recipient_rows`` and ``events`` as lists of rows of the same names as the ORM's
    (``AttemptRow``, ...), of ``events`` only the
    latest ``events_shown`` (None: all) and their total in ``event_count``, and its
    ``replies`` (``ReplyRow``: received mail linked to it, automatic replies left out), the
    latest ``REPLIES_SHOWN``, and their total in ``reply_count``; None if there is no
    such mail (of ``tenant``, unless it is None).

    One statement and one round trip, where the ORM's relationships cost five; in READ
    COMMITTED every statement had its own snapshot anyway, so this one is at least as
    consistent. Read on the connection's DB-API cursor (``queries.fetch_all``).
    """
    params = {
        "id": mail_id,
        "events_shown": events_shown,
        "replies_shown": REPLIES_SHOWN,
        "tenant": tenant,
    }
    found = fetch_all(conn, SQL.mail_detail, params)
    if not found:
        return None
    row = found[0]
    columns = (*PAGE_COLUMNS, "recipients", "route")
    mail = dict(zip(columns, row, strict=False))
    arrays = iter(row[len(columns) :])
    for key, kind in DETAIL_CHILDREN:
        values = [next(arrays) for _ in kind._fields]
        mail[key] = (
            [kind(*item) for item in zip(*values, strict=True)] if values[0] is not None else []
        )
    mail["event_count"] = next(arrays)
    mail["reply_count"] = next(arrays)
    return mail


def events_page(conn, mail_id, limit=50, after=None, tenant=None):
    """A page of the mail ``mail_id``'s events, oldest first (by the providers' clocks), after
    the position ``after`` (occurred_at, id) of the previous page's last: ``(rows, more)``,
    each row (id, ``EventRow``); None if there is no such mail (of ``tenant``, unless it is
    None). Keyset-paged, as ``page``:
    events that arrive during a walk never shift it.
    """
    after_at, after_id = after or FIRST
    params = {
        "id": mail_id,
        "after_at": after_at,
        "after_id": after_id,
        "limit": limit + 1,
        "tenant": tenant,
    }
    rows = conn.exec_driver_sql(SQL.events_page, params).all()
    if not rows:
        return None
    events = [(row[0], EventRow(*row[1:])) for row in rows if row[0] is not None]
    return events[:limit], len(events) > limit


def database_now(conn):
    """The database's clock, which every lease and schedule is compared with (the admin's
    "expired" mark on a lease agrees with ``lease.reap``)."""
    return conn.exec_driver_sql(SQL.database_now).scalar()


def recipient_reasons(conn, ids):
    """``{mail id: [(address, status, reason), ...]}``: the recipients of the mails ``ids``
    (UUIDs) that have a reason (a bounce's, a complaint's, a suppression's), by address."""
    found = {}
    if not ids:
        return found
    rows = conn.exec_driver_sql(SQL.recipient_reasons, {"ids": [str(i) for i in ids]})
    for mail_id, address, status, reason in rows:
        found.setdefault(mail_id, []).append((address, status, reason))
    return found
