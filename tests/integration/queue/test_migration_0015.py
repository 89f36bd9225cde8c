"""Migration 0015 (stored keys; the tenant of mail, suppressions, idempotency keys and
templates) goes up, down to 0014 and up again; an entry added by hand before it applies to
every tenant after it."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text


def schema(url):
    """What 0015 adds, where it exists."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            "tables": sorted(t for t in ("api_key", "key_usage") if found.has_table(t)),
            "email": sorted(
                {c["name"] for c in found.get_columns("email")} & {"tenant", "api_key_id", "test"}
            ),
            "suppression_key": found.get_pk_constraint("suppression")["constrained_columns"],
        }
    finally:
        engine.dispose()


def test_0015_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0014") as (url, migrations):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO suppression (address, reason) VALUES ('a@example.com', 'manual')")
            )
        upgrade(directory=migrations, revision="0015")
        expected = {
            "tables": ["api_key", "key_usage"],
            "email": ["api_key_id", "tenant", "test"],
            "suppression_key": ["tenant", "address"],
        }
        assert schema(url) == expected
        with engine.connect() as conn:
            assert conn.execute(text("SELECT tenant FROM suppression")).scalar() == "*"
        downgrade(directory=migrations, revision="0014")
        assert schema(url) == {"tables": [], "email": [], "suppression_key": ["address"]}
        upgrade(directory=migrations, revision="0015")
        assert schema(url) == expected
        engine.dispose()
