"""The client webhooks' claim: the oldest pending webhook of each mail and endpoint only, found
by walking the due index in order, whatever the backlog behind it."""

import pytest
from sqlalchemy import create_engine

from mailer.queue import webhooks

pytestmark = pytest.mark.committed


def backlog(sql, mails):
    """``mails`` sent mails with two pending webhooks each (mail.sent, then mail.delivered), as
    a backlog of the outbox; statistics gathered."""
    sql(
        "INSERT INTO email (id, status, from_address, to_address, subject, text, attempts) "
        "SELECT gen_random_uuid(), 'sent', 'a@example.com', ARRAY['r' || g || '@example.com'], "
        "'Hi', 'Hello', 1 FROM generate_series(1, :mails) AS g",
        mails=mails,
    )
    sql(
        "INSERT INTO webhook_outbox (message_id, event_type, email_id, payload, tenant) "
        "SELECT 'msg_' || md5(email.id::text || kind), kind, email.id, '{}', 'default' "
        "FROM email, (VALUES (1, 'mail.sent'), (2, 'mail.delivered')) AS v(n, kind) "
        "ORDER BY v.n, email.id"
    )
    sql("ANALYZE webhook_outbox")


def test_the_claim_takes_each_mails_oldest_webhook_by_walking_the_due_index(app, sql, database_url):
    backlog(sql, 3000)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            params = {"limit": 32, "lease": 60.0, "settings": True, "endpoints": True}
            shown = "\n".join(
                row[0] for row in conn.exec_driver_sql("EXPLAIN " + webhooks.SQL.claim, params)
            )
            claimed = webhooks.claim(conn, 100, 60.0)
    finally:
        engine.dispose()
    assert "ix_webhook_outbox_due" in shown, shown
    assert " Sort " not in shown and "Hash Anti Join" not in shown, shown
    kinds = sql(
        "SELECT event_type, count(DISTINCT email_id) AS mails, count(*) AS n FROM webhook_outbox "
        "WHERE id = ANY(:ids) GROUP BY event_type",
        ids=[row["id"] for row in claimed],
    )
    assert kinds == [{"event_type": "mail.sent", "mails": 100, "n": 100}]
