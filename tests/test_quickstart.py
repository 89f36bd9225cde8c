"""The README's quick start really works: ``python -m mailer.devserver --smoke`` (what
``./scripts/dev`` runs) starts an embedded PostgreSQL, the sandbox, the API and the worker, and
the curl line's mail reaches ``sent``.

It runs on free ports and a throwaway PostgreSQL folder, so it needs no PostgreSQL installed and
touches neither instance/pgdata nor a quick start that may be running on ports 5000/8025.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from mailer.embedded_db import EmbeddedPostgres

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 90  # seconds for the whole smoke run


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


def test_quick_start_smoke(pgdata):
    api_port, sandbox_port = free_port(), free_port()
    while sandbox_port == api_port:
        sandbox_port = free_port()
    env = {name: value for name, value in os.environ.items()
           if name not in ("MAIL_SERVICE_CONFIG", "API_KEYS", "ADMIN_PASSWORD", "DATABASE_URL")}
    env["SECRET_KEY"] = "quickstart-test"  # else the runner keeps one in instance/
    # Its own session, so that on a timeout the runner and its children are killed together.
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer.devserver", "--smoke", "--port", str(api_port),
         "--sandbox-port", str(sandbox_port), "--pgdata", pgdata],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the smoke run took longer than {TIMEOUT}s:\n{output}")
    assert process.returncode == 0, output
    assert "starting PostgreSQL in" in output, output
    assert '"status": "sent"' in output, output
    assert "smoke: OK" in output, output
    assert not os.path.exists(os.path.join(pgdata, "data", "postmaster.pid")), "still running"
