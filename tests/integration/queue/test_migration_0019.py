"""Migration 0019 (``email.source``) goes up, down one step and up again; mail stored before it
reads as ``api``."""

import uuid

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text


def schema(url):
    """The column and index 0019 adds, where they exist."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        columns = {column["name"] for column in found.get_columns("email")}
        indexes = {index["name"] for index in found.get_indexes("email")}
        return {"column": "source" in columns, "index": "ix_email_source" in indexes}
    finally:
        engine.dispose()


def store_mail(url):
    """A mail stored as the code before 0019 stored it (no source); its id."""
    mail_id = uuid.uuid4()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO email (id, from_address, to_address, subject, text, status, "
                    "attempts) VALUES (:id, 'a@example.com', ARRAY['b@example.com'], 'Hi', "
                    "'Hello', 'queued', 0)"
                ),
                {"id": mail_id},
            )
    finally:
        engine.dispose()
    return mail_id


def source_of(url, mail_id):
    """The stored source of mail ``mail_id``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT source FROM email WHERE id = :id")
            return conn.execute(query, {"id": mail_id}).scalar()
    finally:
        engine.dispose()


def test_0019_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0018") as (url, migrations):
        mail_id = store_mail(url)
        upgrade(directory=migrations, revision="0019")
        assert schema(url) == {"column": True, "index": True}
        assert source_of(url, mail_id) == "api"
        downgrade(directory=migrations, revision="-1")
        assert schema(url) == {"column": False, "index": False}
        upgrade(directory=migrations, revision="0019")
        assert schema(url) == {"column": True, "index": True}
