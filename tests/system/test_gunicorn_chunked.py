"""Malformed chunked bodies under the production server (issue 19, item 12): gunicorn with
gunicorn.conf.py, raw bytes over a socket. A body whose chunks cannot be read is the client's
fault: a JSON 400 naming the body, nothing stored, no traceback, and the connection closed."""

import socket

import pytest
from sqlalchemy import create_engine, text

from system.gunicorn_server import Gunicorn, gunicorn_env
from system.test_gunicorn import exchange

HEAD = (
    b"POST /mail HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n"
)
MAIL = b'{"from":"a@example.com","to":"b@example.com","subject":"Hi","text":"x"}'


def chunked(body, extension=b""):
    """``body`` as one chunk (with ``extension``) and the last chunk."""
    return b"%x%s\r\n%s\r\n0\r\n\r\n" % (len(body), extension, body)


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url):
    """One gunicorn for the module's requests."""
    gunicorn = Gunicorn(gunicorn_env(tmp_path_factory.mktemp("gunicorn"), database_url))
    gunicorn.url()
    yield gunicorn
    gunicorn.stop()


@pytest.fixture
def stored(database_url):
    """How many mails the database holds now (a function: call it before and after)."""
    engine = create_engine(database_url)

    def count():
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM email")).scalar()

    yield count
    engine.dispose()


def answer_of(port, request, half_close=False):
    """Send ``request`` on a keep-alive connection (shut for writing after it, if asked) and
    read until the server closes it: (status, headers, body of the first answer, all bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):  # a timeout here: the server kept the connection
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body[: int(headers["content-length"])], received


MALFORMED = {
    "control character in a chunk extension": (HEAD + b"\r\n" + chunked(MAIL, b";ext=\x01"), False),
    "chunk extension without a name": (HEAD + b"\r\n" + chunked(MAIL, b";=x"), False),
    "chunk size that is not hex": (HEAD + b"\r\nzz\r\n" + MAIL + b"\r\n0\r\n\r\n", False),
    "chunk without its CRLF": (HEAD + b"\r\n%x\r\n%sXX0\r\n\r\n" % (len(MAIL), MAIL), False),
    "body cut short": (HEAD + b"\r\n64\r\n" + MAIL[:20], True),
    "no last chunk": (HEAD + b"\r\n%x\r\n%s\r\n" % (len(MAIL), MAIL), True),
}


@pytest.mark.parametrize("request_bytes, half_close", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_chunked_body_is_a_json_400(server, stored, request_bytes, half_close):
    before = stored()
    status, headers, body, received = answer_of(server.port(), request_bytes, half_close)
    assert status == 400, received
    assert headers["content-type"] == "application/json"
    assert b'"field":"body"' in body.replace(b" ", b"")
    assert received.count(b"HTTP/1.1 ") == 1  # one answer, then the connection closed
    assert stored() == before
    assert "Traceback" not in server.output and "unexpected error" not in server.output


def test_a_well_formed_chunked_body_is_stored(server, stored):
    before = stored()
    request = HEAD + b"Connection: close\r\n\r\n" + chunked(MAIL, b";name=value")
    status, _, body = exchange(server.port(), request)
    assert status == 202, body
    assert stored() == before + 1


def test_an_unknown_transfer_coding_is_gunicorns_501(server, stored):
    # gunicorn refuses it before the app sees the request, in HTML like its other refusals
    # (see test_gunicorn.py), and closes the connection: RFC 9112 says 501 for a transfer
    # coding the server does not understand.
    before = stored()
    request = HEAD.replace(b"chunked", b"xchunked") + b"\r\n" + chunked(MAIL)
    status, headers, body, _ = answer_of(server.port(), request)
    assert status == 501
    assert headers["content-type"] == "text/html" and headers["connection"] == "close"
    assert b"Unsupported transfer coding" in body
    assert stored() == before
