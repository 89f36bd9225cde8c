"""``mail_service.py --processes N``: N worker processes under one supervisor, on the test
database and the sandbox.

A child SIGKILLed while it sends is started again (a new process, with a heartbeat of its own)
and the mail is still all sent, each once but for the mails the dead child held at its death,
which the lease reaper returns (at least once, at most twice, as docs/index.md says). SIGTERM
to the supervisor stops every child as SIGTERM stops a lone worker: sends in flight recorded,
the rest handed back, no process left behind, exit code 0.
"""

import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, fresh_database, worker_env
from helpers import Output, alive, mail_rows, queue_mails, received_counts, statuses, wait_for
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.committed]

LEASE = 5.0  # seconds: a killed child's mail comes back this soon
STOP_TIMEOUT = 60  # seconds for the supervisor to stop its children and exit


def start_supervisor(settings, *args, **overrides):
    """``mail_service.py --processes 2 ARGS`` with ``settings``; (process, its Output)."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "mail_service.py"), "--processes", "2", *args],
        env=worker_env(settings, LEASE_SECONDS=LEASE, LOG_FORMAT="text", **overrides),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, Output(process)


def children_of(pid):
    """The pids of the live children of process ``pid``."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(name))
    return found


def query(database_url, statement, **params):
    """The rows of one SQL statement on the test database."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(statement), params).all()
    engine.dispose()
    return rows


def heartbeat_pids(database_url):
    """The pids of the workers with a heartbeat row."""
    return {pid for (pid,) in query(database_url, "SELECT pid FROM worker_heartbeat")}


def claimed_by(database_url, pid):
    """Ids of the mails ``sending`` under the worker of process ``pid`` (its lease's name)."""
    rows = query(
        database_url,
        "SELECT id FROM email WHERE status = 'sending' AND locked_by LIKE :name",
        name=f"%:{pid}:%",
    )
    return {str(mail_id) for (mail_id,) in rows}


def stop(process, output):
    """SIGTERM to the supervisor; its exit code once it exited, and every child it had."""
    children = children_of(process.pid)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=STOP_TIMEOUT)
    output.text()
    return code, children


def test_a_killed_child_is_replaced_and_the_mail_all_goes(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", latency_ms=40)  # a child always has sends in flight
    ids = queue_mails(url, 600)
    process, output = start_supervisor(settings, WORKER_CONCURRENCY=4)
    try:
        first = wait_for(
            lambda: (
                len(children_of(process.pid)) == 2
                and heartbeat_pids(url) == children_of(process.pid)
                and children_of(process.pid)
            ),
            60,
            message="two children, each with its heartbeat",
        )
        victim = wait_for(
            lambda: next((pid for pid in first if claimed_by(url, pid)), None),
            60,
            message="a child holding mail",
        )
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), 10, message="the victim to die")
        in_doubt = claimed_by(url, victim)  # what it held when it died
        assert in_doubt
        replaced = wait_for(
            lambda: (
                len(children_of(process.pid)) == 2
                and victim not in children_of(process.pid)
                and children_of(process.pid) - first
            ),
            60,
            message="a new child in the victim's place",
        )
        (newcomer,) = replaced
        wait_for(lambda: newcomer in heartbeat_pids(url), 60, message="the new child's heartbeat")

        wait_for(lambda: statuses(url) == {"sent": 600}, 120, interval=0.2, message="all sent")
        code, children = stop(process, output)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert children == first - {victim} | {newcomer}
    assert not any(alive(pid) for pid in children), "a child outlived the supervisor"
    assert heartbeat_pids(url) <= {victim}  # each child stopped said goodbye, not the dead one

    received = received_counts(sandbox)
    assert set(received) == set(ids) == set(mail_rows(url))
    exact = {mail_id: count for mail_id, count in received.items() if mail_id not in in_doubt}
    assert set(exact.values()) == {1}, {k: v for k, v in exact.items() if v != 1}
    assert all(1 <= received[mail_id] <= 2 for mail_id in in_doubt)
    log = output.text()
    assert f"(pid {victim}) was killed by SIGKILL: starting another" in log
    assert "all worker processes stopped" in log


def test_sigterm_stops_every_child_gracefully_and_burst_sends_the_rest(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", latency_ms=300)  # sends are in flight at the stop
    ids = queue_mails(url, 200)
    process, output = start_supervisor(settings, WORKER_CONCURRENCY=4)
    try:
        children = wait_for(
            lambda: (
                len(children_of(process.pid)) == 2
                and all(claimed_by(url, pid) for pid in children_of(process.pid))
                and children_of(process.pid)
            ),
            60,
            message="both children holding mail",
        )
        code, stopped = stop(process, output)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert stopped == children
    assert not any(alive(pid) for pid in children), "a child outlived the supervisor"
    assert heartbeat_pids(url) == set()
    counts = statuses(url)
    assert "sending" not in counts  # sends in flight recorded, the rest handed back
    assert counts.get("sent", 0) >= 1 and sum(counts.values()) == 200

    sandbox.configure("mailgun", latency_ms=0)
    burst, burst_output = start_supervisor(settings, "--burst", WORKER_CONCURRENCY=4)
    try:
        assert burst.wait(timeout=120) == 0, burst_output.text()
    finally:
        if burst.poll() is None:
            burst.kill()
    assert statuses(url) == {"sent": 200}
    assert set(received_counts(sandbox).values()) == {1}
    assert set(received_counts(sandbox)) == set(ids)


def test_a_child_that_cannot_start_stops_the_supervisor(settings, postgres_server):
    with fresh_database(postgres_server) as empty_url:  # no schema: each child exits 2
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "mail_service.py"), "--processes", "2"],
            env=worker_env(settings, DATABASE_URL=empty_url),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT,
        )
    assert result.returncode == 2
    assert "no schema" in result.stderr
    assert "could not start" in result.stderr
