"""After the hand-off: the providers' events move recipients and mail forward.

``record_events`` stores a batch of events (sent, deferred, delivered, bounced, unsubscribed,
complained, ...), moves each recipient forward and rolls its mail up from its recipients;
permanent bounces, complaints and unsubscribes go on the suppression list; every recipient and
mail that moved to a status the client hears of raises its webhook; the new delivered,
bounced, deferred and complained events are added to the per-minute counts of their provider
and recipient domain that the guard reads (``mailer.queue.steering``). The statements are in
``sql/events.sql``.
"""

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from mailer.events import outbox
from mailer.events import provider as provider_events
from mailer.queue import suppressions
from mailer.queue.queries import as_json, load

SQL = load("events.sql")


@dataclass(frozen=True)
class Recorded:
    """What came of a request's events: how many were new, repeats, and those of no mail."""

    new: int
    repeats: int
    unmatched: list


def record_events(conn, events, suppression_days, webhooks=None):
    """Store the providers' events and move their recipients and mails forward; ``Recorded``.

    All in the caller's transaction (a SendGrid batch is one). An event finds its mail by our
    id, else by the provider's message id; one that finds none is not stored. A repeat of a
    stored event (the same provider's key) changes nothing. A recipient's status only moves
    forward (``models.RECIPIENT_ORDER``), so events may come in any order. A permanent bounce,
    a complaint or an unsubscribe suppresses the address for the mail's tenant (test mail's: for
    its test view, ``suppressions.view``); a recipient
    that moved to delivered, bounced or complained raises the client's webhook, and so does a
    mail that the roll-up moved when none of its recipients did (an unsubscribe settles a mail
    as delivered).

    A batch is two statements, whatever its size: lock its mails (``_lock_for_events``), then
    insert its new events, move their recipients, roll their mails up and count their outcomes
    per provider, domain and minute in one (``_store_and_move``); then, if any, suppressions,
    and webhooks if some endpoint may take them. Mail ids are handled as
    text here, as the database writes them (``Event.mail_id`` is text already).
    """
    mails = _lock_for_events(conn, events)
    matched, unmatched = _match(events, mails)
    new, suppressing, reported = _store_and_move(conn, matched, mails, webhooks)
    suppressions.add_many(
        conn,
        [
            {
                "tenant": suppressions.view(mails[mail_id].tenant, mails[mail_id].test),
                "address": event.recipient,
                "reason": provider_events.SUPPRESSES[event.type],
                "detail": event.reason,
                "email_id": uuid.UUID(mail_id),
            }
            for mail_id, event in suppressing
        ],
        suppression_days,
    )
    outbox.write(
        conn,
        webhooks,
        [
            (mail_id, provider_events.CLIENT_EVENT[status], address, reason)
            for mail_id, address, status, reason in reported
        ],
    )
    return Recorded(new, len(matched) - new, unmatched)


class _MailOfEvents(NamedTuple):
    """What matching and moving events need of a mail."""

    recipients: frozenset  # bare addresses
    message_id: str | None  # the provider's, as the send answered
    tenant: str  # whose suppression list its bounces and complaints go on
    test: bool  # a test key's mail: its tenant's test view, and counted nowhere live


def _lock_for_events(conn, events):
    """The recipients of the events' mails, by mail id (text), the mails locked in id order."""
    ids = sorted({event.mail_id for event in events if event.mail_id})
    message_ids = sorted({event.message_id for event in events if event.message_id})
    if not ids and not message_ids:
        return {}
    rows = conn.exec_driver_sql(SQL.lock_for_events, {"ids": ids, "message_ids": message_ids})
    return {
        mail_id: _MailOfEvents(frozenset(recipients or ()), message_id, tenant, test)
        for mail_id, recipients, message_id, tenant, test in rows
    }


def _match(events, mails):
    """``([(mail id, event)], [unmatched events])``: by our id, else by the message id."""
    by_message = {mail.message_id: mail_id for mail_id, mail in mails.items() if mail.message_id}
    matched, unmatched = [], []
    for event in events:
        mail_id = event.mail_id
        if mail_id not in mails:
            mail_id = by_message.get(event.message_id)
        if mail_id is None:
            unmatched.append(event)
        else:
            matched.append((mail_id, event))
    return matched, unmatched


def _store_and_move(conn, matched, mails, webhooks):
    """Insert the events not stored before, move their recipients, roll their mails up: one
    statement (``store_and_move``). Returns how many events were new, the new ``(mail id,
    event)`` that suppress their recipient, and the webhooks the moves raise, ``(mail id,
    address, status, reason)`` (no address for a mail's own): if ``webhooks`` (a
    ``Subscription``) is given and some endpoint may take them, the settings' or a tenant's.
    """
    unique = {}
    for mail_id, event in matched:
        unique.setdefault((event.provider, event.key[:255]), (mail_id, event))
    if not unique:
        return 0, [], []
    pairs = list(unique.values())
    items = [
        {
            "n": n,
            "email_id": mail_id,
            "provider": provider,
            "dedup_key": key,
            "type": event.type,
            "provider_event": event.provider_event[:32],
            "recipient": event.recipient,
            "severity": event.severity,
            "reason": event.reason,
            "occurred_at": event.occurred_at,
            "moves_to": _moves_to(event, mails[mail_id]),
            "fanout": len(mails[mail_id].recipients),
            "live": not mails[mail_id].test,
        }
        for n, ((provider, key), (mail_id, event)) in enumerate(unique.items(), start=1)
    ]
    # The payloads are JSON texts already: one JSON array of them, not parsed to be written
    # again.
    payloads = "[" + ",".join([event.payload for _, event in pairs]) + "]"
    ((new, suppressing, reported),) = conn.exec_driver_sql(
        SQL.store_and_move,
        {
            "events": as_json(items),
            "payloads": payloads,
            "report": webhooks is not None,
            "settings": webhooks is not None and webhooks.events is not None,
        },
    )
    return new, [pairs[n - 1] for n in suppressing], reported or []


def _moves_to(event, mail):
    """The status ``event`` moves its recipient to, or None: it moves none (an open, a
    click, ...), or its address is not one the mail was sent to."""
    status = provider_events.RECIPIENT_STATUS.get(event.type)
    return status if status is not None and event.recipient in mail.recipients else None
