"""gunicorn serving the API as a process of its own, for the system tests that start one."""

import os
import re
import signal
import subprocess
import sys
import threading

import requests
from conftest import ROOT
from helpers import wait_for

GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "-c",
    os.path.join(ROOT, "gunicorn.conf.py"),
    "wsgi:app",
]


class Gunicorn:
    """gunicorn serving wsgi:app in a process group of its own, its output collected."""

    def __init__(self, env):
        self.process = subprocess.Popen(
            GUNICORN,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        """Everything gunicorn and the app printed so far."""
        return "".join(self.lines)

    def port(self):
        """The port gunicorn bound (BIND asks for any free one)."""
        found = wait_for(
            lambda: re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.output),
            60,
            message="gunicorn to listen",
        )
        return int(found.group(1))

    def url(self, path=""):
        """The URL of ``path`` on this server, once it answers /health."""
        base = f"http://127.0.0.1:{self.port()}"
        wait_for(lambda: _answers(base + "/health"), 60, message="gunicorn to serve")
        return base + path

    def exit_code(self, timeout=60):
        """Wait for gunicorn to stop on its own; its exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"gunicorn still runs after {timeout}s:\n{self.output}") from None

    def stop(self):
        """SIGTERM gunicorn (and its workers), SIGKILL them if they linger."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()


def _answers(url):
    """Whether ``url`` answers at all (a worker still loading the app answers nothing yet)."""
    try:
        requests.get(url, timeout=2)
    except (requests.ConnectionError, requests.Timeout):
        return False
    return True


def gunicorn_env(base, database_url, **overrides):
    """The environment of a gunicorn under ``base`` (its HOME and runtime dir); None unsets."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAIL_SERVICE_CONFIG", "SECRET_KEY", "XDG_RUNTIME_DIR")
    }
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY="gunicorn-test-key",
        API_KEYS="",
        ADMIN_PASSWORD="",
        BIND="127.0.0.1:0",
        WEB_CONCURRENCY="1",
        HOME=str(base / "home"),
        XDG_RUNTIME_DIR=str(base / "run"),
    )
    env.update(overrides)
    for directory in (env["HOME"], env.get("XDG_RUNTIME_DIR")):
        if directory:
            os.makedirs(directory, exist_ok=True)
    return {key: value for key, value in env.items() if value is not None}
