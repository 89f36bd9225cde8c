"""Every status change of a mail raises its client webhook, whatever event caused it: a mail
that the roll-up settles as delivered because its last recipient unsubscribed gets its
``mail.delivered``, as one whose last recipient was delivered does."""

import uuid

import pytest
from signed import mailgun_body

from mailer.events.signatures import new_webhook_secret
from mailer.queue import lease
from mailer.worker.delivery import Decision

ANN, BOB = "ann@example.com", "bob@example.com"


@pytest.fixture
def settings(settings):
    """The test settings with client webhooks on (their outbox is what the tests read)."""
    return {
        **settings,
        "WEBHOOK_URL": "http://127.0.0.1:9/hooks",
        "WEBHOOK_SECRET": new_webhook_secret(),
    }


@pytest.fixture
def sent(client, sql, mail):
    """A mail as the worker leaves it once Mailgun took it (every recipient sent); its id."""

    def make(to=ANN, cc=()):
        mail_id = client.post("/mail", json={**mail, "to": to, "cc": list(cc)}).get_json()["id"]
        sql("UPDATE email SET status = 'sent' WHERE id = :id", id=uuid.UUID(mail_id))
        sql(
            "INSERT INTO recipient (email_id, address, status) "
            "SELECT id, unnest(recipients), 'sent' FROM email WHERE id = :id",
            id=uuid.UUID(mail_id),
        )
        return mail_id

    return make


def webhooks(sql, mail_id):
    """The mail's webhooks in the outbox, oldest first: (type, recipient, status in the body)."""
    rows = sql(
        "SELECT event_type, payload FROM webhook_outbox WHERE email_id = :id ORDER BY id",
        id=uuid.UUID(mail_id),
    )
    return [
        (row["event_type"], row["payload"]["data"]["recipient"], row["payload"]["data"]["status"])
        for row in rows
    ]


def status(sql, mail_id):
    """The mail's status."""
    return sql("SELECT status FROM email WHERE id = :id", id=uuid.UUID(mail_id))[0]["status"]


def test_an_unsubscribe_that_settles_a_mail_raises_mail_delivered(client, sent, sql):
    mail_id = sent()
    answer = client.post("/webhooks/mailgun", json=mailgun_body("unsubscribed", ANN, mail_id))
    assert answer.status_code == 200
    assert status(sql, mail_id) == "delivered"
    assert webhooks(sql, mail_id) == [("mail.delivered", None, "delivered")]


def test_the_last_recipient_unsubscribing_raises_it_after_the_others_were_delivered(
    client, sent, sql
):
    mail_id = sent(to=ANN, cc=[BOB])
    client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN, mail_id))
    assert status(sql, mail_id) == "sent"
    client.post("/webhooks/mailgun", json=mailgun_body("unsubscribed", BOB, mail_id))
    assert status(sql, mail_id) == "delivered"
    assert webhooks(sql, mail_id) == [
        ("mail.delivered", ANN, "sent"),
        ("mail.delivered", None, "delivered"),
    ]


def test_a_delivery_that_settles_a_mail_raises_one_webhook_not_two(client, sent, sql):
    mail_id = sent()
    client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN, mail_id))
    assert webhooks(sql, mail_id) == [("mail.delivered", ANN, "delivered")]


def test_a_send_recorded_after_its_recipient_unsubscribed_raises_both_changes(
    app, client, mail, sql
):
    mail_id = uuid.UUID(client.post("/mail", json=mail).get_json()["id"])
    # Claimed by worker w; the provider's unsubscribe came before w recorded the send.
    sql("UPDATE email SET status = 'sending', locked_by = 'w' WHERE id = :id", id=mail_id)
    sql(
        "INSERT INTO recipient (email_id, address, status) VALUES (:id, :address, 'unsubscribed')",
        id=mail_id,
        address=mail["to"],
    )
    with app.app_context():
        lease.finish(
            app.extensions["test_connection"],
            "w",
            [Decision(mail_id, "sent", 1, "mailgun", "<m@mg.example.com>")],
            [],
            app.extensions["webhooks"],
        )
    assert status(sql, str(mail_id)) == "delivered"
    assert webhooks(sql, str(mail_id)) == [
        ("mail.sent", None, "delivered"),
        ("mail.delivered", None, "delivered"),
    ]
