"""The API under a real gunicorn with gunicorn.conf.py: start-up refusals, the malformed requests
gunicorn answers itself, and the control socket. Each server runs on a free loopback port."""

import os
import socket
import stat
import subprocess
import sys
import threading

import pytest
import requests
from conftest import ROOT, fresh_database
from helpers import wait_for

from system.gunicorn_server import Gunicorn, gunicorn_env

MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@pytest.fixture
def start_gunicorn(tmp_path, database_url):
    """Start gunicorn with ``gunicorn_env`` plus overrides; every one is stopped at the end."""
    servers = []

    def start(**overrides):
        server = Gunicorn(gunicorn_env(tmp_path, database_url, **overrides))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- Start-up ------------------------------------------------------------------------------


def test_refuses_to_start_without_a_secret_key(start_gunicorn):
    # Each worker would make a key of its own, and a form rendered by one worker would fail its
    # CSRF check in another: "CSRF token is missing or expired".
    server = start_gunicorn(SECRET_KEY=None)
    assert server.exit_code() != 0
    assert "SECRET_KEY is not set" in server.output
    assert MAKE_A_KEY in server.output
    assert server.output.count("Booting worker") == 1  # it stopped, not restarted the worker


def test_refuses_protected_mode_beyond_loopback(start_gunicorn):
    # Behind any proxy every request comes from loopback: only credentials keep it closed.
    server = start_gunicorn(BIND="0.0.0.0:0")
    assert server.exit_code() == 2
    assert "refusing to listen on 0.0.0.0 in protected mode" in server.output
    with_keys = start_gunicorn(BIND="0.0.0.0:0", API_KEYS="k", ADMIN_PASSWORD="p")
    wait_for(
        lambda: "Listening at: http://0.0.0.0:" in with_keys.output,
        30,
        message="gunicorn with credentials to listen on every address",
    )
    assert with_keys.process.poll() is None


def test_refuses_to_start_with_an_empty_secret_key(start_gunicorn):
    server = start_gunicorn(SECRET_KEY="")
    assert server.exit_code() != 0
    assert MAKE_A_KEY in server.output


@pytest.fixture
def empty_database_url(postgres_server):
    """A database with no tables at all, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


def test_refuses_to_start_without_the_schema_instead_of_restarting_workers(
    start_gunicorn, empty_database_url
):
    server = start_gunicorn(DATABASE_URL=empty_database_url)
    assert server.exit_code() != 0
    assert "flask --app app db upgrade" in server.output
    assert server.output.count("Booting worker") == 1


def test_starts_and_serves_with_a_secret_key(start_gunicorn):
    server = start_gunicorn()
    assert requests.get(server.url("/health"), timeout=10).json()["status"] == "ok"
    assert "SECRET_KEY is not set" not in server.output


def test_the_development_server_keeps_a_random_key(settings, tmp_path):
    # The single-process quick start needs no key: one process, so one key, with a warning.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAIL_SERVICE_CONFIG", "SECRET_KEY")
    }
    env.update({key: str(value) for key, value in settings.items() if key != "SECRET_KEY"})
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "app.py"), "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []

    def collect():
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    try:
        # The access log is off by default, so the key's warning is the line to wait for.
        wait_for(
            lambda: "SECRET_KEY is not set" in "".join(lines), 30, message="the development server"
        )
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
    assert "SECRET_KEY is not set: using a random key for this process only" in "".join(lines)


# --- Malformed requests: gunicorn answers them, in HTML, before the app sees them ------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url):
    """One gunicorn for the module's requests."""
    gunicorn = Gunicorn(gunicorn_env(tmp_path_factory.mktemp("gunicorn"), database_url))
    gunicorn.url()
    yield gunicorn
    gunicorn.stop()


def exchange(port, request):
    """Send raw bytes; return the answer's status, headers (lower-case names) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def get(path=b"/health", headers=b""):
    """A raw GET request with extra header lines; the connection closes after the answer."""
    return (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        + headers
        + b"\r\n"
    )


def many_headers(count):
    """``count`` distinct header lines."""
    return b"".join(b"X-Extra-%d: yes\r\n" % index for index in range(count))


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        pytest.param(get(headers=b"X-Big: " + b"a" * 100_000 + b"\r\n"), 431, id="100 kB header"),
        pytest.param(get(headers=b"Cookie: " + b"a" * 8200 + b"\r\n"), 431, id="8 kB+ header"),
        pytest.param(get(b"/mail/" + b"a" * 5000), 414, id="5,000-character URL"),
        pytest.param(get(headers=b"Bad Name: x\r\n"), 400, id="space in header name"),
        pytest.param(get(headers=b"X-Ctl\x01: x\r\n"), 400, id="control char in header name"),
        pytest.param(get(headers=many_headers(50)), 431, id="more than 50 header lines"),
        pytest.param(b"NONSENSE\r\n\r\n", 400, id="no request line"),
    ],
)
def test_gunicorn_answers_malformed_requests_in_html(server, request_bytes, status):
    answer_status, headers, body = exchange(server.port(), request_bytes)
    assert answer_status == status
    # gunicorn's own answer: HTML, the connection closed, none of the app's headers.
    assert headers["content-type"] == "text/html"
    assert headers["connection"] == "close"
    assert "server" not in headers and "x-frame-options" not in headers
    assert body.startswith(b"<html>")


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        pytest.param(get(b"/mail/" + b"a" * 4000), 404, id="4,000-character URL"),
        pytest.param(get(headers=b"Cookie: " + b"a" * 8000 + b"\r\n"), 200, id="8,000-byte header"),
        pytest.param(get(headers=many_headers(46)), 200, id="48 header lines"),
    ],
)
def test_requests_within_the_limits_reach_the_app(server, request_bytes, status):
    answer_status, headers, body = exchange(server.port(), request_bytes)
    assert answer_status == status
    assert headers["content-type"] == "application/json"
    assert headers["x-frame-options"] == "DENY"


def test_session_cookie_is_secure_behind_a_tls_proxy(server):
    # gunicorn takes X-Forwarded-Proto from the addresses in forwarded_allow_ips (loopback).
    url = server.url("/admin/email/new/")
    plain = requests.get(url, timeout=10)
    proxied = requests.get(url, headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "Secure" not in plain.headers["Set-Cookie"]
    assert "Secure" in proxied.headers["Set-Cookie"]
    assert "SameSite=Lax" in proxied.headers["Set-Cookie"]


# --- The control socket ---------------------------------------------------------------------


def test_leaves_another_instances_control_socket_alone(start_gunicorn, tmp_path):
    # gunicorn's default control socket is one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
    # ~/.gunicorn/gunicorn.ctl): a second instance replaced the first's and deleted it on exit.
    other = socket.socket(socket.AF_UNIX)
    path = str(tmp_path / "run" / "gunicorn.ctl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    other.bind(path)
    other.listen()
    inode = os.stat(path).st_ino
    try:
        server = start_gunicorn()
        server.url()
        server.stop()
        assert os.stat(path).st_ino == inode  # still the other instance's socket
        assert not os.path.exists(tmp_path / "home" / ".gunicorn")
        assert "Control socket listening" not in server.output
    finally:
        other.close()


def test_control_socket_where_asked(start_gunicorn, tmp_path):
    path = tmp_path / "ctl" / "mail-api.ctl"
    server = start_gunicorn(GUNICORN_CONTROL_SOCKET=str(path))
    server.url()
    wait_for(lambda: path.exists(), 10, message="the control socket")
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    server.stop()
    assert not path.exists()
