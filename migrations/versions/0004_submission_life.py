"""The whole life of a submission: scheduling, cancel, idempotency, richer messages, listing.

- Two statuses: ``scheduled`` (held until ``send_at``) and ``cancelled``. The claim takes
  ``queued`` and due ``scheduled`` mail alike, so the due index covers both.
- ``headers`` and ``metadata`` (JSONB objects), ``tags`` (text[]), ``send_at``.
- ``recipients``: the bare addresses of to, cc and bcc, domain lower-cased, for exact look-ups
  (``GET /mail?to=``) through a GIN index; the display names stay in the address columns.
- ``attachment``: files in a table of their own, so that the queue table stays small; they are
  read only to send, and go with their mail (ON DELETE CASCADE).
- ``idempotency_key``: a client's key per scope (API key), the request's fingerprint and the
  answer it got, kept for IDEMPOTENCY_TTL.
- Listing indexes: newest first by (created_at, id), also per status, and tags by GIN.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONB_OBJECT = sa.text("'{}'::jsonb")
EMPTY_ARRAY = sa.text("'{}'")


def upgrade():
    op.add_column("email", sa.Column("headers", postgresql.JSONB(), nullable=False,
                                     server_default=JSONB_OBJECT))
    op.add_column("email", sa.Column("metadata", postgresql.JSONB(), nullable=False,
                                     server_default=JSONB_OBJECT))
    op.add_column("email", sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False,
                                     server_default=EMPTY_ARRAY))
    op.add_column("email", sa.Column("recipients", postgresql.ARRAY(sa.Text()), nullable=False,
                                     server_default=EMPTY_ARRAY))
    op.add_column("email", sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE email SET recipients = ARRAY(SELECT lower(substring(a from "
               "'<([^<>]*)>$|^([^<>]*)$')) FROM unnest(to_address || cc || bcc) AS a) "
               "WHERE recipients = '{}'")
    op.drop_index("ix_email_due", table_name="email")
    op.create_index("ix_email_due", "email", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('queued', 'scheduled')"))
    op.create_index("ix_email_created", "email", [sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_email_status_created", "email",
                    ["status", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_email_recipients", "email", ["recipients"], postgresql_using="gin")
    op.create_index("ix_email_tags", "email", ["tags"], postgresql_using="gin")
    op.create_table(
        "attachment",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("email_id", sa.Uuid(), sa.ForeignKey("email.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_attachment_email_id", "attachment", ["email_id"])
    op.create_table(
        "idempotency_key",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])


def downgrade():
    op.drop_table("idempotency_key")
    op.drop_table("attachment")
    for name in ("ix_email_tags", "ix_email_recipients", "ix_email_status_created",
                 "ix_email_created"):
        op.drop_index(name, table_name="email")
    op.drop_index("ix_email_due", table_name="email")
    op.create_index("ix_email_due", "email", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'queued'"))
    for column in ("send_at", "recipients", "tags", "metadata", "headers"):
        op.drop_column("email", column)
