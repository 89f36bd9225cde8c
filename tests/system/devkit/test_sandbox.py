"""The sandbox's command line: ``python -m devkit.sandbox`` and ``scripts/sandbox`` as processes."""

import os
import re
import signal
import subprocess
import sys

import requests
from conftest import ROOT
from helpers import sg_payload


def test_cli_serves_and_exits_cleanly_on_sigterm():
    env = {**os.environ, "SANDBOX_SENDGRID_API_KEY": "from-env"}
    cmd = [sys.executable, "-m", "devkit.sandbox", "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as proc:
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(
                r"sandbox listening on (http://127\.0\.0\.1:\d+) "
                r"\(watch mail at http://127\.0\.0\.1:\d+/_sandbox/\)\n",
                line,
            )
            assert match, line
            url = match.group(1)
            assert requests.get(f"{url}/_sandbox/health", timeout=5).json() == {"ok": True}
            auth = {"Authorization": "Bearer wrong"}
            r = requests.post(f"{url}/v3/mail/send", json=sg_payload(), headers=auth, timeout=5)
            assert r.status_code == 401  # the key came from SANDBOX_SENDGRID_API_KEY
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_cli_refuses_remote_host():
    # Through the command a developer types: scripts/sandbox runs python -m devkit.sandbox.
    proc = subprocess.run(
        [os.path.join(ROOT, "scripts", "sandbox"), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "--allow-remote" in proc.stderr
