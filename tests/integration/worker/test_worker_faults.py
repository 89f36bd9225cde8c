"""Provider faults: circuit breakers, rate limits, timeouts, meltdowns, retries, poison."""

import logging
import threading

import pytest
from helpers import (
    arrival_times,
    attempts_of,
    circuit_mode,
    is_due,
    mail_rows,
    provider_state,
    queue_mails,
    received_counts,
    statuses,
    wait_for,
)

from mailer.worker.circuit import PROBE, USE

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def in_background(run_worker, **overrides):
    """Run a worker (not in burst mode) on a thread; returns (worker holder, thread)."""
    holder = {}

    def target():
        holder["worker"] = run_worker(burst=False, **overrides)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return holder, thread


def test_probe_after_cooldown_and_failback(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", status=503)
    # Three mails a run: the breaker opens on the second, and the third (sent well within the
    # 2 s cool-down, however busy the machine) must skip Mailgun.
    faults = {"CIRCUIT_FAILURE_THRESHOLD": 2, "CIRCUIT_COOLDOWN": 2, "WORKER_CONCURRENCY": 1}
    queue_mails(url, 3)
    run_worker(**faults)
    assert len(sandbox.requests("mailgun")) == 2
    # Still failing: after the cool-down exactly one probe goes out, and the cool-down doubles.
    wait_for(
        lambda: circuit_mode(url, "mailgun") == PROBE,
        timeout=10,
        message="Mailgun's cool-down to end",
    )
    queue_mails(url, 3)
    run_worker(**faults)
    assert len(sandbox.requests("mailgun")) == 3
    state = provider_state(url, "mailgun")
    assert state["state"] == "open" and state["cooldown"] == 4.0
    # Mailgun recovers: the next probe succeeds and traffic returns to it.
    sandbox.configure("mailgun", status=None)
    wait_for(
        lambda: circuit_mode(url, "mailgun") == PROBE,
        timeout=15,
        message="Mailgun's doubled cool-down to end",
    )
    queue_mails(url, 10)
    run_worker(**faults)
    assert provider_state(url, "mailgun")["state"] == "closed"
    assert len(sandbox.messages("mailgun")) == 10
    assert statuses(url) == {"sent": 16}


def test_rate_limit_pauses_provider_without_opening_circuit(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", status=429, retry_after=4, count=1)
    queue_mails(url, 5)
    run_worker(WORKER_CONCURRENCY=1)
    # The first mail met the 429 and went to SendGrid; so did the rest during the pause.
    assert len(sandbox.requests("mailgun")) == 1
    assert len(sandbox.messages("sendgrid")) == 5
    state = provider_state(url, "mailgun")
    assert state["state"] == "closed" and state["consecutive_failures"] == 0
    assert state["paused_until"] is not None
    wait_for(
        lambda: circuit_mode(url, "mailgun") == USE, timeout=10, message="Mailgun's pause to end"
    )
    queue_mails(url, 3)
    run_worker(WORKER_CONCURRENCY=1)
    assert len(sandbox.messages("mailgun")) == 3  # the pause is over


def test_rate_limit_on_every_provider_waits_without_spending_attempts(
    settings, sandbox, run_worker, app
):
    url = settings["DATABASE_URL"]
    for provider in ("mailgun", "sendgrid"):
        sandbox.configure(provider, status=429, retry_after=3, count=1)
    [mail_id] = queue_mails(url, 1)
    run_worker(WORKER_CONCURRENCY=1)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "queued" and row["attempts"] == 0
    wait_for(
        lambda: all(circuit_mode(url, name) == USE for name in ("mailgun", "sendgrid")),
        timeout=10,
        message="both pauses to end",
    )
    run_worker(WORKER_CONCURRENCY=1)
    assert mail_rows(url)[mail_id]["status"] == "sent"


def test_hanging_provider_times_out_and_fails_over(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", hang=3)
    [mail_id] = queue_mails(url, 1)
    run_worker(PROVIDER_TIMEOUT=1)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "sent" and row["provider"] == "sendgrid"
    first = row["result"][0]
    assert first["provider"] == "mailgun" and first["outcome"] == "unknown"
    assert "1s" in first["error"]
    # Why a timeout is an unknown outcome: the hung provider may still take the mail, so the
    # failover can deliver it twice (the documented at-least-once case).
    wait_for(lambda: sandbox.messages("mailgun"), timeout=10, message="the hung request")
    assert received_counts(sandbox)[mail_id] == 2
    # The worker did not wait out the hang: SendGrid had the mail before Mailgun answered.
    [hung], [failover] = arrival_times(sandbox, "mailgun"), arrival_times(sandbox, "sendgrid")
    assert failover < hung


def test_connection_cut_after_sending_is_unknown_and_fails_over(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", cut=True)
    [mail_id] = queue_mails(url, 1)
    run_worker()
    row = mail_rows(url)[mail_id]
    assert row["status"] == "sent" and row["provider"] == "sendgrid"
    first = row["result"][0]
    assert first["provider"] == "mailgun" and first["outcome"] == "unknown"
    # Mailgun took the mail before the connection was cut: the documented duplicate.
    assert received_counts(sandbox)[mail_id] == 2


def test_connection_refused_fails_over(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    [mail_id] = queue_mails(url, 1)
    run_worker(MAILGUN_BASE_URL="http://127.0.0.1:9")
    row = mail_rows(url)[mail_id]
    assert row["status"] == "sent" and row["provider"] == "sendgrid"
    assert row["result"][0]["outcome"] == "transient"


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_fails_over(settings, sandbox, run_worker, app, status):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", status=status)
    [mail_id] = queue_mails(url, 1)
    run_worker()
    row = mail_rows(url)[mail_id]
    assert row["status"] == "sent" and [a["status_code"] for a in row["result"]] == [status, 202]


def test_transient_failures_retry_with_backoff_then_fail(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    for provider in ("mailgun", "sendgrid"):
        sandbox.configure(provider, status=502)
    [mail_id] = queue_mails(url, 1)
    # A backoff of 1-2 s: each burst run ends before its retry falls due, however busy the machine.
    retries = {"CIRCUIT_FAILURE_THRESHOLD": 100, "MAX_ATTEMPTS": 3, "RETRY_BASE": 2, "RETRY_CAP": 2}
    run_worker(**retries)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "queued" and row["attempts"] == 1
    assert row["next_attempt_at"] > row["updated_at"]  # backoff: not due at once
    for _ in range(2):
        wait_for(lambda: is_due(url, mail_id), timeout=10, message="the retry to fall due")
        run_worker(**retries)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "failed" and row["attempts"] == 3
    assert "502" in row["last_error"] or "gave up" in row["last_error"]
    attempts = attempts_of(url)
    assert [a["number"] for a in attempts] == [1, 1, 2, 2, 3, 3]
    assert {a["provider"] for a in attempts} == {"mailgun", "sendgrid"}
    assert all(a["status_code"] == 502 and a["duration_ms"] is not None for a in attempts)


def test_meltdown_keeps_mail_queued_and_resumes(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    for provider in ("mailgun", "sendgrid"):
        sandbox.configure(provider, status=503)
    ids = queue_mails(url, 40)
    overrides = {
        "CIRCUIT_FAILURE_THRESHOLD": 3,
        "CIRCUIT_COOLDOWN": 0.5,
        "CIRCUIT_COOLDOWN_CAP": 1.0,
        "MAX_ATTEMPTS": 3,
        "RETRY_BASE": 0.1,
        "RETRY_CAP": 0.2,
        "WORKER_CONCURRENCY": 4,
    }
    holder, thread = in_background(run_worker, **overrides)
    # Both providers stay down while each fails MAX_ATTEMPTS probes and more: longer than the
    # retries of any mail would last, counted in the breakers' own steps (each failed probe
    # opens the breaker anew, until a later time) rather than in seconds.
    opened = {"mailgun": set(), "sendgrid": set()}

    def probed_enough():
        for name, until in opened.items():
            state = provider_state(url, name)
            if state and state["state"] == "open":
                until.add(state["open_until"])
        return all(len(until) > overrides["MAX_ATTEMPTS"] for until in opened.values())

    wait_for(probed_enough, timeout=60, message="both providers to fail probe after probe")
    assert statuses(url).get("failed", 0) == 0
    outage_requests = len(sandbox.requests())
    assert outage_requests < 40, "workers kept calling providers during the meltdown"
    [worker] = run_worker.workers
    assert worker.meltdown
    for provider in ("mailgun", "sendgrid"):
        sandbox.configure(provider, status=None)
    wait_for(lambda: statuses(url) == {"sent": 40}, timeout=30, message="all mail sent")
    # The worker resumed by itself, sent every mail once, and still stops when asked.
    assert not worker.meltdown
    counts = received_counts(sandbox)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the worker did not stop"
    assert holder["worker"] is worker and worker.sent_count == 40


def test_poison_rows_and_strange_answers_fail_one_mail_only(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    [broken] = queue_mails(url, 1, to_address="")
    healthy = queue_mails(url, 3)
    run_worker()
    rows = mail_rows(url)
    assert rows[broken]["status"] == "failed" and "malformed" in rows[broken]["last_error"]
    assert all(rows[mail_id]["status"] == "sent" for mail_id in healthy)


def test_html_200_from_provider_is_a_misconfiguration_and_fails_over(
    settings, sandbox, run_worker, app
):
    # A 200 without a message id (a proxy page) proves nothing was sent: fail over, and do
    # not count it as a healthy answer from Mailgun.
    url = settings["DATABASE_URL"]
    sandbox.configure(
        "mailgun",
        status=200,
        body="<html>welcome to the proxy</html>",
        content_type="text/html",
        count=1,
    )
    [odd] = queue_mails(url, 1)
    run_worker()
    row = mail_rows(url)[odd]
    assert row["status"] == "sent" and row["provider"] == "sendgrid"
    first = row["result"][0]
    assert first["outcome"] == "misconfigured" and "without a message id" in first["error"]
    assert first["response"] == "<html>welcome to the proxy</html>"
    assert provider_state(url, "mailgun")["consecutive_failures"] == 1


def test_wrong_mailgun_base_url_is_misconfigured_not_sent(settings, sandbox, run_worker, app):
    # Mailgun's API root answers 200 "Mailgun Magnificent API" to anything: a wrong base URL.
    url = settings["DATABASE_URL"]
    sandbox.configure(
        "mailgun", status=200, body='"Mailgun Magnificent API"', content_type="application/json"
    )
    [mail_id] = queue_mails(url, 1)
    run_worker(PROVIDERS="mailgun", MAX_ATTEMPTS=1)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "failed" and row["provider_message_id"] is None
    assert "MAILGUN_BASE_URL" in row["last_error"]


def test_html_502_page_and_huge_body_fail_over(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    sandbox.configure(
        "mailgun",
        status=502,
        body="<html>" + "x" * 3_000_000 + "</html>",
        content_type="text/html",
        count=1,
    )
    sandbox.configure(
        "sendgrid",
        status=500,
        body="<html>502 Bad Gateway</html>",
        content_type="text/html",
        count=1,
    )
    [mail_id] = queue_mails(url, 1)
    run_worker(MAX_ATTEMPTS=5, RETRY_BASE=2.0, RETRY_CAP=2.0)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "queued" and row["attempts"] == 1
    answers = row["result"]
    assert len(answers[0]["response"]) <= 2000  # a huge answer is cut, not stored whole
    assert answers[1]["response"] == "<html>502 Bad Gateway</html>"
    wait_for(lambda: is_due(url, mail_id), timeout=10, message="the retry to fall due")
    run_worker()
    assert mail_rows(url)[mail_id]["status"] == "sent"


def test_failovers_and_permanent_failures_are_logged_with_the_mail_id(
    settings, sandbox, run_worker, app, caplog
):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", status=503)
    sandbox.configure("sendgrid", reject_to="bad")
    [moved] = queue_mails(url, 1)
    [bad] = queue_mails(url, 1, to_address=["bad@example.com"])
    with caplog.at_level(logging.INFO, logger="mail_service"):
        run_worker()
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert any(moved in line and "trying the next provider" in line for line in lines), lines
    assert any(bad in line and "failed for good" in line for line in lines), lines
