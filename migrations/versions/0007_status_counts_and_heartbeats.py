"""Operators' numbers: mail by status kept by the database, and a heartbeat row per worker.

- ``email_status_count``: an append-only ledger of changes to the number of mails in each
  status. Three statement-level triggers on ``email`` (INSERT, UPDATE, DELETE) read the
  statement's transition tables and append one row per status that the statement changed,
  with the net change (``+n`` / ``-n``). The count of a status is the sum of its rows.
  Appending, never updating, is the point: concurrent inserts of mail never wait on one hot
  counter row (a single-row counter would serialise every ``POST /mail`` on its row lock).
  Every writer's rows commit or roll back with its own statement, so the sum is exact.
  ``mailqueue.fold_status_counts`` folds the ledger back to one row per status now and then
  (the worker does it with its heartbeat), so reading it stays a scan of a few dozen rows
  however many mails the table holds. A TRUNCATE of ``email`` empties it.
  The migration locks ``email`` against writes while it creates the triggers and counts the
  existing rows once, so the ledger starts exact.
- ``worker_heartbeat``: one row per running worker (name, host, pid, when it started, when it
  was last seen by the database's clock, sends in flight, mails sent and failed), written by
  the worker every few seconds in one statement and deleted when it stops cleanly. A worker
  that died leaves a row whose ``last_seen`` stops moving.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOW = sa.text("now()")

# One function per event: a trigger with transition tables may have only one event.
# Each appends the net change per status of its statement; a status the statement did not
# change (an UPDATE of other columns, say) appends nothing.
FUNCTIONS = {
    "email_status_count_insert": """
        INSERT INTO email_status_count (status, n)
        SELECT status, count(*) FROM new_rows GROUP BY status
    """,
    "email_status_count_update": """
        INSERT INTO email_status_count (status, n)
        SELECT status, sum(n) FROM (
            SELECT status, 1 AS n FROM new_rows
            UNION ALL
            SELECT status, -1 AS n FROM old_rows
        ) AS changes
        GROUP BY status HAVING sum(n) <> 0
    """,
    "email_status_count_delete": """
        INSERT INTO email_status_count (status, n)
        SELECT status, -count(*) FROM old_rows GROUP BY status
    """,
}
REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}


def upgrade():
    op.create_table(
        "email_status_count",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    # Folded every few seconds: its dead rows must go as fast as they come.
    op.execute("ALTER TABLE email_status_count SET (autovacuum_vacuum_scale_factor = 0, "
               "autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.5)")
    # No write to email may slip between the count below and the triggers.
    op.execute("LOCK TABLE email IN SHARE ROW EXCLUSIVE MODE")
    for event, referencing in REFERENCING.items():
        function = f"email_status_count_{event}"
        op.execute(f"""
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {FUNCTIONS[function].strip()};
                RETURN NULL;
            END;
            $$
        """)
        op.execute(f"""
            CREATE TRIGGER {function} AFTER {event.upper()} ON email
            REFERENCING {referencing}
            FOR EACH STATEMENT EXECUTE FUNCTION {function}()
        """)
    op.execute("""
        CREATE FUNCTION email_status_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM email_status_count;
            RETURN NULL;
        END;
        $$
    """)
    op.execute("""
        CREATE TRIGGER email_status_count_truncate AFTER TRUNCATE ON email
        FOR EACH STATEMENT EXECUTE FUNCTION email_status_count_truncate()
    """)
    op.execute("INSERT INTO email_status_count (status, n) "
               "SELECT status, count(*) FROM email GROUP BY status")

    op.create_table(
        "worker_heartbeat",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("in_flight", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sent", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_worker_heartbeat_last_seen", "worker_heartbeat", ["last_seen"])


def downgrade():
    op.drop_table("worker_heartbeat")
    for event in (*REFERENCING, "truncate"):
        op.execute(f"DROP TRIGGER email_status_count_{event} ON email")
        op.execute(f"DROP FUNCTION email_status_count_{event}()")
    op.drop_table("email_status_count")
