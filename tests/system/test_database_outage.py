"""PostgreSQL stopped and started under load: 503s, recovery by itself, nothing acknowledged lost.

Runs against a private embedded server (devkit/embedded_db.py), never the session's shared one.
"""

import os
import time

import pytest
from conftest import ROOT, start_worker_process, throwaway_postgres
from flask_migrate import upgrade
from helpers import Output, mail_rows, received_counts, wait_for

from app import create_app
from models import db

pytestmark = [pytest.mark.committed, pytest.mark.slow]

MAIL = {
    "from": "sender@example.com",
    "to": "rcpt@example.com",
    "subject": "Outage",
    "text": "Still here",
}


@pytest.fixture
def private_postgres():
    """A running throwaway server, deleted after the test."""
    server = throwaway_postgres()
    yield server
    server.destroy()


def post(client):
    """Post one mail; return (status code, id or None, seconds taken)."""
    started = time.monotonic()
    response = client.post("/mail", json=MAIL)
    body = response.get_json()
    assert body is not None, "every answer is JSON"
    return response.status_code, body.get("id"), time.monotonic() - started


def test_database_restart_under_load(private_postgres, settings, sandbox):
    url = private_postgres.url()
    config = {**settings, "DATABASE_URL": url, "DB_CONNECT_TIMEOUT": 1, "POLL_INTERVAL": 0.1}
    app = create_app(config)
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
    client = app.test_client()
    worker = start_worker_process(config)
    output = Output(worker)
    acknowledged = []
    try:
        acknowledged += post_accepted(client, 30)
        wait_for(
            lambda: _all_sent(url, acknowledged),
            timeout=60,
            message="the worker to be up and sending",
        )
        private_postgres.stop()
        outage = [post(client) for _ in range(5)]
        assert {code for code, _, _ in outage} == {503}
        assert max(seconds for _, _, seconds in outage) < 10  # bounded, not hanging
        # The server comes back only after the worker noticed it gone and began to back off.
        wait_for(
            lambda: "database unavailable" in output,
            timeout=60,
            message="the worker to notice the outage",
        )
        private_postgres.start()
        # The API recovers by itself: the pool drops the dead connections and reconnects.
        code, mail_id, _ = wait_for(lambda: _accepted(client), timeout=60, message="API back")
        acknowledged.append(mail_id)
        acknowledged += post_accepted(client, 30)
        wait_for(
            lambda: _all_sent(url, acknowledged),
            timeout=120,
            message="the worker to send every acknowledged mail",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        with app.app_context():
            db.engine.dispose()
    assert worker.returncode == 0, output.text()
    counts = received_counts(sandbox)
    assert set(acknowledged) <= set(counts)
    assert max(counts[mail_id] for mail_id in acknowledged) == 1


def post_accepted(client, count):
    """Post ``count`` mails, each of which must be accepted; their ids."""
    ids = []
    for _ in range(count):
        code, mail_id, _ = post(client)
        assert code == 202
        ids.append(mail_id)
    return ids


def _accepted(client):
    """The result of a post if it was accepted, else None."""
    result = post(client)
    return result if result[0] == 202 else None


def _all_sent(url, ids):
    """Whether every mail in ``ids`` is stored and sent."""
    rows = mail_rows(url)
    return all(mail_id in rows and rows[mail_id]["status"] == "sent" for mail_id in ids)


def test_first_post_after_a_restart_is_accepted(private_postgres, settings):
    # The pool holds connections that died with the old server; the INSERT that finds one dead
    # is retried on a fresh connection instead of failing the client.
    config = {**settings, "DATABASE_URL": private_postgres.url(), "DB_CONNECT_TIMEOUT": 1}
    app = create_app(config)
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
    client = app.test_client()
    try:
        assert post(client)[0] == 202
        private_postgres.stop()
        private_postgres.start()
        code, mail_id, _ = post(client)
        assert code == 202
        assert mail_id in mail_rows(private_postgres.url())
    finally:
        with app.app_context():
            db.engine.dispose()
