"""One delivery of one mail: the failover loop over the providers, and what to do next.

``deliver`` tries the providers in the mail's order (its route's, see ``dispatch``), skipping
those whose breaker is open or paused, and returns an ``Outcome``; ``simulate`` hands a test
key's mail to the simulator instead, and returns the same. ``decide`` turns the outcome
into the mail's next state: sent, failed, or queued again with exponential backoff and jitter.
Failover is this plain loop, not something hidden inside a provider.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from mailer.events.provider import BOUNCED, PERMANENT, Event
from mailer.validation.addresses import bare_address
from mailer.worker.circuit import PROBE, SKIP, safely
from models import FAILED, QUEUED, SENT, SUPPRESSED
from providers import (
    Message,
    MessageRejected,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)

log = logging.getLogger("mail_service.delivery")

# Kinds of outcome of one delivery.
DELIVERED, REJECTED, RETRY, DEFERRED = "delivered", "rejected", "retry", "deferred"


@dataclass
class Outcome:
    """What came of one delivery: the answers of every provider called, in order."""

    kind: str
    answers: list = field(default_factory=list)
    provider: str | None = None
    message_id: str | None = None
    reason: str | None = None
    refused: dict = field(default_factory=dict)  # address -> reply, of a mail that went


def message_from_row(row):
    """Build the providers' Message from a claimed row; a malformed row raises ValueError."""
    to = list(row["to_address"] or ())
    if not row["from_address"] or not to:
        raise ValueError("the stored mail has no sender or no recipient")
    if not row["text"] and not row["html"]:
        raise ValueError("the stored mail has no body")
    return Message(
        id=str(row["id"]),
        from_address=row["from_address"],
        to=to,
        subject=row["subject"] or "",
        text=row["text"],
        html=row["html"],
        cc=list(row["cc"] or ()),
        bcc=list(row["bcc"] or ()),
        reply_to=row["reply_to"],
        headers=dict(row.get("headers") or {}),
        tags=list(row.get("tags") or ()),
        metadata=dict(row.get("metadata") or {}),
        attachments=list(row.get("attachments") or ()),
    )


def deliver(message, providers, breakers, sessions, admit=None):
    """Try each usable provider in turn until one accepts or rejects the message.

    ``providers`` is this mail's order (its first provider was planned under the rate caps);
    ``admit(provider)`` says whether a later one may be used now (a token under its cap).
    """
    answers = []
    for position, provider in enumerate(providers):
        mode = breakers.mode(provider.name)
        if mode == SKIP or (mode == PROBE and not safely(breakers.try_probe, provider.name)):
            continue
        if position and mode != PROBE and admit is not None and not safely(admit, provider):
            continue  # at its rate cap: like a paused provider, it costs no attempt
        called_at, started = breakers.clock.now(), time.monotonic()
        try:
            sent = provider.send(sessions.get(provider), message)
        except ProviderError as err:
            answers.append(
                _answer(
                    provider.name,
                    err.outcome,
                    called_at,
                    started,
                    err.status_code,
                    err.response,
                    err.reason,
                )
            )
            if _settles(provider, breakers, err):
                return Outcome(REJECTED, answers, provider.name, reason=err.reason)
            log.info(
                "mail %s: %s failed (%s), trying the next provider",
                message.id,
                provider.name,
                err.reason,
                extra={"mail_id": message.id, "provider": provider.name},
            )
            continue
        safely(breakers.record_success, provider.name)
        answers.append(
            _answer(
                provider.name,
                "sent",
                called_at,
                started,
                sent.status_code,
                sent.response,
                message_id=sent.message_id,
            )
        )
        return Outcome(DELIVERED, answers, provider.name, sent.message_id, refused=sent.refused)
    return _no_delivery(answers)


def simulate(message, simulator, clock):
    """Deliver test mail to the ``simulator`` (``mailer.worker.simulator``) instead of any
    provider: no breaker, cap or failover; an ``Outcome`` as ``deliver``'s, with its one
    answer."""
    called_at, started = clock.now(), time.monotonic()
    try:
        sent = simulator.send(None, message)
    except ProviderError as err:
        answer = _answer(
            simulator.name,
            err.outcome,
            called_at,
            started,
            err.status_code,
            err.response,
            err.reason,
        )
        return Outcome(REJECTED, [answer], simulator.name, reason=err.reason)
    answer = _answer(
        simulator.name,
        "sent",
        called_at,
        started,
        sent.status_code,
        sent.response,
        message_id=sent.message_id,
    )
    return Outcome(DELIVERED, [answer], simulator.name, sent.message_id)


def _settles(provider, breakers, err):
    """Update the provider's health after an error; True if the error ends the delivery."""
    if isinstance(err, RateLimited):
        safely(breakers.pause, provider.name, err.retry_after, err.reason)
        return False
    if isinstance(err, ProviderMisconfigured):
        log.error(
            "%s is misconfigured (%s): check its settings",
            provider.name,
            err.reason,
            extra={"provider": provider.name},
        )
    if isinstance(err, ProviderUnavailable):
        safely(breakers.record_failure, provider.name, err.reason)
        return False
    # The provider is up and has judged the message: no other provider would judge better.
    safely(breakers.record_success, provider.name)
    return isinstance(err, MessageRejected)


def _no_delivery(answers):
    """No provider accepted: retry later, or wait without counting an attempt."""
    if not answers or all(answer["outcome"] == "rate_limited" for answer in answers):
        # Every provider is open or pausing us: nothing was tried, so nothing counts.
        return Outcome(DEFERRED, answers, reason="no provider available")
    return Outcome(RETRY, answers, reason=answers[-1]["error"])


def _answer(
    provider,
    outcome,
    called_at,
    started,
    status_code=None,
    response=None,
    error=None,
    message_id=None,
):
    """One provider's answer, as stored in the mail's result and attempt log."""
    return {
        "provider": provider,
        "outcome": outcome,
        "status_code": status_code,
        "message_id": message_id,
        "response": response,
        "error": error,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "at": called_at.isoformat(),
    }


@dataclass(frozen=True)
class Decision:
    """A mail's next state after one delivery, as ``lease.finish`` records it."""

    id: object
    status: str
    attempts: int
    provider: str | None = None
    message_id: str | None = None
    result: list | None = None
    last_error: str | None = None
    retry_in: float = 0.0  # seconds from now (the database's) until it is due again
    suppressed: tuple = ()  # (address, reason) of each recipient the mail did not go to
    refused: tuple = ()  # (address, reply) of each recipient the provider refused (bounced)
    route: str | None = None  # the name of the mail's route (``routes.Lane``), once it had one
    test: bool = False  # a test key's mail: the simulator took it, and it counts nowhere live
    reports: tuple = ()  # the events the simulator reports for it (``simulator.events_of``)


def decide(row, outcome, policy, wait_for=None):
    """The mail's next state after ``outcome``: sent, failed, or queued again after a delay.

    ``row`` is the claimed row, with ``budget_used`` and ``age`` as the database measured them
    and the ``route`` (a ``routes.Lane``) the dispatcher chose; ``wait_for`` is how many seconds
    remain until a skipped provider may be tried again.
    """
    counted = 0 if outcome.kind == DEFERRED else 1
    status, last_error, retry_in = _next_state(
        outcome, policy, row["budget_used"] + counted, row["age"], wait_for
    )
    return Decision(
        id=row["id"],
        status=status,
        attempts=row["attempts"] + counted,
        provider=outcome.provider,
        message_id=outcome.message_id,
        result=outcome.answers or None,
        last_error=last_error,
        retry_in=retry_in,
        suppressed=tuple(row.get("suppressed", ())),
        refused=tuple(outcome.refused.items()),
        route=route_name(row),
        test=row.get("test", False),
    )


def route_name(row):
    """The name of the route a claimed row was given, or None."""
    lane = row.get("route")
    return None if lane is None else lane.name


def _next_state(outcome, policy, used, age, wait_for):
    """``(status, last_error, retry_in)`` after ``outcome``, with ``used`` attempts of the budget
    spent and the mail ``age`` seconds old (one ``Decision`` built from it: a ``replace`` of a
    frozen dataclass costs more than the rest of ``decide``, once per mail)."""
    if outcome.kind == DELIVERED:
        return SENT, None, 0.0
    if outcome.kind == REJECTED:
        return FAILED, outcome.reason, 0.0
    if outcome.kind == RETRY and policy.exhausted(used, age):
        return FAILED, f"gave up after {used} attempts: {outcome.reason}", 0.0
    if outcome.kind == DEFERRED and policy.exhausted(0, age):
        return FAILED, f"gave up: {outcome.reason} for longer than MAX_AGE", 0.0
    if outcome.kind == RETRY:
        return QUEUED, outcome.reason, policy.delay(used)
    return QUEUED, outcome.reason, max(wait_for or 0.0, 0.0)


def without_suppressed(row, blocked):
    """The claimed ``row`` without the addresses in ``blocked`` ({bare address: reason}).

    ``suppressed`` in the result lists the (address, reason) of each one left out; with none
    left, ``to_address``, ``cc`` and ``bcc`` are all empty (see ``all_suppressed``). With every
    ``to`` suppressed, the cc take its place; with only bcc left, the mail goes to its sender
    with the bcc still blind (as mail programs do), so no bcc address is shown to the others.
    """
    if not blocked:  # the usual batch: nobody on the list
        return row
    kept, suppressed = {}, {}
    for column in ("to_address", "cc", "bcc"):
        kept[column] = []
        for entry in row[column] or ():
            address = bare_address(entry)
            if address in blocked:
                suppressed.setdefault(address, blocked[address])
            else:
                kept[column].append(entry)
    if not suppressed:
        return row
    if any(kept.values()) and not kept["to_address"]:
        kept["to_address"], kept["cc"] = kept["cc"] or [row["from_address"]], []
    return {**row, **kept, "suppressed": tuple(suppressed.items())}


def nobody_left(row):
    """Whether every recipient of a row from ``without_suppressed`` was suppressed (a row that
    had no recipient at all is not: it fails as malformed, see ``message_from_row``)."""
    return bool(row.get("suppressed")) and not (row["to_address"] or row["cc"] or row["bcc"])


def all_suppressed(row):
    """The decision for a mail whose every recipient is suppressed: no provider is called."""
    return Decision(
        id=row["id"],
        status=SUPPRESSED,
        attempts=row["attempts"],
        last_error="every recipient is on the suppression list",
        suppressed=tuple(row["suppressed"]),
    )


def attempt_rows(decision, outcome, worker):
    """The ``delivery_attempt`` rows of one delivery, one per provider called, at call time."""
    return [
        {
            "email_id": decision.id,
            "number": decision.attempts,
            "provider": answer["provider"],
            "outcome": answer["outcome"],
            "status_code": answer["status_code"],
            "response": answer["response"],
            "error": answer["error"],
            "duration_ms": answer["duration_ms"],
            "worker": worker,
            "created_at": datetime.fromisoformat(answer["at"]),
        }
        for answer in outcome.answers
    ]


def poisoned(err):
    """The outcome for a mail whose row cannot be turned into a message: it fails."""
    return Outcome(REJECTED, [], reason=f"malformed mail: {err}")


def crashed(err):
    """The outcome of a send that raised unexpectedly: our fault, not the mail's, so retry.

    A bad deploy must not fail every mail it touches; the attempt budget still bounds it.
    """
    return Outcome(RETRY, [], reason=f"internal error: {err.__class__.__name__}: {err}")


def refusal_events(decisions):
    """The ``bounced`` events of the recipients that a provider refused while it took their
    mail for the others (an SMTP relay's 5xx to RCPT TO): recorded as a provider's events are
    (``mailer.queue.events``), so the recipient, the suppression list and the client's
    webhooks follow the same rules."""
    return [
        Event(
            provider=decision.provider,
            key=f"{decision.id}:refused:{address}",
            type=BOUNCED,
            provider_event="rcpt_refused",
            recipient=bare_address(address),
            mail_id=str(decision.id),
            message_id=decision.message_id,
            severity=PERMANENT,
            reason=reply,
            occurred_at=datetime.fromisoformat(decision.result[-1]["at"]),
            payload=json.dumps({"recipient": address, "reply": reply}, ensure_ascii=False),
        )
        for decision in decisions
        if decision.status == SENT
        for address, reply in decision.refused
    ]
