"""Bounce reports received as mail (``mailer.inbound.reports.BounceReport``), applied to the
mail they return.

Each recipient a report gives up on for good becomes ``bounced`` through the providers' event
path (``events.record_events``), so the same rules apply as to a provider's bounce: the
recipient only moves forward, its mail rolls up, its address goes on its tenant's suppression
list, and the client gets ``mail.bounced``. The events are the mail's provider's, as the
worker records a relay's refusals at RCPT TO (``rcpt_refused``): a report is the same refusal
come back later, and the deliverability guard counts it against the provider whose mail
bounced. Its event is ``dsn``; its key is the mail, the status and the address, so the same
report received again is a repeat and changes nothing. The statements are in
``sql/inbound_reports.sql``.
"""

from typing import NamedTuple

from mailer.events.provider import (
    CANONICAL_UUID,
    MAX_REASON,
    PERMANENT,
    Event,
    bounded_json,
)
from mailer.queue.events import record_events
from mailer.queue.queries import load
from models import BOUNCED, HANDED_OFF, utcnow

SQL = load("inbound_reports.sql")
DSN_EVENT = "dsn"  # the provider_event of a bounce read from a report received as mail


class _ReportedMail(NamedTuple):
    """What applying a report needs of the mail it returns."""

    id: str  # as the database writes it
    message_id: str  # the Message-ID the report named it by
    provider: str  # the provider that took it
    recipients: tuple  # bare addresses, as sent


def apply_report(conn, report, config, webhooks):
    """Make each recipient that ``report`` gives up on for good (``BounceReport.bounces``)
    ``bounced`` on the mail it returns; the number of recipients that became bounced.

    The mail is the first of the report's original Message-IDs whose local part is the id of a
    mail of ours that a provider took (``<{mail id}@{domain}>``, as we write them): the returned
    message's own Message-ID comes first, so a References chain never names another. Only its
    recipients are bounced; an address the mail was not sent to is left alone. In the caller's
    transaction; ``webhooks`` is the app's subscription (``app.extensions["webhooks"]``, None:
    no client webhooks), as ``record_events`` takes it.
    """
    bounces = report.bounces
    named = _named_mail_ids(report.original_message_ids)
    if not bounces or not named:
        return 0
    mail = _reported_mail(conn, named)
    if mail is None:
        return 0
    events = _events(mail, bounces, report.reported_at)
    if not events:
        return 0
    addresses = [event.recipient for event in events]
    before = _statuses(conn, mail.id, addresses)
    record_events(conn, events, config["SUPPRESSION_DAYS"], webhooks)
    after = _statuses(conn, mail.id, addresses)
    return sum(1 for a in addresses if after.get(a) == BOUNCED and before.get(a) != BOUNCED)


def _named_mail_ids(message_ids):
    """``{mail id: Message-ID}`` of the Message-IDs whose local part is a mail id, in order."""
    named = {}
    for message_id in message_ids:
        local = message_id.strip("<>").rpartition("@")[0].lower()
        if CANONICAL_UUID.fullmatch(local):
            named.setdefault(local, message_id)
    return named


def _reported_mail(conn, named):
    """The first mail of ``named`` that a provider took, locked; None if there is none."""
    rows = conn.exec_driver_sql(
        SQL.lock_reported_mails, {"ids": list(named), "handed_off": list(HANDED_OFF)}
    )
    found = {mail_id: (provider, recipients) for mail_id, provider, recipients in rows}
    for mail_id, message_id in named.items():
        if mail_id in found:
            provider, recipients = found[mail_id]
            return _ReportedMail(mail_id, message_id, provider, tuple(recipients or ()))
    return None


def _events(mail, bounces, reported_at):
    """The ``bounced`` event of each bounce that is one of ``mail``'s recipients, with the
    address as the mail was sent to it (a report lower-cases it)."""
    sent_to = {address.lower(): address for address in mail.recipients}
    now = utcnow()
    occurred_at = min(reported_at, now) if reported_at is not None else now
    events = []
    for bounce in bounces:
        address = sent_to.get(bounce.address)
        if address is None:
            continue
        reason = " ".join(part for part in (bounce.status, bounce.diagnostic) if part)
        events.append(
            Event(
                provider=mail.provider,
                key=f"{mail.id}:{DSN_EVENT}:{bounce.status or ''}:{address}",
                type=BOUNCED,
                provider_event=DSN_EVENT,
                recipient=address,
                mail_id=mail.id,
                message_id=mail.message_id,
                severity=PERMANENT,
                reason=reason[:MAX_REASON] or None,
                occurred_at=occurred_at,
                payload=bounded_json(
                    {
                        "message_id": mail.message_id,
                        "recipient": bounce.address,
                        "action": bounce.action,
                        "status": bounce.status,
                        "diagnostic": bounce.diagnostic,
                    }
                ),
            )
        )
    return events


def _statuses(conn, mail_id, addresses):
    """``{address: status}`` of ``addresses`` among the recipients of the mail ``mail_id``."""
    rows = conn.exec_driver_sql(
        SQL.recipient_statuses, {"mail_id": mail_id, "addresses": addresses}
    )
    return dict(rows.all())
