"""Received mail: ``receive``, the one entry every way in calls, and what the API, the admin and
the purge read and delete (``sql/inbound.sql``).

``receive`` runs in the caller's transaction, in this order:

1. A bounce report (``reports.read_report``) is not a reply: it is applied to the mail it
   reports on (``inbound_reports.apply_report``, which moves the failed recipients to bounced
   through the providers' events path) and nothing is stored here.
2. Otherwise the mail is stored once: a replay of the same provider delivery (``source``,
   ``delivery_id``) or of the same Message-ID stores nothing and answers the record stored
   before, with no second webhook. An automatic reply (``reports.is_auto_reply``) is stored
   and marked ``auto_reply``.
3. It is linked to the mail of ours it answers (``in_reply_to_mail_id``): the nearest of its
   In-Reply-To, then its References from the last, that names one. Our Message-ID is
   ``<{mail id}@{domain}>``, so an id whose local part is the UUID of a mail we hold is ours,
   whatever its domain (the domain setting may change, and a UUID is unguessable); so is an id
   that is a mail's ``provider_message_id`` (a provider that writes its own Message-ID, as SES
   does), whole, without its brackets or as its local part. The record takes the tenant of the
   mail it answers, else ``default``.
4. ``mail.received`` is written to the outbox (``outbox.write_received``).

An attachment's bytes are kept while the mail's attachments stay within ``MAX_ATTACHMENTS``
files and ``MAX_ATTACHMENT_BYTES`` bytes (decoded), as a submitted mail's must; one past either
is recorded by name, type and size with ``dropped`` naming the limit, and the mail is stored all
the same (refusing it would lose the reply: the provider retries, then gives up).

Text that PostgreSQL cannot hold (a NUL, a lone surrogate) is cleaned, and a Message-ID,
delivery id or address too long to be one is not used for replays or look-ups (an index entry
could not hold it), so that whatever a sender writes is stored rather than answered with an
error.
"""

import math
import re
import uuid
from dataclasses import dataclass

from psycopg2 import Binary
from psycopg2.extras import Json

from mailer.events import outbox
from mailer.inbound import reports
from mailer.queue import inbound_reports
from mailer.queue.queries import load
from mailer.validation.addresses import bare_address

SQL = load("inbound.sql")

STORED, REPLAYED, REPORT = "stored", "replay", "report"  # what came of a received mail
# Bytes (UTF-8) of a Message-ID, delivery id or bare address that is looked up by an index: a
# header line's most, and well within what an index entry holds.
MAX_ID = 998
MAX_CANDIDATES = 50  # the nearest ids of a mail's In-Reply-To and References looked up
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
MAIL_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Received:
    """What came of a received mail: ``outcome`` is ``STORED`` (a new record), ``REPLAYED``
    (stored before: ``inbound_id`` is that record's, and no webhook was written again) or
    ``REPORT`` (a bounce report: nothing stored, ``bounced`` recipients moved to bounced)."""

    outcome: str
    inbound_id: uuid.UUID | None
    in_reply_to_mail_id: uuid.UUID | None = None
    auto_reply: bool = False
    bounced: int = 0


def receive(conn, inbound, config, webhooks):
    """Take the received mail ``inbound`` (an ``InboundMail``) in the caller's transaction
    (``conn``, a SQLAlchemy Connection in a transaction: ``database.transaction()``, not a
    single statement's, so that the record, its attachments and its webhook commit together):
    apply it if it is a bounce report, else store it once,
    linked to the mail it answers, and write ``mail.received`` for ``webhooks`` (an
    ``outbox.Subscription``; None: none). ``config`` holds ``MAX_ATTACHMENTS`` and
    ``MAX_ATTACHMENT_BYTES`` (and what ``apply_report`` reads). Returns a ``Received``."""
    report = reports.read_report(inbound)
    if report is not None:
        return Received(
            REPORT, None, bounced=inbound_reports.apply_report(conn, report, config, webhooks)
        )
    mail_id, tenant = replied_mail(conn, inbound)
    row = {
        **record_of(inbound),
        "auto_reply": bool(reports.is_auto_reply(inbound)),
        "in_reply_to_mail_id": mail_id,
        "tenant": tenant,
    }
    stored = conn.exec_driver_sql(SQL.insert, row).first()
    if stored is None:
        before = conn.exec_driver_sql(SQL.stored_before, row).first()
        if before is not None:
            return Received(REPLAYED, before.id, before.in_reply_to_mail_id, before.auto_reply)
        stored = conn.exec_driver_sql(SQL.insert, row).one()  # the one it met is gone
    store_attachments(conn, stored.id, inbound.attachments, config)
    outbox.write_received(conn, webhooks, stored.id)
    return Received(STORED, stored.id, stored.in_reply_to_mail_id, stored.auto_reply)


# The record ----------------------------------------------------------------------------------


def record_of(inbound):
    """The columns of the ``inbound`` row of ``inbound``, but its link, tenant and mark."""
    to, cc, envelope_to = _texts(inbound.to), _texts(inbound.cc), _texts(inbound.envelope_to)
    from_address, envelope_from = _text(inbound.from_address), _text(inbound.envelope_from)
    return {
        "source": inbound.source,
        "delivery_id": _identifier(inbound.delivery_id),
        "envelope_from": envelope_from,
        "envelope_to": envelope_to,
        "from_address": from_address,
        "to_address": to,
        "cc": cc,
        "subject": _text(inbound.subject) or "",
        "text": _text(inbound.text),
        "html": _text(inbound.html),
        "stripped_text": _text(inbound.stripped_text),
        "headers": Json([[_text(name), _text(value)] for name, value in inbound.headers]),
        "message_id": _identifier(inbound.message_id),
        "in_reply_to": _text(inbound.in_reply_to),
        "reference_ids": _texts(inbound.references),
        "spam_score": _finite(inbound.spam_score),
        "spam_verdict": _text(inbound.spam_verdict),
        "recipients": list(dict.fromkeys(filter(None, map(bare, [*envelope_to, *to, *cc])))),
        "sender": bare(from_address) or bare(envelope_from),
    }


def bare(address):
    """``address`` as ``GET /inbound?to=`` and ``?from=`` compare it (``bare_address``), or
    None if it has no ``local@domain``."""
    if not address:
        return None
    found = bare_address(address)
    local, _, domain = found.rpartition("@")
    return found if local and domain and _fits(found) else None


def _text(value):
    """``value`` as PostgreSQL text can hold it: without NUL, lone surrogates replaced."""
    if value is None:
        return None
    return str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _texts(values):
    """Each of ``values`` as ``_text`` makes it."""
    return [_text(value) for value in values or ()]


def _identifier(value):
    """A Message-ID or delivery id, or None if it is empty or too long to be one."""
    value = _text(value)
    return value if value and _fits(value) else None


def _fits(value):
    """Whether ``value`` is short enough to be looked up by an index (``MAX_ID``)."""
    return len(value) <= MAX_ID and len(value.encode("utf-8")) <= MAX_ID


def _finite(value):
    """A number JSON can write, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# The mail it answers -------------------------------------------------------------------------


def replied_mail(conn, inbound):
    """``(mail id, tenant)`` of the mail of ours ``inbound`` answers, or ``(None, "default")``.
    One statement, which locks the mail found until the caller's transaction ends."""
    candidates = reply_candidates(inbound)
    ids = [found for candidate in candidates for found in [mail_id_of(candidate)] if found]
    names = [name for candidate in candidates for name in provider_names(candidate)]
    if not ids and not names:
        return None, "default"
    rows = conn.exec_driver_sql(SQL.replied_mails, {"ids": ids, "message_ids": names}).all()
    by_id = {row.id: row for row in rows}
    by_name = {row.provider_message_id: row for row in rows if row.provider_message_id}
    for candidate in candidates:
        found = by_id.get(mail_id_of(candidate))
        found = found or next(filter(None, map(by_name.get, provider_names(candidate))), None)
        if found is not None:
            return found.id, found.tenant
    return None, "default"


def reply_candidates(inbound):
    """The Message-IDs ``inbound`` answers, nearest first and without brackets: its
    In-Reply-To, then its References from the last; at most ``MAX_CANDIDATES``."""
    found = _ids(inbound.in_reply_to)
    for value in reversed(inbound.references):
        found += _ids(value)
    return list(dict.fromkeys(found))[:MAX_CANDIDATES]


def _ids(value):
    """The ids in a header's value: each ``<...>``, or the whole value if it has none."""
    value = _text(value) or ""
    found = MESSAGE_ID.findall(value)
    if found:
        return found
    return [value.strip()] if value.strip() and " " not in value.strip() else []


def mail_id_of(candidate):
    """Our mail id a Message-ID (without brackets) names: its local part, if it is a UUID."""
    local = candidate.rpartition("@")[0]
    return uuid.UUID(local) if MAIL_ID.fullmatch(local) else None


def provider_names(candidate):
    """How a provider's message id may appear as the Message-ID ``candidate``: whole, in
    brackets, or as its local part."""
    local = candidate.rpartition("@")[0]
    return [candidate, f"<{candidate}>", *([local] if local else [])]


# Attachments ---------------------------------------------------------------------------------


def store_attachments(conn, inbound_id, attachments, config):
    """Store ``attachments`` of the received mail ``inbound_id``: their bytes while within
    ``MAX_ATTACHMENTS`` and ``MAX_ATTACHMENT_BYTES``, past those recorded as dropped."""
    if not attachments:
        return
    kept_bytes, columns = 0, {name: [] for name in ATTACHMENT_COLUMNS}
    for position, item in enumerate(attachments):
        size = len(item.content)
        dropped = None
        if position >= config["MAX_ATTACHMENTS"]:
            dropped = "MAX_ATTACHMENTS"
        elif kept_bytes + size > config["MAX_ATTACHMENT_BYTES"]:
            dropped = "MAX_ATTACHMENT_BYTES"
        else:
            kept_bytes += size
        values = (
            position,
            _text(item.filename) or "",
            _text(item.content_type) or "application/octet-stream",
            _text(item.content_id),
            size,
            None if dropped else Binary(item.content),
            dropped,
        )
        for name, value in zip(ATTACHMENT_COLUMNS, values, strict=True):
            columns[name].append(value)
    conn.exec_driver_sql(SQL.insert_attachments, {"id": inbound_id, **columns})


ATTACHMENT_COLUMNS = (
    "positions",
    "filenames",
    "content_types",
    "content_ids",
    "sizes",
    "contents",
    "dropped",
)


# Reads and the purge -------------------------------------------------------------------------


def page(conn, tenant=None, to=None, sender=None, in_reply_to=None, limit=50, after=None):
    """``(rows, more)``: a page of received mail, newest first, each row a dict; after the
    position ``after`` (``(received_at, id)``, from a cursor). ``tenant`` None: every
    tenant's; ``to`` and ``sender``: addresses (compared bare); ``in_reply_to``: a mail id."""
    after_received, after_id = after if after is not None else (None, None)
    params = {
        "tenant": tenant,
        "to": _compared(to),
        "sender": _compared(sender),
        "in_reply_to": in_reply_to,
        "after_received": after_received,
        "after_id": after_id,
        "limit": limit + 1,
    }
    rows = [dict(row) for row in conn.exec_driver_sql(SQL.page, params).mappings()]
    return rows[:limit], len(rows) > limit


def _compared(address):
    """A filter's address as the rows hold it (bare), or as given if it is none; None: no
    filter."""
    if not address:
        return None
    return bare(address) or address


def detail(conn, inbound_id, tenant=None):
    """The received mail ``inbound_id`` (``tenant``'s, unless None) as a dict with its
    ``attachments`` (dicts, without their bytes), or None."""
    row = conn.exec_driver_sql(SQL.detail, {"id": inbound_id, "tenant": tenant}).mappings()
    found = row.first()
    return None if found is None else dict(found)


def attachment(conn, inbound_id, position, tenant=None):
    """The attachment at ``position`` of the received mail ``inbound_id`` (``tenant``'s,
    unless None), with its ``content`` (None if it was dropped), as a dict; or None."""
    params = {"id": inbound_id, "position": position, "tenant": tenant}
    found = conn.exec_driver_sql(SQL.attachment, params).mappings().first()
    return None if found is None else dict(found)


def purge(conn, days, batch_size):
    """Delete up to ``batch_size`` received mails that came more than ``days`` days ago, with
    their attachments and webhooks; how many went."""
    params = {"days": float(days), "batch_size": batch_size}
    return conn.exec_driver_sql(SQL.purge, params).rowcount


def count_purgeable(conn, days):
    """How many received mails came more than ``days`` days ago."""
    return conn.exec_driver_sql(SQL.count_purgeable, {"days": float(days)}).scalar()
