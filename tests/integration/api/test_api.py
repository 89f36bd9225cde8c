"""The REST API as a client sees it: POST /mail, GET /mail/<id>, and every error's JSON shape."""

import io
import json
import time
import uuid
from datetime import datetime

import pytest

from app import create_app

README_BODY = (
    "from=bcambel@gmail.com&to=bcambel@gmail.com&subject=Hello"
    "&text=This email will be sent via a Mail gateway"
)
MAIL_KEYS = {
    "id",
    "status",
    "from_address",
    "to_address",
    "subject",
    "mail",
    "result",
    "created_at",
    "updated_at",
    "success",
    "html",
    "cc",
    "bcc",
    "reply_to",
    "provider",
    "provider_message_id",
    "attempts",
}


@pytest.fixture
def stored(sql):
    """Read a mail row as the test's transaction sees it."""

    def row(mail_id):
        rows = sql("SELECT * FROM email WHERE id = :id", id=uuid.UUID(mail_id))
        return rows[0] if rows else None

    return row


def count_rows(sql):
    """How many mails are stored."""
    return sql("SELECT count(*) AS n FROM email")[0]["n"]


def assert_error(response, status, field=None):
    """The response is our JSON error with ``status``, naming ``field`` if given."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)
    assert all(set(error) == {"field", "message"} for error in body["errors"])
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body


def assert_accepted(response, stored):
    """A 202 whose Location points at the mail, already committed; returns the body."""
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/mail/{body['id']}"
    assert body["status"] == "queued" and body["success"] is True
    row = stored(body["id"])
    assert row is not None and row["status"] == "queued"
    return body


# --- Submitting mail ------------------------------------------------------------------------


def test_readme_curl_form_body_is_accepted(client, stored):
    response = client.post(
        "/mail", data=README_BODY, content_type="application/x-www-form-urlencoded"
    )
    body = assert_accepted(response, stored)
    assert body["from_address"] == "bcambel@gmail.com"
    assert body["to_address"] == "bcambel@gmail.com"
    assert body["mail"] == "This email will be sent via a Mail gateway"
    assert stored(body["id"])["text"] == "This email will be sent via a Mail gateway"


def test_json_body_with_every_field(client, stored, mail):
    response = client.post(
        "/mail",
        json={
            **mail,
            "html": "<p>Hi</p>",
            "cc": ["a@example.com", "b@example.com"],
            "bcc": "c@example.com, d@example.com",
            "reply_to": "Replies <reply@example.com>",
        },
    )
    body = assert_accepted(response, stored)
    assert MAIL_KEYS <= set(body)
    assert body["cc"] == ["a@example.com", "b@example.com"]
    assert body["bcc"] == ["c@example.com", "d@example.com"]
    assert body["reply_to"] == "Replies <reply@example.com>"
    row = stored(body["id"])
    assert row["cc"] == ["a@example.com", "b@example.com"] and row["html"] == "<p>Hi</p>"


def test_internationalised_address(client, stored, mail):
    body = assert_accepted(
        client.post("/mail", json={**mail, "to": "Jörg <jörg@exämple.com>"}), stored
    )
    assert body["to_address"] == "Jörg <jörg@exämple.com>"


def test_html_only_is_enough(client, stored, mail):
    fields = {key: value for key, value in mail.items() if key != "text"}
    body = assert_accepted(client.post("/mail", json={**fields, "html": "<b>x</b>"}), stored)
    assert body["mail"] is None and body["html"] == "<b>x</b>"


def test_form_with_repeated_and_comma_separated_recipients(client, stored, mail):
    data = {
        **mail,
        "to": ["one@example.com", "two@example.com"],
        "cc": "three@example.com,four@example.com",
    }
    body = assert_accepted(client.post("/mail", data=data), stored)
    assert body["to_address"] == "one@example.com, two@example.com"
    assert body["cc"] == ["three@example.com", "four@example.com"]


def test_multipart_form_body(client, stored, mail):
    response = client.post(
        "/mail",
        data={**mail, "to": ["one@example.com", "two@example.com"]},
        content_type="multipart/form-data",
    )
    body = assert_accepted(response, stored)
    assert body["to_address"] == "one@example.com, two@example.com"


def test_uploaded_files_are_refused_not_dropped(client, sql, mail):
    data = {**mail, "invoice": (io.BytesIO(b"%PDF-"), "invoice.pdf")}
    assert_error(client.post("/mail", data=data), 400, "invoice")
    text_file = {**mail, "text": (io.BytesIO(b"body"), "body.txt")}
    assert_error(client.post("/mail", data=text_file), 400, "text")
    assert count_rows(sql) == 0


def test_json_with_charset_parameter(client, stored, mail):
    response = client.post(
        "/mail", data=json.dumps(mail), content_type="application/json; charset=utf-8"
    )
    assert_accepted(response, stored)


# --- Reading mail back ----------------------------------------------------------------------


def test_get_returns_the_mail_object(client, mail):
    mail_id = client.post("/mail", json={**mail, "cc": "cc@example.com"}).get_json()["id"]
    response = client.get(f"/mail/{mail_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert MAIL_KEYS <= set(body)
    assert str(uuid.UUID(body["id"])) == mail_id
    assert body["status"] == "queued" and body["success"] is True
    assert body["from_address"] == "sender@example.com"
    assert body["to_address"] == "rcpt@example.com"
    assert body["subject"] == "Hello" and body["mail"] == "Plain body"
    assert body["result"] is None  # JSON null, never the string "None"
    assert body["html"] is None and body["reply_to"] is None
    assert body["cc"] == ["cc@example.com"] and body["bcc"] == []
    assert body["provider"] is None and body["provider_message_id"] is None
    assert body["attempts"] == 0
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body[key]).tzinfo is not None


def test_get_shows_provider_result_as_json(client, sql, mail):
    mail_id = client.post("/mail", json=mail).get_json()["id"]
    sql(
        "UPDATE email SET status='sent', provider='mailgun', result=CAST(:r AS json) WHERE id=:id",
        r='[{"status_code": 200}]',
        id=uuid.UUID(mail_id),
    )
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["result"] == [{"status_code": 200}] and body["provider"] == "mailgun"


def test_get_unknown_and_malformed_ids_are_404(client):
    assert_error(client.get(f"/mail/{uuid.uuid4()}"), 404, "id")
    assert_error(client.get("/mail/not-a-uuid"), 404, "id")
    assert_error(client.get("/mail/12345"), 404, "id")


# --- Invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["from", "to", "subject"])
def test_missing_required_field(client, sql, missing, mail):
    fields = {key: value for key, value in mail.items() if key != missing}
    assert_error(client.post("/mail", json=fields), 400, missing)
    assert count_rows(sql) == 0


def test_missing_body_text_and_html(client, mail):
    fields = {key: value for key, value in mail.items() if key != "text"}
    assert_error(client.post("/mail", json=fields), 400, "text")
    assert_error(client.post("/mail", data={**fields, "text": "", "html": ""}), 400, "text")


@pytest.mark.parametrize(
    "field, value",
    [
        ("from", "not-an-address"),
        ("to", "rcpt@example.com, nope"),
        ("to", "rcpt@example.com, broken@"),
        ("to", ["rcpt@example.com", "@example.com"]),
        ("cc", "cc@"),
        ("bcc", "bcc at example.com"),
        ("reply_to", "reply@@example.com"),
        ("from", "a@example.com, b@example.com"),  # one sender only
        ("reply_to", ["a@example.com", "b@example.com"]),
        ("to", "<>"),
    ],
)
def test_invalid_addresses(client, sql, field, value, mail):
    assert_error(client.post("/mail", json={**mail, field: value}), 400, field)
    assert count_rows(sql) == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nX-Injected: 1"),
        ("subject", "Hello\rX"),
        ("from", "sender@example.com\r\nBcc: victim@example.com"),
        ("to", "rcpt@example.com\nBcc: victim@example.com"),
        ("to", ["rcpt@example.com", "x@example.com\r"]),
        ("cc", "cc@example.com\r\nX: y"),
        ("reply_to", "reply@example.com\nBcc: victim@example.com"),
        ("from", "Evil\r\nBcc: victim@example.com <sender@example.com>"),
    ],
)
def test_line_breaks_in_header_fields(client, sql, field, value, mail):
    assert_error(client.post("/mail", json={**mail, field: value}), 400, field)
    assert count_rows(sql) == 0


def test_line_breaks_in_form_header_fields(client, sql, mail):
    response = client.post("/mail", data={**mail, "subject": "Hi\r\nBcc: victim@example.com"})
    assert_error(response, 400, "subject")
    assert count_rows(sql) == 0


def test_line_breaks_in_the_body_are_fine(client, stored, mail):
    assert_accepted(client.post("/mail", json={**mail, "text": "line 1\r\nline 2\n"}), stored)


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", 42),
        ("subject", ["Hello"]),
        ("subject", {"text": "Hello"}),
        ("subject", True),
        ("text", 3.5),
        ("html", {"p": 1}),
        ("to", {"address": "rcpt@example.com"}),
        ("to", 7),
        ("to", ["rcpt@example.com", 7]),
        ("cc", {"a": "b"}),
        ("from", ["sender@example.com", None]),
        ("reply_to", 1),
    ],
)
def test_wrong_types(client, sql, field, value, mail):
    assert_error(client.post("/mail", json={**mail, field: value}), 400, field)
    assert count_rows(sql) == 0


def test_every_bad_field_is_listed_at_once(client):
    body = assert_error(client.post("/mail", json={"from": "x", "to": 1, "subject": 2}), 400)
    assert {"from", "to", "subject", "text"} <= {error["field"] for error in body["errors"]}


def test_unknown_field_is_named(client, mail):
    assert_error(client.post("/mail", json={**mail, "attachment_list": []}), 400, "attachment_list")


def test_too_many_recipients(app, client, mail):
    app.config["MAX_RECIPIENTS"] = 2
    to = ["a@example.com", "b@example.com", "c@example.com"]
    assert_error(client.post("/mail", json={**mail, "to": to}), 400, "to")


def test_nul_characters_are_rejected(client, sql, mail):
    assert_error(client.post("/mail", json={**mail, "text": "a\x00b"}), 400, "text")
    assert_error(client.post("/mail", json={**mail, "subject": "a\x00b"}), 400, "subject")
    response = client.post("/mail", json={**mail, "to": "Bad\x00Name <rcpt@example.com>"})
    assert_error(response, 400, "to")
    assert count_rows(sql) == 0


@pytest.mark.parametrize("body", ["{not json", '{"from": ', "", "null", "42", '"text"'])
def test_malformed_or_non_object_json(client, body):
    response = client.post("/mail", data=body, content_type="application/json")
    assert_error(response, 400, "body")


def test_deeply_nested_json_is_400_not_500(client):
    for body in ("[" * 100_000, '{"a":' * 50_000):
        response = client.post("/mail", data=body, content_type="application/json")
        assert_error(response, 400, "body")


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", "a\ud800"),
        ("text", "\udfff"),
        ("html", "x\ud83d"),
        ("to", "Lone \ud800 <rcpt@example.com>"),
        ("from", "\ud800 <sender@example.com>"),
    ],
)
def test_lone_surrogates_are_400_not_500(client, sql, field, value, mail):
    # A JSON "\ud800" escape decodes to a lone surrogate, which UTF-8 cannot encode.
    assert_error(client.post("/mail", json={**mail, field: value}), 400, field)
    assert count_rows(sql) == 0


def test_json_array_body(client, sql, mail):
    assert_error(client.post("/mail", json=[mail]), 400, "body")
    assert count_rows(sql) == 0


def test_invalid_utf8_json(client):
    response = client.post(
        "/mail", data=b'{"subject": "\xff\xfe"}', content_type="application/json"
    )
    assert_error(response, 400, "body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_unsupported_content_type(client, content_type, mail):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/mail", data=json.dumps(mail), headers=headers)
    assert_error(response, 415, "Content-Type")


# --- Sizes, methods and URLs ----------------------------------------------------------------


@pytest.fixture
def small_client(settings, app):
    """A client of an app whose request body limit is 1 KiB (in the test's transaction)."""
    application = create_app({**settings, "MAX_CONTENT_LENGTH": 1024})
    yield application.test_client()
    with application.app_context():
        from models import db

        db.engine.dispose()


def test_json_body_over_the_limit_is_413(small_client, sql, mail):
    response = small_client.post("/mail", json={**mail, "text": "x" * 4096})
    assert "1024 bytes" in assert_error(response, 413, "body")["message"]
    assert count_rows(sql) == 0


def test_form_body_over_the_limit_is_413(small_client, sql, mail):
    assert_error(small_client.post("/mail", data={**mail, "text": "x" * 4096}), 413, "body")
    response = small_client.post(
        "/mail", data={**mail, "text": "x" * 4096}, content_type="multipart/form-data"
    )
    assert_error(response, 413, "body")
    assert count_rows(sql) == 0


def test_body_under_the_limit_is_accepted(small_client, mail):
    assert small_client.post("/mail", json=mail).status_code == 202


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", "/mail"),
        ("PUT", "/mail"),
        ("PATCH", "/mail"),
        ("PUT", "/mail/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/mail/00000000-0000-0000-0000-000000000000"),
        ("POST", "/mail/00000000-0000-0000-0000-000000000000"),
    ],
)
def test_wrong_method_is_405(client, method, path, mail):
    response = client.open(path, method=method, json=mail)
    assert_error(response, 405, "method")
    assert "Allow" in response.headers


@pytest.mark.parametrize("path", ["/nope", "/mail/", "/mails", "/mail/x/y", "/administrator"])
def test_unknown_url_is_404_json(client, path, mail):
    assert_error(client.get(path), 404, "url")
    assert_error(client.post(path, json=mail), 404, "url")


def test_unexpected_errors_are_json_without_a_traceback(app, client):
    def explode():
        raise RuntimeError("secret internals")

    app.add_url_rule("/explode", view_func=explode)
    body = assert_error(client.get("/explode"), 500)
    assert "secret" not in json.dumps(body) and "Traceback" not in json.dumps(body)


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


# --- The database is down -------------------------------------------------------------------


@pytest.fixture
def offline_client(settings):
    """A client of an app whose database is a closed port."""
    application = create_app(
        {**settings, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "DB_CONNECT_TIMEOUT": 1}
    )
    return application.test_client()


@pytest.mark.parametrize(
    "method, path",
    [("POST", "/mail"), ("GET", f"/mail/{uuid.uuid4()}"), ("GET", "/health")],
    ids=["POST /mail", "GET /mail/<id>", "GET /health"],
)
def test_database_down_is_503_with_retry_after(offline_client, method, path, mail):
    started = time.monotonic()
    response = offline_client.open(path, method=method, json=mail)
    assert time.monotonic() - started < 5
    assert_error(response, 503, "database")
    assert int(response.headers["Retry-After"]) > 0


def test_database_down_still_validates_first(offline_client, mail):
    assert_error(offline_client.post("/mail", json={**mail, "to": "nope"}), 400, "to")
