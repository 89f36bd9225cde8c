"""``GET /mail/<id>`` answers from ``reads.mail_detail`` (one statement) through the
``Mail`` shape: the mail as ``POST /mail`` answered it, then with its attachments, attempts,
recipients and events in their order."""

import base64

import pytest

from mailer.queue import reads
from mailer.shapes.mail import Mail
from models import db

ANN, JOE = "ann@example.com", "j@example.com"


def detail_dict(mail_id):
    """The mail as ``GET /mail/<id>`` builds it."""
    return Mail.dump(reads.mail_detail(db.session.connection(), mail_id))


def post(client, mail, **fields):
    """Submit a mail; its id."""
    response = client.post("/mail", json={**mail, **fields})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_new_mail_is_shown_as_post_answered_it(app, client, mail):
    answer = client.post(
        "/mail",
        json={
            **mail,
            "cc": ["c@example.com"],
            "tags": ["t1"],
            "metadata": {"k": "v"},
            "headers": {"X-Campaign": "spring"},
            "attachments": [
                {"filename": "a.txt", "content": "aGk="},
                {"filename": "logo.png", "content": "aGk=", "content_id": "logo@example.com"},
            ],
        },
    )
    assert answer.status_code == 202
    mail_id = answer.get_json()["id"]
    assert [item["content_id"] for item in answer.get_json()["attachments"]] == [
        None,
        "logo@example.com",
    ]
    with app.app_context():
        assert detail_dict(mail_id) == answer.get_json()
        assert detail_dict(mail_id)["attempt_log"] == []
    assert client.get(f"/mail/{mail_id}").get_data() == answer.get_data()


def test_a_mail_with_attachments_attempts_recipients_and_events(app, client, mail, sql):
    files = [
        {
            "filename": name,
            "content_type": "text/plain",
            "content": base64.b64encode(name.encode() * 3).decode(),
        }
        for name in ("b", "a")
    ]
    mail_id = post(client, mail, to=[ANN, f'"Doe, Joe" <{JOE}>'], attachments=files)
    sql(
        "UPDATE email SET status = 'sent', provider = 'mailgun', attempts = 3, "
        'result = \'[{"provider": "mailgun"}]\', sent_at = now() WHERE id = :id',
        id=mail_id,
    )
    for number, response in ((1, '{"message": "busy"}'), (2, '"text é"'), (3, None)):
        sql(
            "INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, "
            "response, error, duration_ms, actor, created_at) VALUES (:id, :n, 'mailgun', "
            "'failed', 503, CAST(:response AS json), 'busy', 12, NULL, "
            "now() - make_interval(secs => :n))",
            id=mail_id,
            n=number,
            response=response,
        )
    sql(
        "INSERT INTO recipient (email_id, address, status, reason) "
        "VALUES (:id, :address, 'bounced', '550 unknown')",
        id=mail_id,
        address=JOE,
    )
    for key, seconds in (("e1", 5), ("e2", 1), ("e3", 5)):  # e1 and e3 at the same time
        sql(
            "INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event, "
            "recipient, occurred_at, payload) VALUES (:id, 'mailgun', :key, 'delivered', :key, "
            ":address, now() - make_interval(secs => :s), '{}')",
            id=mail_id,
            key=key,
            address=ANN,
            s=seconds,
        )
    with app.app_context():
        shown = detail_dict(mail_id)
    assert shown["attachments"] == [
        {"filename": name, "content_type": "text/plain", "size": 3, "content_id": None}
        for name in ("b", "a")
    ]
    assert [attempt["number"] for attempt in shown["attempt_log"]] == [1, 2, 3]
    assert [attempt["response"] for attempt in shown["attempt_log"]] == [
        {"message": "busy"},
        "text é",
        None,
    ]
    assert {key: value for key, value in shown["attempt_log"][0].items() if key != "at"} == {
        "number": 1,
        "provider": "mailgun",
        "outcome": "failed",
        "status_code": 503,
        "response": {"message": "busy"},
        "error": "busy",
        "duration_ms": 12,
        "actor": None,
    }
    assert shown["recipients"][1]["reason"] == "550 unknown"
    assert shown["recipients"][1]["updated_at"] is not None
    assert shown["result"] == [{"provider": "mailgun"}]
    assert shown["events"][0]["type"] == "delivered"
    assert shown["events"][0]["recipient"] == ANN
    assert [(row["address"], row["status"]) for row in shown["recipients"]] == [
        (ANN, "sent"),
        (JOE, "bounced"),
    ]
    assert [event["event"] for event in shown["events"]] == ["e1", "e3", "e2"]
    assert client.get(f"/mail/{mail_id}").get_json() == shown


def test_an_unknown_mail_is_none(app):
    with app.app_context():
        unknown = "00000000-0000-0000-0000-000000000000"
        assert reads.mail_detail(db.session.connection(), unknown) is None


@pytest.mark.committed
def test_reads_outside_a_transaction_give_the_connection_back_as_it_was(app, client, mail):
    """``GET /mail`` and ``GET /mail/<id>`` read in autocommit (``database.transaction``); the
    pool must get the connection back in transactions, or the next request's writes would not
    be atomic."""
    mail_id = post(client, mail)
    assert client.get("/mail").get_json()["mails"][0]["id"] == mail_id
    assert client.get(f"/mail/{mail_id}").get_json()["id"] == mail_id
    assert client.get("/mail/00000000-0000-0000-0000-000000000000").status_code == 404
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
    assert client.post("/mail", json=mail).status_code == 202
