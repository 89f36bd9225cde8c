"""POST /mail/batch: up to 1,000 mails in one request, stored all or none."""

import pytest
from helpers import mail_rows, sample_mail

# Rows are read back through connections of their own, so they must be committed.
pytestmark = pytest.mark.committed


def batch(count, **extra):
    """A list of ``count`` valid mails to distinct recipients."""
    return [sample_mail(to=f"rcpt{index}@example.com", **extra) for index in range(count)]


def test_batch_stores_every_mail_and_answers_their_ids(client, settings, sandbox, run_worker):
    response = client.post("/mail/batch", json=batch(250))
    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True and body["count"] == 250 and len(body["ids"]) == 250
    rows = mail_rows(settings["DATABASE_URL"])
    assert set(rows) == set(body["ids"])
    assert rows[body["ids"][7]]["to_address"] == ["rcpt7@example.com"]
    assert {row["status"] for row in rows.values()} == {"queued"}
    run_worker()
    assert len(sandbox.messages()) == 250


def test_batch_with_bad_items_stores_nothing_and_names_each(client, settings):
    mails = batch(5)
    mails[1]["to"] = "not-an-address"
    mails[3] = "a string"
    del mails[4]["subject"]
    response = client.post("/mail/batch", json=mails)
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False and "none was stored" in body["message"]
    assert {(error["index"], error["field"]) for error in body["errors"]} == {
        (1, "[1].to"), (3, "[3]"), (4, "[4].subject")}
    assert mail_rows(settings["DATABASE_URL"]) == {}


def test_batch_size_and_shape_limits(client, settings):
    for payload in ([], batch(1001), {"mails": batch(2)}):
        response = client.post("/mail/batch", json=payload)
        assert response.status_code == 400
        assert response.get_json()["errors"][0]["field"] == "body"
    response = client.post("/mail/batch", data="from=a@example.com",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert client.put("/mail/batch", json=[]).status_code == 405
    assert client.post("/mail/batch", json=batch(1000)).status_code == 202
    assert len(mail_rows(settings["DATABASE_URL"])) == 1000


def test_batch_needs_an_api_key_when_keys_are_set(app, client, settings):
    app.config["API_KEYS"] = ("k1",)
    assert client.post("/mail/batch", json=batch(1)).status_code == 401
    response = client.post("/mail/batch", json=batch(1), headers={"X-API-Key": "k1"})
    assert response.status_code == 202
