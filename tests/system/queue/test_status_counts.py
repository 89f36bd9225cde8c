"""The workers' heartbeats, from worker processes: beats until SIGTERM, and a killed one stops."""

import signal

import pytest
from conftest import start_worker_process
from helpers import wait_for
from sqlalchemy import create_engine

from mailer.queue import heartbeats

pytestmark = pytest.mark.committed  # other connections and a worker read the rows


def test_a_worker_process_beats_until_sigterm_and_a_killed_one_stops_beating(app, settings):
    engine = create_engine(settings["DATABASE_URL"])

    def rows():
        with engine.connect() as conn:
            return {row["pid"]: row for row in heartbeats.alive(conn, within_seconds=600)}

    stopped, killed = (start_worker_process(settings) for _ in range(2))
    try:
        wait_for(lambda: {stopped.pid, killed.pid} <= set(rows()), 60, message="two heartbeats")
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(60) == 0
        killed.send_signal(signal.SIGKILL)
        killed.wait(20)
        assert set(rows()) == {killed.pid}  # gone on a clean stop; a killed one's row stays
        # ... and stops moving: older than a live worker's ever gets between two beats.
        wait_for(
            lambda: rows()[killed.pid]["age"] > heartbeats.INTERVAL + 2,
            30,
            message="the killed worker's heartbeat to age",
        )
    finally:
        for process in (stopped, killed):
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        engine.dispose()
