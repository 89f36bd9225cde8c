"""The provider sandbox answers only requests that name it (issue 19, item 10): protected mode's
Host rule, so that a web page using DNS rebinding cannot read a developer's mail."""

import socket

import pytest
import requests

from devkit.sandbox import Sandbox
from devkit.sandbox.__main__ import _parse_args

KEY = "mg-key"


@pytest.fixture(scope="module")
def sandbox():
    """A sandbox holding one mail, on a free loopback port."""
    with Sandbox(mailgun_key=KEY, allowed_hosts=("sandbox.test",)).start() as server:
        answer = send(server, f"127.0.0.1:{server.port}")
        assert answer.status_code == 200, answer.text
        yield server


def send(server, host):
    """A Mailgun send to the sandbox with ``Host: host``."""
    return requests.post(
        f"{server.url}/v3/mg.example.com/messages",
        auth=("api", KEY),
        data={"from": "a@example.com", "to": "b@example.com", "subject": "Secret", "text": "x"},
        headers={"Host": host},
        timeout=10,
    )


def get(server, path, host):
    """GET ``path`` of the sandbox with ``Host: host``."""
    return requests.get(f"{server.url}{path}", headers={"Host": host}, timeout=10)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "10.0.0.1", "[::2]"])
@pytest.mark.parametrize("path", ["/_sandbox/messages", "/_sandbox/", "/_sandbox/requests"])
def test_a_foreign_host_reads_nothing(sandbox, path, host):
    answer = get(sandbox, path, host.format(port=sandbox.port))
    assert answer.status_code == 403
    assert "Secret" not in answer.text
    assert "is not this machine" in answer.json()["error"]


def test_a_foreign_host_sends_nothing_and_changes_nothing(sandbox):
    before = len(sandbox.messages())
    answer = send(sandbox, "evil.example")
    assert answer.status_code == 403 and "is not this machine" in answer.json()["message"]
    answer = requests.put(
        f"{sandbox.url}/_sandbox/behaviour/mailgun",
        json={"status": 500},
        headers={"Host": "evil.example"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert len(sandbox.messages()) == before
    assert sandbox.behaviour("mailgun") == {}


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "app.localhost:{port}",
        "127.1.2.3",
        "[::1]:{port}",
        "sandbox.test:{port}",  # given to the sandbox
    ],
)
def test_loopback_names_and_the_given_hosts_are_served(sandbox, host):
    answer = get(sandbox, "/_sandbox/messages", host.format(port=sandbox.port))
    assert answer.status_code == 200
    assert answer.json()["messages"][0]["subject"] == "Secret"


def test_a_request_without_a_host_is_for_the_address_it_reached(sandbox):
    # HTTP/1.0 needs no Host: the server's own address stands in for it.
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as sock:
        sock.sendall(b"GET /_sandbox/health HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def test_the_command_line_takes_more_host_names():
    args = _parse_args(["--allow-host", "sandbox", "--allow-host", "mail-sandbox.internal"])
    assert args.allow_host == ["sandbox", "mail-sandbox.internal"]
