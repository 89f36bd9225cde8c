"""Migrations 0016 (``audit_log``) and 0017 (test mail out of the status counts) go up, down
and up again, and the status counts are recounted each way."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text


def state(url):
    """Whether audit_log exists, and the status counts as the ledger sums them."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    text("SELECT status, sum(n) FROM email_status_count GROUP BY status")
                ).all()
            )
        return inspect(engine).has_table("audit_log"), counts
    finally:
        engine.dispose()


def test_0016_and_0017_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0015") as (url, migrations):
        engine = create_engine(url)
        with engine.begin() as conn:
            for test in ("false", "true"):
                conn.execute(
                    text(
                        "INSERT INTO email (id, from_address, to_address, subject, text, status, "
                        f"attempts, test) VALUES (gen_random_uuid(), 'a@example.com', "
                        f"ARRAY['b@example.com'], 'Hi', 'x', 'queued', 0, {test})"
                    )
                )
        engine.dispose()
        assert state(url) == (False, {"queued": 2})
        upgrade(directory=migrations)
        assert state(url) == (True, {"queued": 1})
        downgrade(directory=migrations, revision="0015")
        assert state(url) == (False, {"queued": 2})
        upgrade(directory=migrations)
        assert state(url) == (True, {"queued": 1})
