"""Hostile bodies get a clear 4xx and store nothing, over a real HTTP connection."""

import http.client
from urllib.parse import urlsplit

import pytest
from helpers import serving

from app import create_app

pytestmark = pytest.mark.committed

LIMIT = 10_000  # bytes: MAX_CONTENT_LENGTH of the server under test


@pytest.fixture
def server(settings, app, sql):
    """The app on a real loopback HTTP server (Werkzeug's), with a small body limit."""
    application = create_app({**settings, "MAX_CONTENT_LENGTH": LIMIT})
    with serving(application) as url:
        yield urlsplit(url).port


def chunked_post(port, path, body, content_type):
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length); (status, JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
    connection.request(
        "POST", path, body=chunks, encode_chunked=True, headers={"Content-Type": content_type}
    )
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def count(sql):
    """How many mails are stored."""
    return sql("SELECT count(*) AS n FROM email")[0]["n"]


FORM = b"from=a%40example.com&to=b%40example.com&subject=Hi&text="
MULTIPART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="from"\r\n\r\na@example.com\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="to"\r\n\r\nb@example.com\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="subject"\r\n\r\nHi\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\n%s\r\n--XyZ--\r\n'
)


@pytest.mark.parametrize("path", ["/mail", "/mail/batch", "/admin/email/new/"])
@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/x-www-form-urlencoded", FORM + b"x" * (LIMIT + 10)),
        ("multipart/form-data; boundary=XyZ", MULTIPART % (b"x" * (LIMIT + 10))),
        ("application/json", b'{"from": "a@example.com", "text": "' + b"x" * (LIMIT + 10) + b'"}'),
    ],
)
def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(
    server, sql, path, content_type, body
):
    status, data = chunked_post(server, path, body, content_type)
    assert status == 413, data
    if path.startswith("/mail"):  # the admin answers in HTML, as its other pages
        assert b'"success":false' in data.replace(b" ", b"")
    assert count(sql) == 0


def test_a_chunked_body_within_the_limit_is_stored_whole(server, sql):
    text = "y" * (LIMIT - len(FORM) - 10)
    status, data = chunked_post(
        server, "/mail", FORM + text.encode(), "application/x-www-form-urlencoded"
    )
    assert status == 202, data
    assert sql("SELECT text FROM email")[0]["text"] == text


@pytest.mark.parametrize(
    "body, field",
    [
        (b"from=a@example.com&to=b@example.com&subject=%ff%fe&text=x", "subject"),
        (b"from=a%ff@example.com&to=b@example.com&subject=Hi&text=x", "from"),
        (b"from=a@example.com&to=b@example.com&subject=Hi&text=\xff", "text"),
    ],
)
def test_form_fields_that_are_not_utf8_are_refused_by_name(server, sql, body, field):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    connection.request(
        "POST", "/mail", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    response = connection.getresponse()
    data = response.read().decode()
    assert response.status == 400, data
    assert f'"field":"{field}"' in data.replace(" ", "") and "UTF-8" in data
    assert count(sql) == 0


def test_multipart_fields_that_are_not_utf8_are_refused_by_name(client, sql):
    body = MULTIPART.replace(b'name="subject"\r\n\r\nHi', b'name="subject"\r\n\r\nH\xffi')
    response = client.post(
        "/mail", data=body % b"text", content_type="multipart/form-data; boundary=XyZ"
    )
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "subject", "message": "Not valid UTF-8"}]
    assert count(sql) == 0


def test_valid_utf8_forms_still_work(client, sql):
    body = "from=a@example.com&to=Zo%C3%AB+<zoe@example.com>&subject=%C3%A9t%C3%A9&text=ok"
    response = client.post("/mail", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["subject"] == "été"
    assert response.get_json()["to"] == ["Zoë <zoe@example.com>"]
