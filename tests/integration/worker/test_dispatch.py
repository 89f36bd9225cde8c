"""Issue 12: weighted sending and shared rate caps across providers and workers."""

import bisect
from datetime import datetime

import pytest
from conftest import start_worker_process
from helpers import circuit_mode, mail_rows, provider_state, queue_mails, statuses, wait_for

from mailer.worker import ratecap
from mailer.worker.circuit import PROBE

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def arrival_times(sandbox, provider):
    """When the sandbox received each of ``provider``'s mails, in seconds, sorted."""
    return sorted(
        datetime.fromisoformat(m["received_at"]).timestamp() for m in sandbox.messages(provider)
    )


def busiest_second(times):
    """The most mails in any one-second window (sliding)."""
    return max(
        (bisect.bisect_left(times, start + 1.0) - index for index, start in enumerate(times)),
        default=0,
    )


def test_caps_hold_across_two_workers_and_the_total_nears_their_sum(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    caps = {"mailgun": 50, "sendgrid": 20}
    count = 490  # about seven seconds at the 70/s the caps allow together
    queue_mails(url, count)
    sandbox.configure("mailgun", latency_ms=10)
    sandbox.configure("sendgrid", latency_ms=10)
    limits = ",".join(f"{name}:{rate}" for name, rate in caps.items())
    workers = [
        start_worker_process(settings, PROVIDER_RATE_LIMITS=limits, POLL_INTERVAL=0.2)
        for _ in range(2)
    ]
    try:
        wait_for(
            lambda: statuses(url).get("sent", 0) == count,
            timeout=60,
            message="every mail to be sent",
        )
    finally:
        for worker in workers:
            worker.terminate()
            worker.communicate(timeout=30)
    for name, cap in caps.items():
        busiest = busiest_second(arrival_times(sandbox, name))
        assert busiest <= cap + ratecap.margin(cap), (name, busiest)
    times = sorted(arrival_times(sandbox, "mailgun") + arrival_times(sandbox, "sendgrid"))
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.8 * sum(caps.values()), rate
    assert all(row["attempts"] == 1 for row in mail_rows(url).values())


def test_a_provider_at_its_cap_costs_no_mail_and_no_attempt(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    queue_mails(url, 12)
    run_worker(PROVIDERS="mailgun", PROVIDER_RATE_LIMITS="mailgun:6")  # two seconds' worth
    rows = mail_rows(url).values()
    assert [row["status"] for row in rows] == ["sent"] * 12
    assert {row["attempts"] for row in rows} == {1}
    assert busiest_second(arrival_times(sandbox, "mailgun")) <= 6 + ratecap.margin(6)


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
