"""``GET /mail/<id>`` answers from ``mailqueue.mail_detail`` (one statement) through
``Email.detail_dict``: exactly what the ORM's ``Email.to_dict`` gives for the same mail, with its
attachments, attempts, recipients and events in their order."""

import base64

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailer.queue import mailqueue
from models import Email, db

ANN, JOE = "ann@example.com", "j@example.com"


def orm_dict(mail_id):
    """The mail as the ORM object's ``to_dict`` shows it (as ``api.find_mail`` loads it)."""
    db.session.expire_all()
    query = (
        select(Email)
        .where(Email.id == mail_id)
        .options(
            selectinload(Email.attempt_log),
            selectinload(Email.recipient_rows),
            selectinload(Email.events),
        )
    )
    return db.session.scalars(query).one().to_dict()


def detail_dict(mail_id):
    """The mail as ``GET /mail/<id>`` now builds it."""
    cursor = db.session.connection().connection.cursor()
    return Email.detail_dict(mailqueue.mail_detail(cursor, mail_id))


def post(client, mail, **fields):
    """Submit a mail; its id."""
    response = client.post("/mail", json={**mail, **fields})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_new_mail_is_shown_as_the_orm_shows_it(app, client, mail):
    mail_id = post(
        client,
        mail,
        cc=["c@example.com"],
        tags=["t1"],
        metadata={"k": "v"},
        headers={"X-Campaign": "spring"},
    )
    with app.app_context():
        assert detail_dict(mail_id) == orm_dict(mail_id)
        assert detail_dict(mail_id)["attempt_log"] == []


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
        assert shown == orm_dict(mail_id)
    assert [item["filename"] for item in shown["attachments"]] == ["b", "a"]
    assert [attempt["number"] for attempt in shown["attempt_log"]] == [1, 2, 3]
    assert [(row["address"], row["status"]) for row in shown["recipients"]] == [
        (ANN, "sent"),
        (JOE, "bounced"),
    ]
    assert [event["event"] for event in shown["events"]] == ["e1", "e3", "e2"]
    assert client.get(f"/mail/{mail_id}").get_json() == shown


def test_an_unknown_mail_is_none(app):
    with app.app_context():
        assert (
            mailqueue.mail_detail(
                db.session.connection().connection.cursor(), "00000000-0000-0000-0000-000000000000"
            )
            is None
        )


@pytest.mark.committed
def test_reads_outside_a_transaction_give_the_connection_back_as_it_was(app, client, mail):
    """``GET /mail`` and ``GET /mail/<id>`` read in autocommit (``api.transaction``); the pool must
    get the connection back in transactions, or the next request's writes would not be atomic."""
    mail_id = post(client, mail)
    assert client.get("/mail").get_json()["mails"][0]["id"] == mail_id
    assert client.get(f"/mail/{mail_id}").get_json()["id"] == mail_id
    assert client.get("/mail/00000000-0000-0000-0000-000000000000").status_code == 404
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
    assert client.post("/mail", json=mail).status_code == 202
