"""Issue 8, as a process: the development server refuses to listen beyond loopback in protected
mode."""

import subprocess
import sys

from conftest import ROOT, worker_env


def test_protected_mode_refuses_to_listen_beyond_loopback(settings):
    env = worker_env(settings, API_KEYS="", ADMIN_PASSWORD="")
    result = subprocess.run(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "protected mode" in result.stderr and "API_KEYS" in result.stderr
