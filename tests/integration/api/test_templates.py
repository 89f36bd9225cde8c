"""Templates: stored in versions, read, listed, deleted, previewed; mail rendered from them when
it is submitted (``POST /mail``, ``POST /mail/batch``)."""

import base64
import time

import pytest
from helpers import sample_mail

RECEIPT = {
    "name": "receipt",
    "subject": "Order {{ order_id }} for {{ first_name }}",
    "text": "Hi {{ first_name }}, thanks for order {{ order_id }}.",
    "html": "<p>Hi {{ first_name }}</p>",
    "description": "The receipt",
}
PEOPLE = {"first_name": "Ann", "order_id": "42"}


def create(client, **fields):
    """POST /templates of RECEIPT with ``fields`` replaced; the answer."""
    return client.post("/templates", json={**RECEIPT, **fields})


def templated(**fields):
    """A mail request from the receipt template, with ``fields`` replaced."""
    mail = sample_mail(template="receipt", variables=dict(PEOPLE))
    for field in ("subject", "text"):
        mail.pop(field)
    return {**mail, **fields}


def test_create_answers_version_1_and_a_second_create_is_409(client):
    response = create(client)
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "receipt" and body["version"] == 1 and body["versions"] == [1]
    assert body["subject"] == RECEIPT["subject"] and body["created_by"] == "api:local"
    assert response.headers["Location"] == "/templates/receipt/versions/1"
    again = create(client, subject="Other")
    assert again.status_code == 409
    assert again.get_json()["errors"][0]["field"] == "name"


def test_versions_are_immutable_and_numbered(client):
    create(client)
    second = client.put("/templates/receipt", json={**RECEIPT, "subject": "Second {{ x }}"})
    assert second.status_code == 201
    assert second.get_json()["version"] == 2 and second.get_json()["versions"] == [1, 2]
    latest = client.get("/templates/receipt").get_json()
    assert latest["version"] == 2 and latest["subject"] == "Second {{ x }}"
    first = client.get("/templates/receipt/versions/1").get_json()
    assert first["version"] == 1 and first["subject"] == RECEIPT["subject"]
    assert client.get("/templates/receipt/versions/3").status_code == 404
    assert client.put("/templates/nothing", json={**RECEIPT, "name": None}).status_code == 404
    renamed = client.put("/templates/receipt", json={**RECEIPT, "name": "other"})
    assert renamed.status_code == 400 and renamed.get_json()["errors"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"subject": "Hi {{ name"}, "subject", "line 1"),
        ({"html": "<p>\n{% if %}</p>"}, "html", "line 2"),
        ({"text": "{% for x in y %}"}, "text", "line 1"),
        ({"name": "bad name!"}, "name", "letters"),
        ({"name": "x" * 101}, "name", "letters"),
        ({"subject": "two\nlines"}, "subject", ""),
        ({"text": None, "html": None}, "text", "text or an html"),
        ({"colour": "red"}, "colour", "Unknown"),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(client, fields, field, words):
    response = create(client, **fields)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert client.get("/templates/receipt").status_code in (404, 200)


def test_delete_hides_the_template_but_not_mail_rendered_from_it(client):
    create(client)
    sent = client.post("/mail", json=templated())
    assert sent.status_code == 202
    assert client.delete("/templates/receipt").status_code == 204
    assert client.get("/templates/receipt").status_code == 404
    assert client.delete("/templates/receipt").status_code == 404
    refused = client.post("/mail", json=templated())
    assert refused.status_code == 400
    assert refused.get_json()["errors"][0]["field"] == "template"
    mail = client.get(f"/mail/{sent.get_json()['id']}").get_json()
    assert mail["subject"] == "Order 42 for Ann" and mail["template"] == "receipt"
    assert create(client).get_json()["version"] == 1  # the name may be taken again


def test_listing_is_keyset_paged_and_searchable(client):
    for index in range(5):
        assert create(client, name=f"t-{index}").status_code == 201
    create(client, name="other")
    seen, cursor = [], None
    while True:
        query = {"limit": 2, "search": "t-", **({"cursor": cursor} if cursor else {})}
        page = client.get("/templates", query_string=query).get_json()
        seen += [item["name"] for item in page["templates"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"t-{index}" for index in range(5)]
    assert len(seen) == 5
    assert client.get("/templates", query_string={"colour": "x"}).status_code == 400


def test_preview_renders_and_stores_nothing(client, sql):
    create(client)
    before = sql("SELECT count(*) AS n FROM email")[0]["n"]
    response = client.post("/templates/receipt/render", json={"variables": PEOPLE})
    assert response.status_code == 200
    assert response.get_json() == {
        "success": True,
        "subject": "Order 42 for Ann",
        "text": "Hi Ann, thanks for order 42.",
        "html": "<p>Hi Ann</p>",
    }
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == before
    missing = client.post("/templates/receipt/render", json={"variables": {"first_name": "A"}})
    assert missing.status_code == 400
    assert missing.get_json()["errors"] == [
        {"field": "variables.order_id", "message": "Used by the template, not given"}
    ]
    assert client.post("/templates/receipt/render", json={"version": 9}).status_code == 404


@pytest.mark.parametrize(
    ("html", "words"),
    [
        ("{{ ''.__class__ }}", "Not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "Not allowed"),
        ("{% for i in range(10**9) %}x{% endfor %}", "range()"),
        ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}", "loops"),
        ("{{ 'x' * 10**9 }}", "Too large"),
        ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "more than"),
        ("{% include 'settings.cfg' %}", "no loader"),
        ("{{ 1 / 0 }}", "division by zero"),
    ],
)
def test_the_sandbox_refuses_quickly(client, html, words):
    create(client, html=html)
    started = time.monotonic()
    response = client.post("/templates/receipt/render", json={"variables": PEOPLE})
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "html" and words in error["message"], error


def test_html_is_escaped_and_subject_and_text_are_not(client):
    create(client)
    evil = {"first_name": "<script>alert(1)</script>", "order_id": "&"}
    body = client.post("/templates/receipt/render", json={"variables": evil}).get_json()
    assert body["html"] == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert body["text"] == "Hi <script>alert(1)</script>, thanks for order &."
    assert body["subject"] == "Order & for <script>alert(1)</script>"


def test_max_rendered_bytes_is_a_setting(app, client):
    create(client, html="{% for i in range(1000) %}0123456789{% endfor %}")
    app.config["MAX_RENDERED_BYTES"] = 5000
    response = client.post("/templates/receipt/render", json={"variables": PEOPLE})
    assert (
        response.status_code == 400 and "5,000 bytes" in response.get_json()["errors"][0]["message"]
    )
    app.config["MAX_RENDERED_BYTES"] = 20000
    assert client.post("/templates/receipt/render", json={"variables": PEOPLE}).status_code == 200


def test_mail_from_a_template_is_stored_rendered_and_filterable(client):
    create(client)
    response = client.post("/mail", json=templated())
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["subject"] == "Order 42 for Ann" and answer["html"] == "<p>Hi Ann</p>"
    assert answer["template"] == "receipt" and answer["template_version"] == 1
    client.put("/templates/receipt", json={**RECEIPT, "subject": "V2 {{ order_id }}"})
    old = client.post("/mail", json=templated(template_version=1)).get_json()
    assert old["subject"] == "Order 42 for Ann" and old["template_version"] == 1
    new = client.post("/mail", json=templated()).get_json()
    assert new["subject"] == "V2 42" and new["template_version"] == 2
    shown = client.get(f"/mail/{answer['id']}").get_json()
    assert {key: shown[key] for key in answer if key not in ("events",)} == {
        key: answer[key] for key in answer if key not in ("events",)
    }
    client.post("/mail", json=sample_mail())
    listed = client.get("/mail", query_string={"template": "receipt"}).get_json()
    assert {mail["id"] for mail in listed["mails"]} == {answer["id"], old["id"], new["id"]}
    assert {mail["template"] for mail in client.get("/mail").get_json()["mails"]} == {
        "receipt",
        None,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": "Hi"}, "subject"),
        ({"variables": ["a"]}, "variables"),
        ({"variables": {"first_name": "Ann"}}, "variables.order_id"),
        ({"template": "nothing"}, "template"),
        ({"template": "bad name"}, "template"),
        ({"template_version": 7}, "template_version"),
        ({"template_version": 0}, "template_version"),
        ({"variables": {**PEOPLE, "first_name": "A\nBcc: x@example.com"}}, "subject"),
        ({"variables": {**PEOPLE, "pad": "x" * 70_000}}, "variables"),
        ({"to": "not an address"}, "to"),
    ],
)
def test_a_bad_templated_mail_is_400_naming_the_field(client, fields, field, sql):
    create(client)
    response = client.post("/mail", json=templated(**fields))
    assert response.status_code == 400, response.get_json()
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


def test_a_templated_mail_with_attachments_too_large_is_413_like_a_plain_one(app, client, sql):
    create(client)
    app.config["MAX_ATTACHMENT_BYTES"] = 1000
    big = {"filename": "big.bin", "content": base64.b64encode(b"x" * 1001).decode()}
    response = client.post("/mail", json=templated(attachments=[big]))
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["errors"][0]["field"] == "attachments"
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


def test_a_form_gives_variables_as_json_text(client):
    create(client)
    form = {
        "from": "sender@example.com",
        "to": "rcpt@example.com",
        "template": "receipt",
        "template_version": "1",
        "variables": '{"first_name": "Ann", "order_id": "42"}',
    }
    response = client.post("/mail", data=form)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["subject"] == "Order 42 for Ann"
    bad = client.post("/mail", data={**form, "variables": "{not json"})
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "variables"


def test_templates_need_the_api_key(app, client):
    app.config["API_KEYS"] = ("secret-key",)
    assert client.get("/templates", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 401
    headers = {"Authorization": "Bearer secret-key"}
    response = client.get("/templates", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert response.status_code == 200


def test_a_version_past_the_database_s_integers_is_a_400_not_a_500(client):
    create(client)
    response = client.post("/mail", json=templated(template_version=2**85))
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "template_version"
    assert client.get(f"/templates/receipt/versions/{2**40}").status_code == 404
    preview = client.post("/templates/receipt/render", json={"version": 2**40})
    assert preview.status_code == 400 and preview.get_json()["errors"][0]["field"] == "version"
