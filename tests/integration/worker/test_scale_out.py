"""The listener behind a pooler: ``LISTEN_DATABASE_URL`` gives the worker's LISTEN a connection of
its own (two APIs and three workers as processes are in tests/system/test_scale_out.py)."""

import socket
import threading
import time

import pytest
from helpers import listening_and_quiet, mail_rows, queue_mails, wait_for
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def run_in_background(run_worker, **overrides):
    """A worker (not in burst mode) on a thread of this process; the thread."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True)
    thread.start()
    return thread


def test_the_listener_connects_to_listen_database_url(settings, sandbox, run_worker, app, caplog):
    # Behind PgBouncer in transaction mode LISTEN hears nothing, so the listener may connect
    # elsewhere: here first to a port where nothing listens, then to the database itself. With
    # POLL_INTERVAL at 60 s, only a NOTIFY on the listener's connection sends mail within 30 s
    # (the worker's next poll is a minute after its last claim, before it went quiet).
    url = settings["DATABASE_URL"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = make_url(url).set(port=probe.getsockname()[1])
    nowhere = nowhere.render_as_string(hide_password=False)
    run_in_background(run_worker, LISTEN_DATABASE_URL=nowhere, POLL_INTERVAL=60)
    wait_for(
        lambda: "LISTEN mail_queued lost" in caplog.text,
        10,
        message="the listener to fail on LISTEN_DATABASE_URL",
    )
    run_worker.workers[0].stop()

    run_in_background(run_worker, LISTEN_DATABASE_URL=url, POLL_INTERVAL=60)
    wait_for(lambda: listening_and_quiet(url), 30, message="the worker to listen")
    started = time.monotonic()
    [mail_id] = queue_mails(url, 1)
    wait_for(lambda: mail_rows(url)[mail_id]["status"] == "sent", 30, message="the mail")
    assert time.monotonic() - started < 30
