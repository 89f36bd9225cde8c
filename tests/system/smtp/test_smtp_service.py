"""smtp_service.py as a process: it refuses settings that cannot work (exit 2), serves SMTP with
/readyz and /metrics on SMTP_HEALTH_PORT, and stops cleanly on SIGTERM."""

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import ROOT, worker_env
from helpers import Output, wait_for
from integration.smtp.door import certificates, queued_id, sample_message, send_data

pytestmark = pytest.mark.committed


def free_port():
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(settings, *args, **overrides):
    """Start smtp_service.py (command line ``args``) with ``settings`` and ``overrides`` as its
    environment."""
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "smtp_service.py"), *args],
        env=worker_env(settings, **overrides),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"SMTP_LISTEN": "0.0.0.0:2525"}, "refusing to listen on 0.0.0.0 in protected mode"),
        ({"API_KEYS": "k"}, "set SMTP_TLS_CERT and SMTP_TLS_KEY"),
        (
            {"SMTP_TLS_CERT": "/nonexistent/cert.pem", "SMTP_TLS_KEY": "/nonexistent/key.pem"},
            "cannot load SMTP_TLS_CERT /nonexistent/cert.pem",
        ),
        ({"SMTP_TLS_CERT": "/nonexistent/cert.pem"}, "SMTP_TLS_KEY is not set"),
        ({"SMTP_LISTEN": "localhost"}, "is not host:port"),
    ],
)
def test_settings_that_cannot_work_exit_2(settings, overrides, words):
    process = start(settings, **overrides)
    output = Output(process)
    assert process.wait(timeout=30) == 2
    assert words in output.text()


def get(url):
    """(status, JSON body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_serves_smtp_readyz_and_metrics(app, settings):
    port, health = free_port(), free_port()
    with certificates() as (ca, cert, key):
        process = start(
            settings,
            SMTP_LISTEN=f"127.0.0.1:{port}",
            SMTP_HEALTH_PORT=health,
            SMTP_TLS_CERT=cert,
            SMTP_TLS_KEY=key,
        )
        output = Output(process)
        try:
            wait_for(lambda: "SMTP door health on" in output, 30, message="the door to start")
            status, body = get(f"http://127.0.0.1:{health}/readyz")
            assert (status, json.loads(body)) == (200, {"status": "ready"})
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.ehlo("client.example.com")
                assert queued_id(send_data(smtp, sample_message()))
                assert smtp.rcpt("nobody@example")[0] == 503  # no MAIL yet: aiosmtpd's own
                smtp.mail("shop@example.com")
                assert smtp.rcpt("nobody@example")[0] == 553
            status, metrics = get(f"http://127.0.0.1:{health}/metrics")
            assert status == 200
            assert "mail_smtp_sessions_total 1.0" in metrics
            assert "mail_smtp_messages_accepted_total 1.0" in metrics
            assert 'mail_smtp_messages_refused_total{reason="invalid_address"} 1.0' in metrics
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, output.text()
    assert "mail.log" not in output.text()  # aiosmtpd's line per command: DEBUG only


def test_debug_logs_each_smtp_command(settings):
    port = free_port()
    process = start(settings, "--log-level", "DEBUG", SMTP_LISTEN=f"127.0.0.1:{port}")
    output = Output(process)
    try:
        wait_for(lambda: "SMTP door on" in output, 30, message="the door to start")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo("client.example.com")
            smtp.mail("shop@example.com")
        wait_for(
            lambda: "mail.log: ('127.0.0.1', " in output and "sender: shop@example.com" in output,
            30,
            message="aiosmtpd's line for MAIL",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, output.text()
