"""The client webhooks' claim: the oldest pending webhook of each mail and endpoint only, found
by walking the due index in order and looking at each candidate's own mail's rows, whatever the
backlog behind it and however stale the statistics."""

import pytest
from sqlalchemy import create_engine

from mailer.queue import webhooks

pytestmark = pytest.mark.committed


def mails_with_webhooks(sql, mails, status):
    """``mails`` sent mails with two webhooks each (mail.sent, then mail.delivered) in
    ``status``."""
    sql(
        "INSERT INTO email (id, status, from_address, to_address, subject, text, attempts) "
        "SELECT gen_random_uuid(), 'sent', 'a@example.com', ARRAY['r' || g || '@example.com'], "
        "'Hi', 'Hello', 1 FROM generate_series(1, :mails) AS g",
        mails=mails,
    )
    sql(
        "INSERT INTO webhook_outbox (message_id, event_type, email_id, payload, tenant, status) "
        "SELECT 'msg_' || md5(email.id::text || kind), kind, email.id, '{}', 'default', :status "
        "FROM email, (VALUES (1, 'mail.sent'), (2, 'mail.delivered')) AS v(n, kind) "
        "WHERE NOT EXISTS (SELECT FROM webhook_outbox WHERE email_id = email.id) "
        "ORDER BY v.n, email.id",
        status=status,
    )


def explained(database_url, statement, params):
    """PostgreSQL's plan of ``statement``."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params)
            return "\n".join(row[0] for row in rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize("statistics", ["fresh", "stale"])
def test_the_claim_walks_the_due_index_and_looks_at_each_mails_own_rows(
    app, sql, database_url, statistics
):
    # Stale: the statistics were taken while every webhook was delivered (a table of history),
    # then a backlog came; fresh: they were taken with the backlog.
    mails_with_webhooks(sql, 1000, "delivered")
    if statistics == "stale":
        sql("ANALYZE webhook_outbox")
    mails_with_webhooks(sql, 3000, "pending")
    if statistics == "fresh":
        sql("ANALYZE webhook_outbox")
    params = {"limit": 32, "lease": 60.0, "settings": True, "endpoints": True}
    shown = explained(database_url, webhooks.SQL.claim, params)
    assert "Index Scan using ix_webhook_outbox_due on webhook_outbox outbox" in shown, shown
    assert "ix_webhook_outbox_email_id on webhook_outbox earlier" in shown, shown
    assert " Sort " not in shown and "Hash Anti Join" not in shown, shown


def test_the_claim_takes_only_each_mails_oldest_pending_webhook(app, sql, database_url):
    mails_with_webhooks(sql, 300, "pending")
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            claimed = webhooks.claim(conn, 1000, 60.0)
            again = webhooks.claim(conn, 1000, 60.0)
    finally:
        engine.dispose()
    kinds = sql(
        "SELECT event_type, count(DISTINCT email_id) AS mails, count(*) AS n FROM webhook_outbox "
        "WHERE id = ANY(:ids) GROUP BY event_type",
        ids=[row["id"] for row in claimed],
    )
    assert kinds == [{"event_type": "mail.sent", "mails": 300, "n": 300}]
    assert again == []  # the next of each mail waits for the one held
