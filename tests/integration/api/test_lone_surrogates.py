"""A lone surrogate in any text of any endpoint is a 400 naming the field, never a 500 (issue 19,
item 11). JSON is how one gets in ("\\ud800", or the bytes ED A0 80, which json.loads decodes
too): no UTF-8 text holds one, so neither PostgreSQL nor a provider could take it."""

import json

import pytest
from helpers import sample_mail
from signed import mailgun_body, sendgrid_event, sendgrid_request

LONE = "\ud800"
MUST = "Must be valid Unicode (no lone surrogates)"

# (what to change in a valid mail, the field the 400 names)
MAIL_FIELDS = [
    ({"from": f"S{LONE} <s@example.com>"}, "from"),
    ({"to": ["r@example.com", f"r{LONE}@example.com"]}, "to[1]"),
    ({"cc": f"c{LONE}@example.com"}, "cc"),
    ({"bcc": f"b{LONE}@example.com"}, "bcc"),
    ({"reply_to": f"R{LONE} <r@example.com>"}, "reply_to"),
    ({"subject": f"Hi{LONE}"}, "subject"),
    ({"text": f"x{LONE}"}, "text"),
    ({"html": f"<p>{LONE}</p>"}, "html"),
    ({"tags": ["ok", f"t{LONE}"]}, "tags[1]"),
    ({"metadata": {"note": f"n{LONE}"}}, "metadata.note"),
    ({"metadata": {f"k{LONE}": "v"}}, "metadata.k\\ud800"),
    ({"headers": {"X-Campaign": f"v{LONE}"}}, "headers.X-Campaign"),
    ({"headers": {f"X-{LONE}": "v"}}, "headers.X-\\ud800"),
    (
        {"attachments": [{"filename": f"a{LONE}.pdf", "content": "JVBERg=="}]},
        "attachments[0].filename",
    ),
    (
        {"attachments": [{"filename": "a.pdf", "content_type": f"x/{LONE}", "content": ""}]},
        "attachments[0].content_type",
    ),
    ({"attachments": [{"filename": "a.pdf", "content": f"JVBE{LONE}"}]}, "attachments[0].content"),
    ({"send_at": f"2030-01-01T00:00:00{LONE}"}, "send_at"),
    ({f"x{LONE}": "unknown field"}, "x\\ud800"),
]


def count(sql, table="email"):
    """How many rows ``table`` holds."""
    return sql(f"SELECT count(*) AS n FROM {table}")[0]["n"]


def assert_names(response, field):
    """A JSON 400 whose errors name ``field`` as holding a lone surrogate."""
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert {"field": field, "message": MUST} in [
        {"field": error["field"], "message": error["message"]} for error in body["errors"]
    ], body


@pytest.mark.parametrize("change, field", MAIL_FIELDS, ids=[field for _, field in MAIL_FIELDS])
def test_post_mail_json_names_the_field(client, sql, change, field):
    assert_names(client.post("/mail", json=sample_mail(**change)), field)
    assert count(sql) == 0


def test_the_raw_bytes_of_a_surrogate_are_refused_too(client, sql):
    body = json.dumps(sample_mail(subject="@@")).encode().replace(b"@@", b"\xed\xa0\x80")
    assert_names(client.post("/mail", data=body, content_type="application/json"), "subject")
    assert count(sql) == 0


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("metadata", {"note": f"n{LONE}"}, "metadata.note"),
        ("headers", {"X-Campaign": f"v{LONE}"}, "headers.X-Campaign"),
    ],
)
def test_post_mail_form_names_the_field_of_its_json_objects(client, sql, key, value, field):
    form = {**sample_mail(), key: json.dumps(value)}
    assert_names(client.post("/mail", data=form), field)
    assert count(sql) == 0


def test_a_form_field_of_json_nested_too_deeply_is_a_400(client, sql):
    form = {**sample_mail(), "metadata": "[" * 100_000 + "]" * 100_000}
    response = client.post("/mail", data=form)
    assert response.status_code == 400
    assert response.get_json()["errors"] == [
        {"field": "metadata", "message": "Must be a JSON object"}
    ]


def test_post_mail_batch_names_the_item_and_field(client, sql):
    items = [sample_mail(), sample_mail(tags=[f"t{LONE}"]), sample_mail(subject=f"s{LONE}")]
    response = client.post("/mail/batch", json=items)
    assert_names(response, "[1].tags[0]")
    assert_names(response, "[2].subject")
    assert [error["index"] for error in response.get_json()["errors"]] == [1, 2]
    assert count(sql) == 0


@pytest.mark.parametrize(
    "change, field",
    [
        ({"detail": f"d{LONE}"}, "detail"),
        ({"address": f"a{LONE}@example.com"}, "address"),
        ({"reason": f"manual{LONE}"}, "reason"),
        ({f"x{LONE}": 1}, "x\\ud800"),
    ],
)
def test_post_suppressions_names_the_field(client, sql, change, field):
    data = {"address": "a@example.com", "reason": "manual", **change}
    assert_names(client.post("/suppressions", json=data), field)
    assert count(sql, "suppression") == 0


def test_a_signed_sendgrid_event_names_the_field(client, sql):
    events = [sendgrid_event("bounce", "ann@example.com", reason=f"r{LONE}")]
    raw, headers = sendgrid_request(events)
    response = client.post("/webhooks/sendgrid", data=raw, headers=headers)
    assert_names(response, "[0].reason")
    assert count(sql, "delivery_event") == 0


def test_a_signed_mailgun_event_names_the_field(client, sql):
    body = mailgun_body("failed", "ann@example.com", severity="permanent", reason=f"r{LONE}")
    response = client.post("/webhooks/mailgun", json=body)
    assert_names(response, "event-data.reason")
    assert count(sql, "delivery_event") == 0


@pytest.mark.parametrize(
    "method, url",
    [
        ("GET", "/mail?tag=%ED%A0%80"),
        ("GET", "/mail?from=%ED%A0%80"),
        ("GET", "/mail/%ED%A0%80"),
        ("DELETE", "/suppressions/%ED%A0%80@example.com"),
        ("GET", "/suppressions?reason=%ED%A0%80"),
        ("GET", "/admin/email/?search=%ED%A0%80"),
    ],
)
def test_urls_with_the_bytes_of_a_surrogate_are_no_500(client, method, url):
    # Werkzeug decodes URLs leniently (no surrogate comes out), so none of these is a 500.
    assert client.open(url, method=method).status_code < 500


@pytest.mark.parametrize(
    "path, fields, table",
    [
        (
            "/admin/email/new/",
            b"from_address=s%40example.com&to=r%40example.com&subject=Hi%ED%A0%80&text=x"
            b"&cc=&bcc=&reply_to=&html=",
            "email",
        ),
        (
            "/admin/suppression/new/",
            b"address=a%40example.com&reason=manual&detail=d%ED%A0%80",
            "suppression",
        ),
    ],
)
def test_admin_forms_with_the_bytes_of_a_surrogate_are_no_500(client, sql, path, fields, table):
    # Werkzeug decodes a form's bytes with U+FFFD for what is not UTF-8: no surrogate comes out.
    page = client.get(path).get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    body = b"csrf_token=" + token.encode() + b"&" + fields
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500
    assert "\\ud800" not in json.dumps(sql(f"SELECT * FROM {table}"), default=str)


def test_a_multipart_file_name_with_the_bytes_of_a_surrogate_is_no_500(client, sql):
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="from"\r\n\r\na@example.com\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="to"\r\n\r\nb@example.com\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="subject"\r\n\r\nHi\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\nx\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="attachment"; filename="a\xed\xa0\x80"'
        b"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--XyZ--\r\n"
    )
    response = client.post("/mail", data=body, content_type="multipart/form-data; boundary=XyZ")
    assert response.status_code < 500, response.get_data(as_text=True)


def test_ordinary_unicode_and_escapes_still_pass(client):
    mail = sample_mail(subject="Zo\u00eb \U0001f600", tags=["\u00e9t\u00e9"])
    raw = json.dumps(mail)  # ensure_ascii: the emoji as the escaped pair \ud83d\ude00
    assert "\\ud83d\\ude00" in raw
    response = client.post("/mail", data=raw, content_type="application/json")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["subject"] == "Zo\u00eb \U0001f600"
