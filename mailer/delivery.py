"""One delivery of one mail: the failover loop over the providers, and what to do next.

``deliver`` tries the providers in ``PROVIDERS`` order, skipping those whose breaker is open or
paused, and returns an ``Outcome``. ``decide`` turns the outcome into the mail's next state:
sent, failed, or queued again with exponential backoff and jitter. Failover is this plain loop,
not something hidden inside a provider.
"""

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta

from models import FAILED, QUEUED, SENT, split_addresses, utcnow
from providers import (
    MalformedAnswer,
    Message,
    MessageRejected,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)

from .circuit import PROBE, SKIP, safely

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


def message_from_row(row):
    """Build the providers' Message from a claimed row; a malformed row raises ValueError."""
    to = split_addresses(row["to_address"])
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
        cc=split_addresses(row["cc"]),
        bcc=split_addresses(row["bcc"]),
        reply_to=row["reply_to"],
    )


def deliver(message, providers, breakers, sessions):
    """Try each usable provider in turn until one accepts or rejects the message."""
    answers = []
    for provider in providers:
        mode = breakers.mode(provider.name)
        if mode == SKIP or (mode == PROBE and not safely(breakers.try_probe, provider.name)):
            continue
        started = time.monotonic()
        try:
            sent = provider.send(sessions.get(provider), message)
        except ProviderError as err:
            answers.append(_answer(provider.name, err.outcome, started, err.status_code,
                                   err.response, err.reason))
            if _settles(provider, breakers, err):
                return Outcome(REJECTED, answers, provider.name, reason=err.reason)
            continue
        safely(breakers.record_success, provider.name)
        answers.append(_answer(provider.name, "sent", started, sent.status_code, sent.response,
                               message_id=sent.message_id))
        return Outcome(DELIVERED, answers, provider.name, sent.message_id)
    return _no_delivery(answers)


def _settles(provider, breakers, err):
    """Update the provider's health after an error; True if the error ends the delivery."""
    if isinstance(err, RateLimited):
        safely(breakers.pause, provider.name, err.retry_after, err.reason)
        return False
    if isinstance(err, ProviderMisconfigured):
        log.error("%s refuses our credentials (%s): check its settings", provider.name, err.reason)
    if isinstance(err, ProviderUnavailable):
        safely(breakers.record_failure, provider.name, err.reason)
        return False
    # The provider is up and has judged the message: no other provider would judge better.
    safely(breakers.record_success, provider.name)
    return isinstance(err, MessageRejected | MalformedAnswer)


def _no_delivery(answers):
    """No provider accepted: retry later, or wait without counting an attempt."""
    if not answers or all(answer["outcome"] == "rate_limited" for answer in answers):
        # Every provider is open or pausing us: nothing was tried, so nothing counts.
        return Outcome(DEFERRED, answers, reason="no provider available")
    return Outcome(RETRY, answers, reason=answers[-1]["error"])


def _answer(provider, outcome, started, status_code=None, response=None, error=None,
            message_id=None):
    """One provider's answer, as stored in the mail's result and attempt log."""
    return {
        "provider": provider,
        "outcome": outcome,
        "status_code": status_code,
        "message_id": message_id,
        "response": response,
        "error": error,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "at": utcnow().isoformat(),
    }


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a number of attempts and an age."""

    max_attempts: int = 8
    max_age: float = 86400.0  # seconds
    base: float = 30.0  # seconds
    cap: float = 3600.0  # seconds

    def delay(self, attempts):
        """Seconds to wait after the ``attempts``-th failed delivery ("full jitter" halved)."""
        ceiling = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def exhausted(self, attempts, created_at, now):
        """Whether a mail that failed ``attempts`` times may not be retried again."""
        age = (now - created_at).total_seconds()
        return attempts >= self.max_attempts or age >= self.max_age


def decide(row, outcome, policy, retry_at=None):
    """The mail's new columns after ``outcome``: sent, failed or queued again."""
    now = utcnow()
    attempts = row["attempts"] + (0 if outcome.kind == DEFERRED else 1)
    values = {"id": row["id"], "provider": outcome.provider, "message_id": outcome.message_id,
              "result": outcome.answers or None, "attempts": attempts,
              "last_error": outcome.reason, "next_attempt_at": now, "sent_at": None}
    if outcome.kind == DELIVERED:
        return {**values, "status": SENT, "last_error": None, "sent_at": now}
    if outcome.kind == REJECTED:
        return {**values, "status": FAILED}
    if outcome.kind == RETRY and policy.exhausted(attempts, row["created_at"], now):
        return {**values, "status": FAILED, "last_error": f"gave up after {attempts} "
                f"attempts: {outcome.reason}"}
    if outcome.kind == DEFERRED and policy.exhausted(0, row["created_at"], now):
        return {**values, "status": FAILED, "last_error": f"gave up: {outcome.reason} "
                "for longer than MAX_AGE"}
    delay = policy.delay(attempts) if outcome.kind == RETRY else 0.0
    next_at = now + timedelta(seconds=delay)
    if outcome.kind == DEFERRED and retry_at is not None:
        next_at = max(next_at, retry_at)
    return {**values, "status": QUEUED, "next_attempt_at": next_at}


def attempt_rows(row, outcome, attempts, worker):
    """The ``delivery_attempt`` rows of one delivery, one per provider called."""
    return [
        {"email_id": row["id"], "number": attempts, "provider": answer["provider"],
         "outcome": answer["outcome"], "status_code": answer["status_code"],
         "response": answer["response"], "error": answer["error"],
         "duration_ms": answer["duration_ms"], "worker": worker, "created_at": utcnow()}
        for answer in outcome.answers
    ]


def poisoned(err):
    """The outcome for a mail that could not even be attempted (a malformed row)."""
    return Outcome(REJECTED, [], reason=f"malformed mail: {err}")
