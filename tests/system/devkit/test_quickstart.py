"""The README's quick start really works: ``python -m devkit.devserver --smoke`` (what
``./scripts/dev`` runs) starts an embedded PostgreSQL, the sandbox, the API and the worker, and
the curl line's mail reaches ``delivered``.

It runs on free ports and a throwaway PostgreSQL folder, so it needs no PostgreSQL installed and
touches neither instance/pgdata nor a quick start that may be running on ports 5000/8025.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import psycopg2
import pytest
from conftest import ROOT
from helpers import wait_for

from devkit.embedded_db import EmbeddedPostgres

TIMEOUT = 300  # seconds for the whole smoke run, on a slow or busy machine


def free_port():
    """A port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def pgdata():
    """A folder for the run's embedded PostgreSQL; whatever runs there is stopped afterwards."""
    folder = tempfile.mkdtemp(prefix="mail-quickstart-pg-")
    yield folder
    EmbeddedPostgres(folder).destroy()  # a server left behind by a killed run too


def start_devserver(api_port, sandbox_port, pgdata, *options):
    """``./scripts/dev``'s runner on these ports and data folder (``options`` besides), with
    the environment of a newcomer's shell (no settings file, keys or database URL), in a
    session of its own so that on a timeout the runner and its children are killed together."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MAIL_SERVICE_CONFIG", "API_KEYS", "ADMIN_PASSWORD", "DATABASE_URL")
    }
    env["SECRET_KEY"] = "quickstart-test"  # else the runner keeps one in instance/
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devkit.devserver",
            *options,
            "--port",
            str(api_port),
            "--sandbox-port",
            str(sandbox_port),
            "--smtp-port",
            str(free_port()),
            "--pgdata",
            pgdata,
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_quick_start_smoke(pgdata):
    api_port, sandbox_port = free_port(), free_port()
    while sandbox_port == api_port:
        sandbox_port = free_port()
    process = start_devserver(api_port, sandbox_port, pgdata, "--smoke")
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the smoke run took longer than {TIMEOUT}s:\n{output}")
    assert process.returncode == 0, output
    assert "starting PostgreSQL in" in output, output
    assert '"status": "delivered"' in output, output  # the sandbox's signed event came back
    assert "smoke: OK" in output, output
    assert "SMTP door on 127.0.0.1:" in output, output  # ./scripts/dev starts it too
    assert 'HTTP/1.1" 202' not in output, "a line per request drowns what matters"
    assert not os.path.exists(os.path.join(pgdata, "data", "postmaster.pid")), "still running"


def fetch(method, url, body=None):
    """A JSON request to a local server; (status, parsed answer) or (None, None) if down."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
    except OSError:
        return None, None


def test_ctrl_c_under_load_stops_the_sandbox_last(pgdata):
    # A terminal's Ctrl-C signals the whole foreground process group. The sandbox must outlive
    # the worker's last sends, or they fail as "connection refused" and open both breakers.
    api_port, sandbox_port = free_port(), free_port()
    process = start_devserver(api_port, sandbox_port, pgdata)
    api, sandbox = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sandbox_port}"
    try:
        for name, health in (
            ("the API", f"{api}/health"),
            ("the sandbox", f"{sandbox}/_sandbox/health"),
        ):
            wait_for(lambda url=health: fetch("GET", url)[0] == 200, 60, interval=0.1, message=name)
        assert fetch("PUT", f"{sandbox}/_sandbox/behaviour/mailgun", {"latency_ms": 1500})[0]
        mail = {"from": "a@example.com", "to": "b@example.com", "subject": "Hi", "text": "x"}
        ids = [fetch("POST", f"{api}/mail", mail)[1]["id"] for _ in range(10)]
        wait_for(
            lambda: fetch("GET", f"{api}/mail/{ids[0]}")[1]["status"] == "sending",
            30,
            interval=0.1,
            message="sends in flight",
        )
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        output, _ = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, output
    server = EmbeddedPostgres(pgdata)
    server.start()
    try:
        with psycopg2.connect(server.url("mail")) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT outcome, error FROM delivery_attempt")
            attempts = cursor.fetchall()
            cursor.execute("SELECT name, state, consecutive_failures FROM provider_state")
            breakers = cursor.fetchall()
            cursor.execute("SELECT count(*) FROM email WHERE status = 'sending'")
            [(sending,)] = cursor.fetchall()
    finally:
        server.stop()
    assert attempts and all(outcome == "sent" for outcome, _ in attempts), attempts
    assert all(state == "closed" and failures == 0 for _, state, failures in breakers), breakers
    assert sending == 0, output
