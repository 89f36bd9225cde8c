"""The audit log: ``audit_log``, one row per change an operator or a managing key made.

Append-only: the application only inserts rows (``mailer.queue.audit.record``) and deletes
those older than ``AUDIT_RETENTION_DAYS`` (``mailer.queue.purge``); a trigger refuses any
``UPDATE``, so not even a bug of ours can rewrite what happened. ``at`` is the database's
clock. ``actor`` is the operator's name or the key's name, ``key_id`` the key's id (NULL for an
operator and for ``API_KEYS``); ``tenant`` is the tenant the change was made for (NULL: every
tenant, or none); ``summary`` is what changed, never a secret.

Two keyset indexes serve ``GET /audit`` and the admin page, newest first: every row, and one
tenant's.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade():
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("summary", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("client", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", [sa.text("at DESC"), sa.text("id DESC")])
    op.create_index("ix_audit_log_tenant_at", "audit_log",
                    ["tenant", sa.text("at DESC"), sa.text("id DESC")])
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: rows are never updated';
        END;
        $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """)


def downgrade():
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
