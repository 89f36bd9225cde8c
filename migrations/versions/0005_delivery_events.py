"""After the hand-off: recipients, the providers' events, the suppression list, client webhooks.

- ``recipient``: one row per recipient of a mail once a provider took it (or once it was
  suppressed), with its status (sent, deferred, delivered, bounced, unsubscribed, complained,
  suppressed) and the reason.
- ``delivery_event``: every event a provider reported, unique per provider on its own id of the
  report (Mailgun's signature token, SendGrid's sg_event_id), so a repeat is stored once; the
  payload is cut to a bounded size.
- ``suppression``: addresses mail does not go to, with the reason, the mail that caused it and,
  for bounces, when the entry expires.
- ``webhook_outbox`` and ``webhook_attempt``: client webhooks written in the transaction of the
  status change they report, and each call made to deliver them.
- The new mail statuses (delivered, bounced, complained, suppressed) fit ``email.status``.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def email_id(nullable=False, ondelete="CASCADE", **kwargs):
    """A column referring to a mail."""
    return sa.Column("email_id", sa.Uuid(), sa.ForeignKey("email.id", ondelete=ondelete),
                     nullable=nullable, **kwargs)


def upgrade():
    op.create_table(
        "recipient",
        email_id(primary_key=True),
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "delivery_event",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        email_id(),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("provider_event", sa.String(32), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_delivery_event_dedup", "delivery_event", ["provider", "dedup_key"],
                    unique=True)
    op.create_index("ix_delivery_event_email", "delivery_event", ["email_id", "occurred_at"])
    op.create_table(
        "suppression",
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        email_id(nullable=True, ondelete="SET NULL"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_suppression_created", "suppression",
                    [sa.text("created_at DESC"), "address"])
    op.create_index("ix_suppression_expires", "suppression", ["expires_at"])
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        email_id(),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=NOW),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_outbox_email_id", "webhook_outbox", ["email_id"])
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.BigInteger(),
                  sa.ForeignKey("webhook_outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("ix_webhook_attempt_webhook_id", "webhook_attempt", ["webhook_id"])


def downgrade():
    op.drop_table("webhook_attempt")
    op.drop_table("webhook_outbox")
    op.drop_table("suppression")
    op.drop_table("delivery_event")
    op.drop_table("recipient")
    # Mail that went past "sent" goes back to it; suppressed mail was never sent.
    op.execute("UPDATE email SET status = 'sent' "
               "WHERE status IN ('delivered', 'bounced', 'complained')")
    op.execute("UPDATE email SET status = 'failed', last_error = 'suppressed' "
               "WHERE status = 'suppressed'")
