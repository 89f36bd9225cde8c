"""The embedded PostgreSQL: one owner per folder; a server left by a killed owner is replaced."""

import os
import signal
import subprocess
import sys
import tempfile

import psycopg2
import pytest
from conftest import ROOT
from helpers import alive

from devkit.embedded_db import EmbeddedPostgres, EmbeddedPostgresError

# Starts a server in the folder given as argv[1], prints its URL, then waits to be killed.
OWNER = """
import sys, time
from devkit.embedded_db import EmbeddedPostgres
print(EmbeddedPostgres(sys.argv[1]).start().url(), flush=True)
time.sleep(600)
"""


@pytest.fixture
def folder():
    """A folder for one cluster; whatever runs there is stopped and deleted afterwards."""
    path = tempfile.mkdtemp(prefix="mail-test-embedded-")
    yield path
    EmbeddedPostgres(path).destroy()


def postmaster_pid(folder):
    """The pid of the server running in ``folder``."""
    with open(os.path.join(folder, "data", "postmaster.pid")) as handle:
        return int(handle.readline())


def answers(url):
    """Whether a server accepts a connection at ``url``."""
    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def test_a_second_owner_is_refused_and_a_killed_owners_server_taken_over(folder):
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, folder], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        old_url = owner.stdout.readline().strip()
        assert answers(old_url)
        leftover = postmaster_pid(folder)
        with pytest.raises(EmbeddedPostgresError, match="in use by another process"):
            EmbeddedPostgres(folder).start()
    finally:
        os.kill(owner.pid, signal.SIGKILL)  # no chance to stop its server
        owner.wait()
        owner.stdout.close()
    assert answers(old_url)  # the server outlives its owner...
    server = EmbeddedPostgres(folder).start()  # ...until the next owner stops it
    try:
        assert not alive(leftover) and postmaster_pid(folder) != leftover
        url = server.create_database("mail")
        assert server.create_database("mail") == url  # a second time is a no-op
        assert answers(url)
    finally:
        server.stop()
    assert not answers(url)
