"""Prometheus metrics, scraped as Prometheus would: the API's ``/metrics`` (its requests, the
queue read from the database) and a worker's own, values that move when mail is sent or fails,
who may read them, and the sum over gunicorn's processes."""

import socket
import threading

import pytest
import requests
from helpers import queue_mails, sample_mail, wait_for
from scrape import parse, value

from integration.receiver import SECRET, Receiver

pytestmark = pytest.mark.committed  # the scrape reads the queue on a connection of its own

TOKEN = "metrics-token-for-tests"


def scrape(client, **headers):
    """The API's metrics, through the test client."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def free_port():
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_in_background(run_worker, **overrides):
    """Start a worker on a thread; return it once it exists."""
    threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True).start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], 30, message="worker")


def scrape_worker(port, token=None):
    """A worker's metrics over HTTP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200
    return parse(response.text)


def test_api_metrics_count_requests_accepted_and_rejected_mail(client):
    before = scrape(client)
    assert client.post("/mail", json=sample_mail()).status_code == 202
    assert client.post("/mail/batch", json=[sample_mail()] * 3).status_code == 202
    assert client.post("/mail", json=sample_mail(to="nobody")).status_code == 400
    assert client.post("/mail", data="x", content_type="text/plain").status_code == 415
    client.get("/no/such/page")
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("mail_api_mails_accepted_total") == 4
    assert moved("mail_api_mails_rejected_total", reason="invalid") == 1
    assert moved("mail_api_mails_rejected_total", reason="unsupported_media_type") == 1
    assert moved("mail_api_requests_total", endpoint="/mail", method="POST", code="202") == 1
    assert moved("mail_api_requests_total", endpoint="/mail", method="POST", code="400") == 1
    assert moved("mail_api_requests_total", endpoint="unmatched", method="GET", code="404") == 1
    assert moved("mail_api_request_duration_seconds_count", endpoint="/mail", method="POST") == 3
    assert (
        value(
            after,
            "mail_api_request_duration_seconds_bucket",
            endpoint="/mail",
            method="POST",
            le="+Inf",
        )
        >= 3
    )
    # The queue as the database counts it: the mails just stored are waiting.
    assert value(after, "mail_queue_mails", status="queued") == 4
    assert value(after, "mail_queue_mails", status="sent") == 0
    assert value(after, "mail_database_up") == 1


def test_a_replayed_submission_is_answered_but_not_counted_again(client):
    before = scrape(client)
    key = {"Idempotency-Key": "metrics-replay-1"}
    first = client.post("/mail", json=sample_mail(), headers=key)
    again = client.post("/mail", json=sample_mail(), headers=key)
    after = scrape(client)
    assert (first.status_code, again.status_code) == (202, 202)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    accepted = "mail_api_mails_accepted_total"
    assert value(after, accepted) - value(before, accepted) == 1
    submitted = {"tenant": "default"}
    assert (
        value(after, "mail_submitted_total", **submitted)
        - value(before, "mail_submitted_total", **submitted)
        == 1
    )


def test_metrics_move_when_mail_is_sent_or_fails(client, run_worker, sandbox, settings):
    port = free_port()
    worker = worker_in_background(run_worker, WORKER_METRICS_PORT=port)
    wait_for(lambda: _answers(port), 10, message="the worker's metrics")
    queue_mails(settings["DATABASE_URL"], 3)
    wait_for(
        lambda: (
            value(
                scrape_worker(port), "mail_worker_sends_total", provider="mailgun", outcome="sent"
            )
            == 3
        ),
        15,
        message="three sends counted",
    )
    sandbox.configure("mailgun", status=503)  # mailgun down: each mail fails over to sendgrid
    queue_mails(settings["DATABASE_URL"], 2)
    wait_for(
        lambda: (
            value(
                scrape_worker(port), "mail_worker_sends_total", provider="sendgrid", outcome="sent"
            )
            == 2
        ),
        15,
        message="two sends through sendgrid",
    )
    sandbox.set_behaviour("mailgun", {"reject_to": "refused"})  # up, refusing a bad message
    queue_mails(
        settings["DATABASE_URL"],
        1,
        to_address=["refused@example.com"],
        recipients=["refused@example.com"],
    )
    worker.last_beat = 0.0  # fold the status ledger now
    samples = wait_for(
        lambda: _with(scrape_worker(port), "mail_worker_mails_total", status="failed"),
        15,
        message="a failed mail counted",
    )
    assert value(samples, "mail_worker_sends_total", provider="mailgun", outcome="transient") >= 2
    assert value(samples, "mail_worker_sends_total", provider="mailgun", outcome="rejected") == 1
    assert value(samples, "mail_worker_mails_total", status="sent") == 5
    assert value(samples, "mail_worker_provider_latency_seconds_count", provider="sendgrid") == 2
    assert value(samples, "mail_worker_claimed_mails_total") == 6
    assert value(samples, "mail_worker_in_flight") == 0
    assert value(samples, "mail_provider_weight", provider="mailgun") == 1
    assert value(samples, "mail_provider_breaker_state", provider="sendgrid", state="closed") == 1
    api = scrape(client)
    assert value(api, "mail_queue_mails", status="sent") == 5
    assert value(api, "mail_queue_mails", status="failed") == 1
    assert value(api, "mail_queue_mails", status="queued") == 0
    assert value(api, "mail_queue_oldest_due_age_seconds") == 0
    assert value(api, "mail_workers_alive") == 1
    assert value(api, "mail_provider_breaker_state", provider="mailgun", state="closed") == 1
    worker.stop()
    wait_for(lambda: not _answers(port), 10, message="the metrics server to stop")


def test_the_breaker_state_shows_an_open_circuit(client, run_worker, sandbox, settings):
    sandbox.configure("mailgun", status=503)
    queue_mails(settings["DATABASE_URL"], 6)  # five failures in a row open mailgun's circuit
    run_worker(CIRCUIT_COOLDOWN=60.0, WORKER_CONCURRENCY=1)
    samples = scrape(client)
    assert value(samples, "mail_provider_breaker_state", provider="mailgun", state="open") == 1
    assert value(samples, "mail_provider_breaker_state", provider="mailgun", state="closed") == 0
    assert value(samples, "mail_meltdown") == 0  # sendgrid still takes mail


def _answers(port):
    """Whether something serves on ``port``."""
    try:
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def _with(samples, name, **labels):
    """``samples`` if they have the sample, else None (for ``wait_for``)."""
    return samples if value(samples, name, **labels) else None


def test_client_webhooks_are_counted(run_worker, settings):
    receiver = Receiver()
    try:
        port = free_port()
        worker_in_background(
            run_worker, WORKER_METRICS_PORT=port, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET
        )
        wait_for(lambda: _answers(port), 10, message="the worker's metrics")
        queue_mails(settings["DATABASE_URL"], 2)
        wait_for(
            lambda: (
                value(
                    scrape_worker(port), "mail_worker_webhook_deliveries_total", outcome="delivered"
                )
                == 2
            ),
            15,
            message="two mail.sent webhooks",
        )
        receiver.failing_until = float("inf")  # the receiver is down: posts fail
        queue_mails(settings["DATABASE_URL"], 1)
        wait_for(
            lambda: (
                value(scrape_worker(port), "mail_worker_webhook_deliveries_total", outcome="failed")
                >= 1
            ),
            15,
            message="a failed webhook counted",
        )
    finally:
        receiver.stop()


# Who may read them ------------------------------------------------------------------------------


def test_metrics_follow_the_apis_rule_with_api_keys(app, client):
    app.config["API_KEYS"] = ("api-key",)
    refused = client.get("/metrics")
    assert (
        refused.status_code == 401 and refused.get_json()["errors"][0]["field"] == "Authorization"
    )
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer api-key"}).status_code == 200


def test_metrics_token_protects_metrics_on_its_own(app, client):
    app.config["METRICS_TOKEN"] = TOKEN
    assert client.get("/metrics").status_code == 401  # even from loopback
    wrong = client.get("/metrics", headers={"Authorization": "Bearer api-key"})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    app.config["API_KEYS"] = ("api-key",)  # an API key is good too
    assert client.get("/metrics", headers={"X-API-Key": "api-key"}).status_code == 200


def test_metrics_in_protected_mode_serve_local_clients_only(client):
    assert client.get("/metrics").status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert remote.status_code == 401
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status_code == 401


def test_worker_metrics_ask_for_the_token(run_worker):
    port = free_port()
    worker_in_background(run_worker, WORKER_METRICS_PORT=port, METRICS_TOKEN=TOKEN)
    wait_for(lambda: _answers(port), 10, message="the worker's metrics")
    refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert refused.status_code == 401 and refused.json()["errors"][0]["field"] == "Authorization"
    assert "mail_worker_in_flight" in {name for name, _ in scrape_worker(port, TOKEN)}


# gunicorn: several processes, one sum ----------------------------------------------------------


# The Grafana dashboard ---------------------------------------------------------------------------
