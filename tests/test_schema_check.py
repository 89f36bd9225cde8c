"""The API and the worker refuse to start on a database without the current schema."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, worker_env


@pytest.mark.parametrize("command", [["app.py", "--port", "0"], ["mail_service.py", "--burst"]])
def test_processes_stop_with_a_clear_message_without_schema(settings, tmp_path, command):
    env = worker_env(settings, DATABASE_URL=f"sqlite:///{tmp_path}/empty.db")
    result = subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:]],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no schema" in result.stderr and "flask --app app db upgrade" in result.stderr
