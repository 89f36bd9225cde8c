"""Migration 0021 (received mail) goes up, down one step and up again; the outbox's webhooks of
mail are kept through both, those of received mail go down with it."""

import uuid

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text


def run(url, statement, **params):
    """Run ``statement`` on the database at ``url``, committed; its rows, if any."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None
    finally:
        engine.dispose()


def schema(url):
    """The tables 0021 adds, and whether the outbox has ``inbound_id``."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables = {"inbound", "inbound_attachment"} & set(found.get_table_names())
        columns = {column["name"] for column in found.get_columns("webhook_outbox")}
        return tables, "inbound_id" in columns
    finally:
        engine.dispose()


def test_0021_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0020") as (url, migrations):
        mail_id = uuid.uuid4()
        run(
            url,
            "INSERT INTO email (id, from_address, to_address, subject, status, attempts) "
            "VALUES (:id, 'a@example.com', ARRAY['b@example.com'], 'Hi', 'sent', 0)",
            id=mail_id,
        )
        run(
            url,
            "INSERT INTO webhook_outbox (message_id, event_type, email_id, payload) "
            "VALUES ('msg_mail', 'mail.sent', :id, '{}')",
            id=mail_id,
        )
        upgrade(directory=migrations, revision="0021")
        assert schema(url) == ({"inbound", "inbound_attachment"}, True)
        [(inbound_id,)] = run(
            url,
            "INSERT INTO inbound (source, subject, in_reply_to_mail_id) "
            "VALUES ('smtp', 'Re: Hi', :id) RETURNING id",
            id=mail_id,
        )
        run(
            url,
            "INSERT INTO webhook_outbox (message_id, event_type, inbound_id, payload) "
            "VALUES ('msg_in', 'mail.received', :id, '{}')",
            id=inbound_id,
        )
        downgrade(directory=migrations, revision="-1")
        assert schema(url) == (set(), False)
        assert run(url, "SELECT message_id FROM webhook_outbox") == [("msg_mail",)]
        upgrade(directory=migrations, revision="0021")
        assert schema(url) == ({"inbound", "inbound_attachment"}, True)
