"""LOG_FORMAT: the real worker and gunicorn write one JSON object per line on stderr, each line
about a mail with its ``mail_id`` (and ``worker``, ``provider``); the default stays readable."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import MAILGUN_KEY, ROOT, SENDGRID_KEY, start_worker_process, worker_env
from helpers import attempts_of, mail_rows, queue_mails, wait_for

from system.gunicorn_server import Gunicorn, gunicorn_env

pytestmark = [pytest.mark.slow, pytest.mark.committed]

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def start_worker(settings, **overrides):
    """``mail_service.py`` as a process, its stdout and stderr kept apart."""
    env = worker_env(settings, **overrides)
    if "LOG_FORMAT" not in overrides:
        env.pop("LOG_FORMAT", None)  # the default, whatever the shell running the tests has
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "mail_service.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped(worker):
    """SIGTERM the worker; its (stdout, stderr) once it exited 0."""
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    return stdout, stderr


def sent(url, mail_id):
    """Whether mail ``mail_id`` is sent."""
    return mail_rows(url)[mail_id]["status"] == "sent"


def parsed(stderr):
    """Every line of ``stderr`` as a JSON object (the test fails on any other line)."""
    entries = []
    for line in stderr.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert ISO_UTC.match(entry["time"]) and entry["level"] and entry["logger"], line
        assert isinstance(entry["message"], str), line
        entries.append(entry)
    return entries


def test_json_lines_carry_mail_worker_and_provider(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    # The first mail fails at both providers once (so it is retried), the second goes at once.
    # A breaker opens at the first failure: its line, logged deep in the send, names the mail.
    sandbox.configure("mailgun", status=503, count=1)
    sandbox.configure("sendgrid", status=503, count=1)
    worker = start_worker(settings, LOG_FORMAT="json", CIRCUIT_FAILURE_THRESHOLD=1)
    try:
        [retried] = queue_mails(url, 1)
        wait_for(lambda: sent(url, retried), 60, message="the retried mail to be sent")
        [direct] = queue_mails(url, 1)
        wait_for(lambda: sent(url, direct), 60, message="the second mail to be sent")
    finally:
        stdout, stderr = stopped(worker)
    assert stdout == ""
    entries = parsed(stderr)
    [name] = {attempt["worker"] for attempt in attempts_of(url)}
    assert all(entry["worker"] == name for entry in entries)  # every line of the process

    for mail_id in (retried, direct):
        about = [entry for entry in entries if mail_id in entry["message"]]
        assert about and all(entry["mail_id"] == mail_id for entry in about)
    lines = [entry for entry in entries if entry.get("mail_id") == retried]
    failovers = [
        (entry["provider"], entry["level"])
        for entry in lines
        if "trying the next provider" in entry["message"]
    ]
    assert failovers == [("mailgun", "INFO"), ("sendgrid", "INFO")]
    assert any(
        "not sent" in entry["message"] and "due again" in entry["message"] for entry in lines
    )
    opened = [
        (entry["provider"], entry["level"]) for entry in lines if "circuit open" in entry["message"]
    ]
    assert opened == [("mailgun", "ERROR"), ("sendgrid", "ERROR")]
    [sent_line] = [entry for entry in lines if "sent via" in entry["message"]]
    assert sent_line["provider"] == "mailgun"
    [sent_line] = [
        entry
        for entry in entries
        if entry.get("mail_id") == direct and "sent via" in entry["message"]
    ]
    assert sent_line["provider"] == "mailgun" and sent_line["logger"] == "mail_service.worker"
    for secret in (MAILGUN_KEY, SENDGRID_KEY):
        assert secret not in stderr


def test_the_default_format_is_readable_text(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    worker = start_worker(settings)
    try:
        [mail_id] = queue_mails(url, 1)
        wait_for(lambda: sent(url, mail_id), 60, message="the mail to be sent")
    finally:
        _, stderr = stopped(worker)
    lines = stderr.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), stderr
    assert any(
        f"INFO mail_service.worker: mail {mail_id} sent via mailgun" in line for line in lines
    )
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)


def test_an_unknown_log_format_stops_the_worker(settings, app):
    worker = start_worker_process(settings, LOG_FORMAT="yaml")
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 2
    assert "setting LOG_FORMAT: 'yaml' is not one of text, json" in output


def test_gunicorn_and_the_app_log_json(tmp_path, database_url):
    server = Gunicorn(gunicorn_env(tmp_path, database_url, LOG_FORMAT="json"))
    try:
        server.url("/health")  # started, with a worker that loaded the app
    finally:
        server.stop()
    entries = parsed(server.output)
    loggers = {entry["logger"] for entry in entries}
    assert "gunicorn.error" in loggers  # gunicorn's own "Booting worker", "Shutting down"
    assert "mail_service.auth" in loggers  # the app's warning about protected mode
    assert any("Booting worker" in entry["message"] for entry in entries)
