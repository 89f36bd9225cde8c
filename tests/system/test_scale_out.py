"""Scaling out: two API instances (gunicorn) and three workers on one database, with the sandbox.

Clients post through both APIs at once; mid-run one API instance (its whole process group) and
one worker are SIGKILLed, and the clients go on posting to the surviving API. Every mail that
was acknowledged (a 202 and its id) must end ``sent``, and the sandbox must have received it
exactly once. A request that failed because its API died is not acknowledged and may or may
not have been stored; whatever was stored is held to the same rule.

The one exception is the one the system documents (docs/index.md, "Delivery guarantees"): the
mails the killed worker held at the moment of the kill. A provider may have taken one of them
before the worker could record it, and the lease reaper then returns it to the queue, so it is
sent at least once and at most twice. They are exactly the rows still ``sending`` under the dead
worker's name right after the kill (a dead process changes nothing more), read before their
lease can expire. The kill comes while the worker holds some, so the reaper's path is taken.
"""

import itertools
import os
import re
import signal
import sys
import threading
import time

import pytest
import requests
from conftest import ROOT, worker_env
from helpers import attempts_of, mail_rows, received_counts, sample_mail, wait_for
from sqlalchemy import create_engine, text

from devkit.processes import Supervisor
from system.gunicorn_server import GUNICORN, gunicorn_env

pytestmark = [pytest.mark.slow, pytest.mark.committed]

LEASE = 5.0  # seconds: the killed worker's mail returns this soon (a live batch takes < 0.5 s)
BEFORE_KILL = 120  # acknowledged mails before the kill
AFTER_KILL = 120  # acknowledged mails after it, all through the surviving API
CLIENTS = 6  # concurrent posting threads


@pytest.fixture
def supervisor():
    """Children in process groups of their own, each stopped (or killed) at the end."""
    children = Supervisor(cwd=ROOT, own_groups=True, grace=10)
    yield children
    children.stop_all()


def start_api(supervisor, tmp_path, name, database_url):
    """A gunicorn instance (1 process, 4 threads) on a free port; its base URL once it serves."""
    base = tmp_path / name
    env = gunicorn_env(base, database_url, WEB_CONCURRENCY="1")
    child = supervisor.start(name, GUNICORN, env, log_path=tmp_path / f"{name}.log")
    found = wait_for(
        lambda: re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", child.output()),
        60,
        message=f"{name} to listen",
    )
    url = f"http://127.0.0.1:{found.group(1)}"
    wait_for(lambda: answers(url + "/health"), 60, message=f"{name} to serve")
    return child, url


def answers(url):
    """Whether ``url`` answers 200 (a slow start-up on a busy machine is "not yet")."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def start_worker(supervisor, tmp_path, name, settings):
    """A worker process (``mail_service.py``) with a short lease."""
    env = worker_env(settings, LEASE_SECONDS=LEASE, WORKER_CONCURRENCY=4, LOG_FORMAT="text")
    child = supervisor.start(
        name,
        [sys.executable, os.path.join(ROOT, "mail_service.py")],
        env,
        log_path=tmp_path / f"{name}.log",
    )
    return child


class Clients:
    """Threads posting mail to the APIs in ``targets``, round robin, until told to stop.

    ``acknowledged`` holds (API, id) of each 202; ``refused`` the API of each request that
    could not be answered because that API died. Any other answer is a failure of the test.
    """

    def __init__(self, targets, doomed):
        self.targets = list(targets)
        self.doomed = doomed  # the API that will be killed: only its requests may fail
        self.acknowledged, self.refused, self.errors = [], [], []
        self.stopping = threading.Event()
        self._turn = itertools.count()
        self.threads = [threading.Thread(target=self._post, daemon=True) for _ in range(CLIENTS)]

    def start(self):
        """Start posting."""
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        """Stop posting; every thread has returned."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _post(self):
        """Post until stopped, each request to the next API in ``targets``."""
        session = requests.Session()
        while not self.stopping.is_set():
            targets = list(self.targets)
            target = targets[next(self._turn) % len(targets)]
            try:
                answer = session.post(target + "/mail", json=sample_mail(), timeout=15)
            except requests.RequestException as err:  # no answer: not acknowledged
                if target != self.doomed:
                    self.errors.append(f"{target}: {err.__class__.__name__}")
                self.refused.append(target)
                session = requests.Session()
                continue
            if answer.status_code != 202:
                self.errors.append(f"{target}: {answer.status_code} {answer.text[:200]}")
                continue
            self.acknowledged.append((target, answer.json()["id"]))


def claimed_by(database_url, pid):
    """Ids of the mails ``sending`` under the worker of process ``pid`` (its lease's name)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM email WHERE status = 'sending' AND locked_by LIKE :name"),
            {"name": f"%:{pid}:%"},
        ).all()
    engine.dispose()
    return {str(row.id) for row in rows}


def test_two_apis_three_workers_survive_losing_one_of_each(
    settings, sandbox, app, tmp_path, supervisor
):
    url = settings["DATABASE_URL"]
    started = time.monotonic()
    sandbox.configure("mailgun", latency_ms=20)  # sends overlap: a worker has mail in flight
    (doomed_api, doomed_url), (_, survivor_url) = [
        start_api(supervisor, tmp_path, name, url) for name in ("api-1", "api-2")
    ]
    workers = [start_worker(supervisor, tmp_path, f"worker-{n}", settings) for n in (1, 2, 3)]
    victim = workers[0]
    wait_for(
        lambda: all("starting" in worker.output() for worker in workers),
        60,
        message="the three workers to start",
    )

    clients = Clients([doomed_url, survivor_url], doomed_url).start()
    try:
        wait_for(
            lambda: len(clients.acknowledged) >= BEFORE_KILL and claimed_by(url, victim.pid),
            60,
            message="mail acknowledged and some of it in the victim worker's hands",
        )
        victim.signal(signal.SIGKILL)
        doomed_api.signal(signal.SIGKILL)
        clients.targets = [survivor_url]
        victim.wait(10)
        doomed_api.wait(10)
        in_doubt = claimed_by(url, victim.pid)  # what it held when it died
        killed_at = len(clients.acknowledged)
        wait_for(
            lambda: len(clients.acknowledged) >= killed_at + AFTER_KILL,
            60,
            message="mail acknowledged by the surviving API",
        )
    finally:
        clients.stop()
    assert clients.errors == []

    # Every stored mail ends sent: the victim's by the lease reaper and the other workers.
    wait_for(
        lambda: all(row["status"] == "sent" for row in mail_rows(url).values()),
        60,
        interval=0.2,
        message="every stored mail to be sent",
    )
    rows = mail_rows(url)
    acknowledged = {mail_id for _, mail_id in clients.acknowledged}
    assert acknowledged <= set(rows), "an acknowledged mail is missing"
    received = received_counts(sandbox)
    assert set(received) == set(rows), "the sandbox received mail nobody stored"
    exact = {mail_id: received[mail_id] for mail_id in rows if mail_id not in in_doubt}
    assert set(exact.values()) == {1}, {k: v for k, v in exact.items() if v != 1}
    assert all(1 <= received[mail_id] <= 2 for mail_id in in_doubt)
    reaped = {str(row["email_id"]) for row in attempts_of(url) if row["outcome"] == "lease_expired"}
    assert reaped == in_doubt
    logged = "".join(worker.output() for worker in workers[1:])  # a survivor reaped them
    assert all(f"mail {mail_id}: lease expired" in logged for mail_id in in_doubt)

    # Both APIs served before the kill; after it, only the survivor did.
    served = {target for target, _ in clients.acknowledged[:killed_at]}
    assert served == {doomed_url, survivor_url}
    assert {target for target, _ in clients.acknowledged[killed_at + CLIENTS :]} == {survivor_url}
    print(
        f"\n{len(rows)} mails stored, {len(acknowledged)} acknowledged, "
        f"{len(clients.refused)} requests refused by the killed API, {len(in_doubt)} in the "
        f"killed worker's hands ({sum(received[m] for m in in_doubt)} sends of them), "
        f"{time.monotonic() - started:.1f}s"
    )
