"""POST /mail/batch: up to 1,000 mails in one request, stored all or none."""

from datetime import datetime

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
        (1, "[1].to"),
        (3, "[3]"),
        (4, "[4].subject"),
    }
    assert mail_rows(settings["DATABASE_URL"]) == {}


def test_batch_size_and_shape_limits(client, settings):
    for payload in ([], batch(1001), {"mails": "not a list"}, {"defaults": {}}):
        response = client.post("/mail/batch", json=payload)
        assert response.status_code == 400
        assert response.get_json()["errors"][0]["field"] == "body"
    response = client.post(
        "/mail/batch", data="from=a@example.com", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert client.put("/mail/batch", json=[]).status_code == 405
    assert client.post("/mail/batch", json=batch(1000)).status_code == 202
    assert len(mail_rows(settings["DATABASE_URL"])) == 1000


def test_batch_needs_an_api_key_when_keys_are_set(app, client, settings):
    app.config["API_KEYS"] = ("k1",)
    assert client.post("/mail/batch", json=batch(1)).status_code == 401
    response = client.post("/mail/batch", json=batch(1), headers={"X-API-Key": "k1"})
    assert response.status_code == 202


# Mails whose values test how a batch's statement quotes them: its arrays of array literals and
# of JSON texts must store each value exactly as a single mail's VALUES list does.
AWKWARD = [
    sample_mail(
        to=['"Doe, John" <j@EXAMPLE.com>', "ann@example.com"],
        cc="c1@example.com, c2@x.org",
        bcc=["b@example.com"],
        reply_to='"Help \\"desk\\"" <help@example.com>',
    ),
    sample_mail(
        tags=['q"uote', "back\\slash", "brace{}", "comma,", "NULL", "tab\there", "ünï"],
        metadata={"k": 'v "q" \\ {x}'},
        headers={"X-Campaign": 'a "b" \\ c'},
    ),
    sample_mail(
        subject='Ünïcödé ✓ 😀 "quoted" \\ {braces}',
        text="line one\nline two\r\n\ttab",
        html='<p class="x">\\ {}</p>',
    ),
    sample_mail(to="ñoño@example.com", text=None, html="<b>only html</b>", tags="single"),
    sample_mail(send_at="2999-01-01T00:00:00+14:00"),
    sample_mail(send_at="2001-01-01T00:00:00Z", to="NULL@example.com"),
]
STAMPED = {"id", "created_at", "updated_at", "next_attempt_at"}  # differ from mail to mail


def test_batch_stores_every_value_as_a_single_mail_does(app, client, settings):
    app.config["MAX_SCHEDULE_DAYS"] = 400_000
    mails = AWKWARD * 3
    # The batch goes as one JSON array of mails, a single mail as a VALUES row.
    batch_ids = client.post("/mail/batch", json=mails).get_json()["ids"]
    single_ids = [client.post("/mail", json=mail).get_json()["id"] for mail in AWKWARD]
    rows = mail_rows(settings["DATABASE_URL"])
    for index, mail_id in enumerate(batch_ids):
        stored, single = rows[mail_id], rows[single_ids[index % len(AWKWARD)]]
        assert {key: value for key, value in stored.items() if key not in STAMPED} == {
            key: value for key, value in single.items() if key not in STAMPED
        }
        assert (stored["next_attempt_at"] == stored["created_at"]) == (
            single["next_attempt_at"] == single["created_at"]
        )
    scheduled = rows[batch_ids[4]]
    assert scheduled["status"] == "scheduled"
    assert scheduled["next_attempt_at"] == datetime.fromisoformat(AWKWARD[4]["send_at"])
    assert rows[batch_ids[1]]["tags"][5] == "tab\there"
