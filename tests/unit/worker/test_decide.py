"""``decide``: a delivery's outcome becomes the mail's next state, with no clock but the row's."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer.clock import DbClock
from mailer.worker.delivery import (
    DEFERRED,
    DELIVERED,
    REJECTED,
    RETRY,
    Decision,
    Outcome,
    crashed,
    decide,
    poisoned,
    refusal_events,
)
from mailer.worker.retry import RetryPolicy
from models import FAILED, QUEUED, SENT
from providers import Message

POLICY = RetryPolicy(max_attempts=3, max_age=3600.0, base=10.0, cap=100.0)
ANSWER = {"provider": "mailgun", "outcome": "transient", "error": "HTTP 503"}


def row(attempts=0, budget_used=None, age=5.0):
    """A claimed row as ``lease.claim`` returns it."""
    used = attempts if budget_used is None else budget_used
    return {"id": "m1", "attempts": attempts, "budget_used": used, "age": age}


def test_delivered_is_sent_with_the_provider_and_its_id():
    outcome = Outcome(DELIVERED, [ANSWER], "sendgrid", "sg-1")
    decision = decide(row(attempts=1), outcome, POLICY)
    assert decision == Decision(
        id="m1",
        status=SENT,
        attempts=2,
        provider="sendgrid",
        message_id="sg-1",
        result=[ANSWER],
        last_error=None,
    )


def test_recipients_refused_while_the_mail_went_become_bounced_events():
    answer = {**ANSWER, "outcome": "sent", "at": "2026-01-02T03:04:05+00:00"}
    reply = "550 5.1.1 <gone@Example.com>: Recipient address rejected"
    outcome = Outcome(
        DELIVERED, [answer], "smtp", "<m1@example.com>", refused={"gone@Example.com": reply}
    )
    decision = decide(row(), outcome, POLICY)
    assert decision.status == SENT and decision.refused == (("gone@Example.com", reply),)
    [event] = refusal_events([decision])
    assert (event.provider, event.type, event.recipient, event.mail_id) == (
        "smtp",
        "bounced",
        "gone@example.com",
        "m1",
    )
    assert event.reason == reply and event.severity == "permanent"
    assert event.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert refusal_events([decide(row(), Outcome(DELIVERED, [answer], "smtp"), POLICY)]) == []


def test_rejected_fails_at_once():
    decision = decide(row(), Outcome(REJECTED, [ANSWER], "mailgun", reason="bad"), POLICY)
    assert (decision.status, decision.attempts, decision.last_error) == (FAILED, 1, "bad")


def test_retry_backs_off_within_the_policy():
    decision = decide(row(attempts=1), Outcome(RETRY, [ANSWER], reason="HTTP 503"), POLICY)
    assert decision.status == QUEUED and decision.attempts == 2
    assert 10.0 <= decision.retry_in <= 20.0  # the second failure: ceiling 20 s, halved jitter


def test_retry_fails_when_the_attempts_run_out():
    decision = decide(row(attempts=2), Outcome(RETRY, [ANSWER], reason="HTTP 503"), POLICY)
    assert decision.status == FAILED and decision.last_error == "gave up after 3 attempts: HTTP 503"


def test_an_operators_retry_gives_a_fresh_budget_while_the_count_grows():
    # Six attempts in all, but only one since the operator's retry.
    decision = decide(row(attempts=5, budget_used=0), Outcome(RETRY, [ANSWER], reason="x"), POLICY)
    assert decision.status == QUEUED and decision.attempts == 6


def test_retry_fails_past_max_age():
    decision = decide(row(age=3600.0), Outcome(RETRY, [ANSWER], reason="x"), POLICY)
    assert decision.status == FAILED


def test_deferred_costs_no_attempt_and_waits_for_a_provider():
    decision = decide(
        row(attempts=1), Outcome(DEFERRED, [], reason="no provider"), POLICY, wait_for=7.5
    )
    assert (decision.status, decision.attempts, decision.retry_in) == (QUEUED, 1, 7.5)
    assert decision.result is None  # the previous answers are kept (coalesce in finish)


def test_deferred_past_max_age_fails():
    decision = decide(row(age=4000.0), Outcome(DEFERRED, [], reason="no provider"), POLICY)
    assert decision.status == FAILED and "MAX_AGE" in decision.last_error


def test_an_unexpected_error_is_retried_not_failed():
    decision = decide(row(), crashed(RuntimeError("bad deploy")), POLICY)
    assert decision.status == QUEUED and decision.attempts == 1
    assert decision.last_error == "internal error: RuntimeError: bad deploy"


def test_a_malformed_row_fails():
    decision = decide(row(), poisoned(ValueError("no recipient")), POLICY)
    assert decision.status == FAILED and decision.last_error.startswith("malformed mail")


@pytest.mark.parametrize("skew", [timedelta(hours=1), timedelta(hours=-1)])
def test_the_clock_follows_the_database_not_this_host(skew):
    clock = DbClock()
    local = datetime.now(UTC)
    clock.sync(local - skew, local, local)  # the database is off from us by -skew
    assert abs((clock.now() - (datetime.now(UTC) - skew)).total_seconds()) < 1.0


def test_message_keeps_a_comma_in_a_display_name():
    message = Message(
        id="m1",
        from_address="a@example.com",
        to=['"Doe, John" <john@example.com>'],
        subject="Hi",
        text="x",
    )
    assert message.to == ['"Doe, John" <john@example.com>']
