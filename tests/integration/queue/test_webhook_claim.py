"""The client webhooks' claim: the oldest pending webhook of each mail and endpoint only, found
by walking the due index in order and looking at each candidate's own mail's rows; and the
record of posts, by their ids: whatever the backlog and however stale the statistics."""

import json

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
    """PostgreSQL's plan of ``statement``, in a transaction as the sender runs it."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            webhooks.by_index(conn)
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params)
            return "\n".join(row[0] for row in rows)
    finally:
        engine.dispose()


def results(sql):
    """What ``record`` takes for 32 posts of pending webhooks, half of them failed."""
    rows = sql("SELECT id FROM webhook_outbox WHERE status = 'pending' LIMIT 32")
    return json.dumps(
        [
            {
                "id": webhook_id,
                "ok": n % 2 == 0,
                "status_code": 503,
                "error": "down",
                "duration_ms": 5,
                "retry_in": 1.0,
            }
            for n, webhook_id in enumerate(row["id"] for row in rows)
        ]
    )


@pytest.mark.parametrize("statistics", ["fresh", "of history", "of an empty table"])
def test_the_claim_walks_the_due_index_and_looks_at_each_mails_own_rows(
    app, sql, database_url, statistics
):
    # The statistics taken with the backlog; or while every webhook was delivered (a table of
    # history), then a backlog came; or while the table was empty.
    if statistics == "of an empty table":
        sql("ANALYZE webhook_outbox")
    mails_with_webhooks(sql, 1000, "delivered")
    if statistics == "of history":
        sql("ANALYZE webhook_outbox")
    mails_with_webhooks(sql, 3000, "pending")
    if statistics == "fresh":
        sql("ANALYZE webhook_outbox")
    claim = {"limit": 32, "lease": 60.0, "settings": True, "endpoints": True}
    shown = explained(database_url, webhooks.SQL.claim, claim)
    assert "Index Scan using ix_webhook_outbox_due on webhook_outbox outbox" in shown, shown
    assert "Index Scan using ix_webhook_outbox_email_id on webhook_outbox earlier" in shown, shown
    assert "Sort" not in shown and "Hash" not in shown and "Bitmap" not in shown, shown
    record = {"results": results(sql), "max_age": 3600.0}
    shown = explained(database_url, webhooks.SQL.record, record)
    assert "Index Scan using webhook_outbox_pkey on webhook_outbox webhook" in shown, shown
    assert "Seq Scan" not in shown and "Bitmap" not in shown, shown


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
