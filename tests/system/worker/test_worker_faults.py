"""A provider's open circuit, kept in the database, holds for a new worker process too."""

import pytest
from conftest import start_worker_process
from helpers import provider_state, queue_mails, statuses

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def test_open_circuit_lets_one_probe_per_cooldown_and_survives_restart(
    settings, sandbox, run_worker, app
):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", status=503)
    queue_mails(url, 20)
    # One send at a time, so that no request is already in flight when the circuit opens.
    run_worker(CIRCUIT_FAILURE_THRESHOLD=5, CIRCUIT_COOLDOWN=300, WORKER_CONCURRENCY=1)
    assert len(sandbox.requests("mailgun")) == 5  # the threshold, then Mailgun is skipped
    assert provider_state(url, "mailgun")["state"] == "open"
    assert statuses(url) == {"sent": 20}
    assert len(sandbox.messages("sendgrid")) == 20

    # A new worker process reads the open circuit from the database and skips Mailgun at once.
    queue_mails(url, 10)
    worker = start_worker_process(settings, "--burst", CIRCUIT_COOLDOWN=300)
    assert worker.wait(timeout=60) == 0
    worker.communicate()
    assert len(sandbox.requests("mailgun")) == 5
    assert statuses(url) == {"sent": 30}
