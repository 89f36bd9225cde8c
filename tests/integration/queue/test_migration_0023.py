"""Migration 0023 (the outbox's due index in the claim's order) goes up, down one step and up
again; the claim then walks the index in order instead of sorting every due webhook."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect


def due_index(url):
    """The columns of ``ix_webhook_outbox_due``."""
    engine = create_engine(url)
    try:
        indexes = inspect(engine).get_indexes("webhook_outbox")
        return next(
            index["column_names"] for index in indexes if index["name"] == "ix_webhook_outbox_due"
        )
    finally:
        engine.dispose()


def test_0023_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0020") as (url, migrations):
        assert due_index(url) == ["next_attempt_at"]
        upgrade(directory=migrations, revision="0023")
        assert due_index(url) == ["next_attempt_at", "id"]
        downgrade(directory=migrations, revision="-1")
        assert due_index(url) == ["next_attempt_at"]
        upgrade(directory=migrations, revision="0023")
        assert due_index(url) == ["next_attempt_at", "id"]
