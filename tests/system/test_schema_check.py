"""The API and the worker refuse to start on a database without the current schema."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, fresh_database, worker_env


@pytest.fixture
def empty_database_url(postgres_server):
    """A database with no tables at all, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.mark.parametrize("command", [["app.py", "--port", "0"], ["mail_service.py", "--burst"]])
def test_processes_stop_with_a_clear_message_without_schema(settings, empty_database_url, command):
    env = worker_env(settings, DATABASE_URL=empty_database_url)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, command[0]), *command[1:]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no schema" in result.stderr and "flask --app app db upgrade" in result.stderr
