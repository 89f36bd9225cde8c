"""The API under a real gunicorn with gunicorn.conf.py: start-up refusals, the malformed requests
gunicorn answers itself, and the control socket. Each server runs on a free loopback port."""

import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid

import psycopg2
import pytest
import requests
from conftest import ROOT, fresh_database
from helpers import wait_for
from sqlalchemy.engine import make_url

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


# --- Slow clients (issue 19): the production server parks them and drops them in time ---------

SLOW_CLIENTS = 50
HALF_A_HEADER = b"GET /healthz HTTP/1.1\r\nHost: loc"  # and then nothing more


def slow_clients(port, count=SLOW_CLIENTS):
    """``count`` connections that each send half a header line and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(HALF_A_HEADER)
        sockets.append(sock)
    return sockets


def still_open(sock):
    """Whether the server has not closed ``sock`` (nothing to read, no end of stream)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def healthz_seconds(url):
    """How long /healthz took to answer 200 (requests' timeout: 5 s, then it fails)."""
    started = time.monotonic()
    assert requests.get(url, timeout=5).status_code == 200
    return time.monotonic() - started


def test_healthz_answers_while_50_slow_clients_hold_connections(start_gunicorn):
    # The production processes (WEB_CONCURRENCY's default), with a header timeout longer than
    # the test, so that every slow client is still held while /healthz is asked. With gthread's
    # 2 x 4 threads, 8 such connections held every thread and /healthz never answered.
    server = start_gunicorn(WEB_CONCURRENCY=None, GUNICORN_CMD_ARGS="--keep-alive 60")
    url = server.url("/healthz")
    sockets = slow_clients(server.port())
    try:
        time.sleep(0.5)  # every slow client accepted and stuck in its header
        seconds = sorted(healthz_seconds(url) for _ in range(5))
        assert all(still_open(sock) for sock in sockets)
        # Under a second, typically a few milliseconds; the median, so that one hiccup of a
        # loaded machine does not decide.
        assert seconds[2] < 1.0, seconds
    finally:
        for sock in sockets:
            sock.close()


def test_slow_clients_are_dropped_after_the_header_timeout(start_gunicorn):
    server = start_gunicorn(WEB_CONCURRENCY=None)
    url = server.url("/healthz")
    sockets = slow_clients(server.port())
    try:
        # keepalive (5 s) bounds a request's line and headers; generous for a loaded machine.
        wait_for(
            lambda: not any(still_open(sock) for sock in sockets),
            30,
            message="gunicorn to close the slow connections",
        )
        assert healthz_seconds(url) < 5
    finally:
        for sock in sockets:
            sock.close()


def test_a_request_waiting_on_postgresql_does_not_stop_the_process(start_gunicorn, database_url):
    # One process: while a request waits for a lock in PostgreSQL, the same process answers
    # /healthz, as psycopg2 yields to the other greenlets while it waits (mailer/green.py).
    server = start_gunicorn(WEB_CONCURRENCY="1")
    url = server.url("/healthz")
    locker = psycopg2.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE email IN ACCESS EXCLUSIVE MODE")
        answers = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                requests.get(server.url(f"/mail/{uuid.uuid4()}"), timeout=30).status_code
            )
        )
        waiting.start()
        wait_for(lambda: _waits_on_a_lock(locker), 10, message="the request to wait on the lock")
        assert healthz_seconds(url) < 2.0
        assert answers == []  # still waiting
    finally:
        locker.rollback()
        locker.close()
    waiting.join(30)
    assert answers == [404]


def _waits_on_a_lock(connection):
    """Whether a session of the API waits for a lock (outside ``connection``'s transaction)."""
    with psycopg2.connect(connection.dsn) as other, other.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        found = cursor.fetchone()[0] > 0
    other.close()
    return found


def test_stops_without_a_traceback(start_gunicorn):
    server = start_gunicorn()
    server.url()
    server.stop()
    assert "Worker exiting" in server.output
    assert "Traceback" not in server.output and "Exception ignored" not in server.output
