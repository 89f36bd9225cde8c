"""Migration 0023 (the outbox's due index in the claim's order) goes up, down one step and up
again; the index of a mail's webhooks stays as it was."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect


def indexes(url):
    """The columns of ``ix_webhook_outbox_due`` and ``ix_webhook_outbox_email_id``."""
    engine = create_engine(url)
    try:
        found = inspect(engine).get_indexes("webhook_outbox")
        return {
            index["name"].removeprefix("ix_webhook_outbox_"): index["column_names"]
            for index in found
            if index["name"] in ("ix_webhook_outbox_due", "ix_webhook_outbox_email_id")
        }
    finally:
        engine.dispose()


BEFORE = {"due": ["next_attempt_at"], "email_id": ["email_id"]}
AFTER = {"due": ["next_attempt_at", "id"], "email_id": ["email_id"]}


def test_0023_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0020") as (url, migrations):
        assert indexes(url) == BEFORE
        upgrade(directory=migrations, revision="0023")
        assert indexes(url) == AFTER
        downgrade(directory=migrations, revision="-1")
        assert indexes(url) == BEFORE
        upgrade(directory=migrations, revision="0023")
        assert indexes(url) == AFTER
