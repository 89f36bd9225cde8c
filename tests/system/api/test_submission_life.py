"""Issue 9 with a worker process: scheduled mail is held until its time, and a cancel that races
a running worker's claim never ends both cancelled and sent."""

from datetime import datetime

import pytest
from conftest import start_worker_process
from helpers import arrival_times, later, listening_and_quiet, received_counts, wait_for

pytestmark = pytest.mark.committed


def test_scheduled_mail_is_held_then_sent_on_time(client, mail, sandbox, settings):
    # POLL_INTERVAL 30 s: only the wait for the next due mail can send it on time. The mail
    # comes once the worker waits, idle after its start-up: the new mail wakes it, and the hold
    # until send_at is then the worker's own, however long its start-up took.
    worker = start_worker_process(settings, POLL_INTERVAL=30)
    try:
        wait_for(
            lambda: listening_and_quiet(settings["DATABASE_URL"]),
            timeout=60,
            message="the worker to listen and go idle",
        )
        response = client.post("/mail", json={**mail, "send_at": later(1.5)})
        body = response.get_json()
        assert response.status_code == 202 and body["status"] == "scheduled"
        wait_for(
            lambda: client.get(f"/mail/{body['id']}").get_json()["status"] == "sent",
            timeout=30,
            message="the scheduled mail to be sent",
        )
        send_at = datetime.fromisoformat(body["send_at"])
        sent_at = datetime.fromisoformat(client.get(f"/mail/{body['id']}").get_json()["sent_at"])
        assert sent_at >= send_at
        # Nothing reached a provider before send_at (the sandbox stamps to the millisecond).
        [arrived] = arrival_times(sandbox, "mailgun") + arrival_times(sandbox, "sendgrid")
        assert arrived >= send_at.timestamp() - 0.001
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_a_cancel_that_races_a_claim_never_ends_both(client, mail, sandbox, settings):
    # A running worker claims while the client cancels, mail after mail: each ends either
    # cancelled and never sent, or sent and not cancelled.
    worker = start_worker_process(settings, POLL_INTERVAL=0.05)
    results = []
    try:
        for _ in range(60):
            mail_id = client.post("/mail", json=mail).get_json()["id"]
            results.append((mail_id, client.post(f"/mail/{mail_id}/cancel").status_code))
        wait_for(
            lambda: all(
                client.get(f"/mail/{i}").get_json()["status"] in ("sent", "cancelled")
                for i, _ in results
            ),
            timeout=60,
            message="every mail to settle",
        )
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
    received = received_counts(sandbox)
    for mail_id, code in results:
        status = client.get(f"/mail/{mail_id}").get_json()["status"]
        if code == 200:
            assert status == "cancelled" and received[mail_id] == 0
        else:
            assert code == 409 and status == "sent" and received[mail_id] == 1
    assert {code for _, code in results} <= {200, 409}
    print("cancel race:", {code: sum(c == code for _, c in results) for code in (200, 409)})
