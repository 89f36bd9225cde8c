"""Issue 12: weighted sending and shared rate caps across providers and workers."""

import pytest
from helpers import (
    busiest_second,
    circuit_mode,
    mail_rows,
    provider_state,
    queue_mails,
    rate_takes,
    wait_for,
)

from mailer.worker import ratecap
from mailer.worker.circuit import PROBE

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def test_a_provider_at_its_cap_costs_no_mail_and_no_attempt(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    queue_mails(url, 12)
    with rate_takes(url) as takes:
        run_worker(PROVIDERS="mailgun", PROVIDER_RATE_LIMITS="mailgun:6")  # two seconds' worth
        drawn = takes()["mailgun"]
    rows = mail_rows(url).values()
    assert [row["status"] for row in rows] == ["sent"] * 12
    assert {row["attempts"] for row in rows} == {1}
    # However slowly the worker ran: no second drew more than the cap and a full bucket, and
    # each mail sent had drawn its token.
    assert busiest_second(drawn) <= 6 + ratecap.burst(6), drawn
    assert sum(tokens for _, tokens in drawn) >= len(sandbox.messages("mailgun")) == 12


def split(sandbox):
    """How many mails each provider received."""
    return {name: len(sandbox.messages(name)) for name in ("mailgun", "sendgrid")}


def test_weighted_sending_follows_the_weights_fails_over_and_returns(
    settings, sandbox, run_worker, app
):
    url = settings["DATABASE_URL"]
    weighted = {"PROVIDER_STRATEGY": "weighted", "PROVIDER_WEIGHTS": "mailgun:3,sendgrid:1"}
    queue_mails(url, 2000)
    run_worker(**weighted)
    counts = split(sandbox)
    assert abs(counts["mailgun"] / 2000 - 0.75) <= 0.03, counts
    # Mailgun down: everything goes to SendGrid (its breaker opens, failed sends fail over).
    sandbox.reset()
    sandbox.configure("mailgun", status=503)
    queue_mails(url, 200)
    run_worker(**weighted, CIRCUIT_COOLDOWN=0.5)
    assert len(sandbox.messages("sendgrid")) == 200 and not sandbox.messages("mailgun")
    # Mailgun back: after its probe succeeds (one mail), the weights return.
    sandbox.reset()
    wait_for(
        lambda: circuit_mode(url, "mailgun") == PROBE,
        timeout=5,
        message="Mailgun's cool-down to end",
    )
    queue_mails(url, 40)
    run_worker(**weighted, CIRCUIT_COOLDOWN=0.5)
    assert provider_state(url, "mailgun")["state"] == "closed"
    sandbox.reset()
    queue_mails(url, 400)
    run_worker(**weighted)
    counts = split(sandbox)
    assert sum(counts.values()) == 400 and abs(counts["mailgun"] / 400 - 0.75) <= 0.05, counts
