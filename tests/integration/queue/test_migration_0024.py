"""Migration 0024 (the admin's two partial indexes) goes up, down one step and up again, each
index with its predicate."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

INDEXES = ("ix_email_backoff", "ix_email_test")


def indexes(url):
    """The indexes of 0024 that exist, with their predicates."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) "
                    "FROM pg_index WHERE indrelid = 'email'::regclass"
                )
            )
            return {name: predicate for name, predicate in rows if name in INDEXES}
    finally:
        engine.dispose()


def test_0024_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0020") as (url, migrations):
        upgrade(directory=migrations, revision="0024")
        found = indexes(url)
        assert set(found) == set(INDEXES)
        assert "'queued'" in found["ix_email_backoff"] and found["ix_email_test"] == "test"
        downgrade(directory=migrations, revision="-1")
        assert indexes(url) == {}
        engine = create_engine(url)
        try:
            assert {index["name"] for index in inspect(engine).get_indexes("email")} >= {
                "ix_email_due",
                "ix_email_status_updated",
            }
        finally:
            engine.dispose()
        upgrade(directory=migrations, revision="0024")
        assert set(indexes(url)) == set(INDEXES)
