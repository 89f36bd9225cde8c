"""Events out: signed client webhooks from the outbox, verified with the Standard
Webhooks reference library, that survive a failing receiver and never hold up sending."""

import threading
import time

import pytest
from helpers import queue_mails, wait_for
from signed import mailgun_body
from standardwebhooks import Webhook

from app import create_app
from integration.receiver import SECRET, Receiver

pytestmark = pytest.mark.committed


@pytest.fixture
def receiver():
    """A receiver for the test, shut down after it."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, receiver):
    """The test settings with client webhooks on, to ``receiver``."""
    return {**settings, "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}


def in_background(run_worker, **overrides):
    """Start a worker on a thread; return it once it exists."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def test_webhooks_verify_with_the_standard_webhooks_library(client, mail, run_worker, receiver):
    mail_id = client.post(
        "/mail", json={**mail, "tags": ["welcome"], "metadata": {"user": "42"}}
    ).get_json()["id"]
    in_background(run_worker)
    wait_for(lambda: receiver.received, timeout=10, message="mail.sent")
    client.post(
        "/webhooks/mailgun", json=mailgun_body("delivered", "rcpt@example.com", mail_id=mail_id)
    )
    wait_for(lambda: len(receiver.received) == 2, timeout=10, message="mail.delivered")
    verified = [Webhook(SECRET).verify(body, headers) for headers, body in receiver.received]
    assert [payload["type"] for payload in verified] == ["mail.sent", "mail.delivered"]
    data = verified[1]["data"]
    assert data == {
        "mail_id": mail_id,
        "status": "delivered",
        "recipient": "rcpt@example.com",
        "reason": None,
        "metadata": {"user": "42"},
        "tags": ["welcome"],
    }
    headers = receiver.received[0][0]
    assert headers["Webhook-Id"].startswith("msg_")
    assert abs(int(headers["Webhook-Timestamp"]) - time.time()) < 30
    with pytest.raises(Exception, match="signature"):  # a body changed on the way fails
        Webhook(SECRET).verify(receiver.received[0][1].replace(b"sent", b"sant"), headers)


def test_a_receiver_that_fails_for_a_while_gets_every_webhook(
    client, run_worker, receiver, settings, sql
):
    receiver.failing_until = float("inf")
    queue_mails(settings["DATABASE_URL"], 6)
    in_background(run_worker)
    # The receiver comes back once its breaker has opened and a probe after the cool-down has
    # failed too (the cool-down doubled), however long that took.
    wait_for(
        lambda: (
            sql("SELECT cooldown FROM provider_state WHERE name = 'webhook' AND state = 'open'")
            == [{"cooldown": 2 * settings["CIRCUIT_COOLDOWN"]}]
        ),
        timeout=30,
        message="the receiver's breaker to open and a probe to fail",
    )
    receiver.failing_until = 0.0
    wait_for(lambda: len(receiver.received) == 6, timeout=30, message="every mail.sent")
    assert receiver.types() == ["mail.sent"] * 6
    # Attempts are recorded after a batch's posts: wait for the last batch's record.
    wait_for(
        lambda: (
            sql("SELECT count(*) AS n FROM webhook_outbox WHERE status = 'delivered'")[0]["n"] == 6
        ),
        timeout=10,
        message="every webhook recorded as delivered",
    )
    attempts = {
        row["status_code"]: row["n"]
        for row in sql(
            "SELECT status_code, count(*) AS n FROM webhook_attempt GROUP BY status_code"
        )
    }
    assert attempts[204] == 6
    assert sql("SELECT status, count(*) AS n FROM webhook_outbox GROUP BY status") == [
        {"status": "delivered", "n": 6}
    ]
    # The receiver was paused like a provider: its breaker opened after 5 failures in a row and
    # only single probes went out until one succeeded, not a retry of every webhook meanwhile.
    assert 5 <= attempts[503] <= 8
    assert sql("SELECT state FROM provider_state WHERE name = 'webhook'") == [{"state": "closed"}]


def test_a_slow_receiver_never_holds_up_sending(client, run_worker, receiver, settings, sql):
    # The receiver answers nothing until every mail is sent: a worker that waited for an
    # answer (for up to WEBHOOK_TIMEOUT, twice the wait below) would not get there.
    receiver.answering.clear()
    ids = queue_mails(settings["DATABASE_URL"], 40)
    try:
        in_background(run_worker, WEBHOOK_TIMEOUT=60.0)
        wait_for(
            lambda: (
                receiver.calls >= 1
                and sql("SELECT count(*) AS n FROM email WHERE status = 'sent'")[0]["n"] == 40
            ),
            timeout=30,
            message="every mail sent while a webhook waits for its answer",
        )
        assert len(ids) == 40 and receiver.received == []
    finally:
        receiver.answering.set()


def test_webhooks_past_their_max_age_are_given_up(client, mail, run_worker, receiver, sql):
    receiver.failing_until = time.monotonic() + 3600
    client.post("/mail", json=mail)
    in_background(run_worker, WEBHOOK_MAX_AGE=3.0, CIRCUIT_FAILURE_THRESHOLD=100)
    wait_for(
        lambda: sql("SELECT status FROM webhook_outbox") == [{"status": "failed"}],
        timeout=30,
        message="the webhook given up",
    )
    assert sql("SELECT count(*) AS n FROM webhook_attempt")[0]["n"] >= 2


def test_cancelled_failed_and_suppressed_mail_raise_their_webhooks(
    client, mail, run_worker, receiver, sandbox, sql
):
    later = client.post(
        "/mail",
        json={
            **mail,
            "send_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        },
    ).get_json()["id"]
    assert client.post(f"/mail/{later}/cancel").status_code == 200
    client.post("/suppressions", json={"address": "gone@example.com"})
    client.post("/mail", json={**mail, "to": "gone@example.com"})
    sandbox.configure("mailgun", reject_to="refused@")
    client.post("/mail", json={**mail, "to": "refused@example.com"})
    in_background(run_worker)
    wait_for(lambda: len(receiver.received) == 3, timeout=10, message="three webhooks")
    assert sorted(receiver.types()) == ["mail.cancelled", "mail.failed", "mail.suppressed"]


def test_webhook_events_chooses_what_the_client_gets(
    client, mail, run_worker, receiver, settings, sql
):
    only = create_app({**settings, "WEBHOOK_EVENTS": "mail.delivered"}).test_client()
    mail_id = only.post("/mail", json=mail).get_json()["id"]
    run_worker(WEBHOOK_EVENTS="mail.delivered")
    assert sql("SELECT count(*) AS n FROM webhook_outbox")[0]["n"] == 0  # no mail.sent
    only.post(
        "/webhooks/mailgun", json=mailgun_body("delivered", "rcpt@example.com", mail_id=mail_id)
    )
    assert [row["event_type"] for row in sql("SELECT event_type FROM webhook_outbox")] == [
        "mail.delivered"
    ]
