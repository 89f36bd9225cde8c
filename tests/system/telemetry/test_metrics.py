"""Prometheus metrics under gunicorn: the sum over its processes, and the metrics directory of a
killed master removed."""

import os
import subprocess
import sys
import tempfile
import threading

import pytest
import requests
from helpers import sample_mail, wait_for
from scrape import parse, value

from system.gunicorn_server import Gunicorn, gunicorn_env

pytestmark = pytest.mark.committed  # the scrape reads the queue on a connection of its own


@pytest.fixture
def gunicorn_server(tmp_path, database_url):
    """gunicorn with three processes; stopped at the end."""
    env = gunicorn_env(tmp_path, database_url, WEB_CONCURRENCY="3", PROMETHEUS_MULTIPROC_DIR=None)
    server = Gunicorn(env)
    yield server
    server.stop()


def test_gunicorn_sums_the_counts_of_every_process(app, gunicorn_server):
    base = f"http://127.0.0.1:{gunicorn_server.port()}"
    wait_for(lambda: _ready(base), 60, message="gunicorn's processes to serve")
    directory = wait_for(lambda: _metrics_dir(gunicorn_server.output), 5, message="the dir")
    posted = 0
    # Rounds of six new connections at once, until two processes or more have served some
    # (a process still loading the app takes none): each process counts in files of its own.
    for _ in range(20):
        posted += post_concurrently(base + "/mail", connections=6, each=5)
        if len(_pids(directory)) >= 2:
            break
    assert len(_pids(directory)) >= 2, "the requests were served by more than one process"
    samples = parse(requests.get(base + "/metrics", timeout=10).text)
    assert value(samples, "mail_api_mails_accepted_total") == posted
    assert (
        value(samples, "mail_api_requests_total", endpoint="/mail", method="POST", code="202")
        == posted
    )
    assert value(samples, "mail_queue_mails", status="queued") == posted
    gunicorn_server.stop()
    assert not os.path.exists(directory)  # the directory it made is removed on exit


def post_concurrently(url, connections, each):
    """POST ``each`` mails on each of ``connections`` new connections at once; how many."""
    failures = []

    def post():
        with requests.Session() as session:
            for _ in range(each):
                status = session.post(url, json=sample_mail(), timeout=10).status_code
                if status != 202:
                    failures.append(status)

    threads = [threading.Thread(target=post) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    return connections * each


def _pids(directory):
    """The processes that have written metrics in ``directory``."""
    return {name.rsplit("_", 1)[1] for name in os.listdir(directory) if name.endswith(".db")}


def _ready(base):
    """Whether gunicorn answers ``/readyz`` with 200 (its processes may still be booting)."""
    try:
        return requests.get(base + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _metrics_dir(output):
    """The metrics directory gunicorn's master announced, or None."""
    for line in output.splitlines():
        if "metrics of the worker processes in " in line:
            return line.rsplit(" in ", 1)[1].strip()
    return None


def test_gunicorn_removes_the_metrics_dir_of_a_killed_master(tmp_path, database_url):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid names no running process now
    orphan = tempfile.mkdtemp(prefix=f"mail-service-metrics-{finished.pid}-")
    open(os.path.join(orphan, "counter_1.db"), "wb").close()
    server = Gunicorn(gunicorn_env(tmp_path, database_url, PROMETHEUS_MULTIPROC_DIR=None))
    try:
        wait_for(lambda: _metrics_dir(server.output), 30, message="gunicorn's metrics dir")
        assert not os.path.exists(orphan)
    finally:
        server.stop()
