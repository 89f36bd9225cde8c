"""Migration 0011 (``webhook_token``, ``auth_failure``) goes up, down and up again."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect


def tables_and_indexes(url):
    """{table: [index names]} of the two tables that 0011 adds, where they exist."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            table: sorted(index["name"] for index in found.get_indexes(table))
            for table in ("webhook_token", "auth_failure")
            if found.has_table(table)
        }
    finally:
        engine.dispose()


def test_0011_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0010") as (url, migrations):
        assert tables_and_indexes(url) == {}
        upgrade(directory=migrations)
        expected = {
            "webhook_token": ["ix_webhook_token_expires"],
            "auth_failure": ["ix_auth_failure_expires"],
        }
        assert tables_and_indexes(url) == expected
        downgrade(directory=migrations, revision="0010")
        assert tables_and_indexes(url) == {}
        upgrade(directory=migrations)
        assert tables_and_indexes(url) == expected
