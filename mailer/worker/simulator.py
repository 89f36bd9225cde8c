"""Test mode's provider: a ``mk_test_`` key's mail goes here instead of to any provider.

The worker hands test mail (``email.test``) to the ``Simulator``, never to a provider: it is
not in ``providers.REGISTRY`` nor ``PROVIDERS``, has no route, cap or breaker, and the guard
never counts it. It keeps the providers' ``send`` contract (``Sent``, or ``MessageRejected``)
and decides the outcome from the local part of the mail's first recipient:

| local part starts with | the send    | then the events (every recipient)      | the mail   |
|------------------------|-------------|-----------------------------------------|------------|
| ``bounce``             | taken       | bounced (permanent)                     | bounced    |
| ``complaint``          | taken       | delivered, complained                   | complained |
| ``reject``             | rejected    | none                                    | failed     |
| ``defer``              | taken       | deferred (temporary), delivered         | delivered  |
| anything else          | taken       | delivered                               | delivered  |

``events_of`` turns a simulated delivery into the ``Event`` objects a provider would have
posted (provider ``simulator``), which the worker records with ``events.record_events`` in the
transaction that records the send: statuses, suppression entries (in the tenant's test view,
``suppressions.view``) and the client's webhooks follow exactly as for live mail.
"""

import json
from datetime import datetime, timedelta

from mailer.events.provider import (
    BOUNCED,
    COMPLAINED,
    DEFERRED,
    DELIVERED,
    PERMANENT,
    TEMPORARY,
    Event,
)
from mailer.validation.addresses import bare_address
from models import SENT
from providers.base import MessageRejected, Sent

SIMULATOR = "simulator"
BOUNCE, COMPLAINT, REJECT, DEFER = "bounce", "complaint", "reject", "defer"
# What each outcome reports after the send, in order: (event type, severity, reason).
REPORTS = {
    BOUNCE: ((BOUNCED, PERMANENT, "550 5.1.1 simulated bounce: no such mailbox"),),
    COMPLAINT: ((DELIVERED, None, None), (COMPLAINED, None, "simulated complaint")),
    DEFER: ((DEFERRED, TEMPORARY, "421 4.7.0 simulated deferral"), (DELIVERED, None, None)),
    None: ((DELIVERED, None, None),),
}
STEP = timedelta(milliseconds=1)  # between a simulated delivery's events, so they keep order


def outcome_for(address):
    """The simulated outcome of mail whose first recipient is ``address``: one of ``BOUNCE``,
    ``COMPLAINT``, ``REJECT``, ``DEFER``, or None (delivered)."""
    local = bare_address(address).rpartition("@")[0].lower()
    for outcome in (BOUNCE, COMPLAINT, REJECT, DEFER):
        if local.startswith(outcome):
            return outcome
    return None


class Simulator:
    """A provider that sends nothing: the outcome comes from the first recipient's address."""

    name = SIMULATOR

    def send(self, session, message):
        """``Sent`` with a made-up message id, or ``MessageRejected`` for ``reject…``."""
        outcome = outcome_for(message.to[0])
        if outcome == REJECT:
            raise MessageRejected(
                "simulated rejection", 422, {"message": "simulated rejection (test mode)"}
            )
        return Sent(
            message_id=f"simulated-{message.id}",
            status_code=200,
            response={"simulated": outcome or "delivered"},
        )

    def close(self):
        """Nothing to close: no connection is ever opened."""


def events_of(decision, addresses):
    """The events of a simulated delivery (``decision``, a test mail's ``Decision``) that
    went to ``addresses`` (as sent): for each one, what ``REPORTS`` says for the first, just
    after the send's time; none for a mail that did not go."""
    if decision.status != SENT or not addresses:
        return ()
    addresses = [bare_address(address) for address in addresses]
    sent_at = datetime.fromisoformat(decision.result[-1]["at"])
    return tuple(
        _event(decision, address, kind, severity, reason, sent_at + (number + 1) * STEP)
        for number, (kind, severity, reason) in enumerate(REPORTS[outcome_for(addresses[0])])
        for address in addresses
    )


def _event(decision, address, kind, severity, reason, occurred_at):
    """One simulated event of ``decision``'s mail for ``address``; its key is unique per
    delivery (the attempt's number), so a retried test mail reports again."""
    return Event(
        provider=SIMULATOR,
        key=f"{decision.id}:{decision.attempts}:{kind}:{address}",
        type=kind,
        provider_event=f"simulated_{kind}",
        recipient=address,
        mail_id=str(decision.id),
        message_id=decision.message_id,
        severity=severity,
        reason=reason,
        occurred_at=occurred_at,
        payload=json.dumps(
            {"event": kind, "recipient": address, "simulated": True}, ensure_ascii=False
        ),
    )
