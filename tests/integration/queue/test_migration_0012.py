"""Migration 0012 (``email.route``) goes up, down and up again, keeping the mail."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text


def email_columns(url):
    """The names of the ``email`` table's columns."""
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns("email")}
    finally:
        engine.dispose()


def test_0012_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0011") as (url, migrations):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO email (id, status, from_address, subject, attempts) "
                    "VALUES (gen_random_uuid(), 'queued', 'a@example.com', 'Hi', 0)"
                )
            )
        assert "route" not in email_columns(url)
        upgrade(directory=migrations)
        assert "route" in email_columns(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT route FROM email")).all() == [(None,)]
        downgrade(directory=migrations, revision="0011")
        assert "route" not in email_columns(url)
        upgrade(directory=migrations)
        assert "route" in email_columns(url)
        engine.dispose()
