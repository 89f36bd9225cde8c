"""Operators' hands on the service: a provider's breaker held open by hand, the log of such
actions, and the index of the dashboard's "sent per minute".

- ``provider_state.held_by`` / ``held_at`` / ``held_reason``: an operator opened this breaker by
  hand (planned maintenance). Workers skip the provider until an operator closes it; no probe,
  no success of a send still in flight, closes it (``mailer.worker.circuit``).
- ``provider_action``: who opened or closed which breaker by hand, when and why.
- ``ix_email_sent_at``: the mails sent in the last hour, by minute, without reading the table;
  partial (only mail that was sent), so queued mail costs nothing to insert.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("provider_state", sa.Column("held_by", sa.String(128), nullable=True))
    op.add_column("provider_state", sa.Column("held_at", sa.DateTime(timezone=True),
                                              nullable=True))
    op.add_column("provider_state", sa.Column("held_reason", sa.Text(), nullable=True))
    op.create_table(
        "provider_action",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
    )
    op.create_index("ix_email_sent_at", "email", ["sent_at"],
                    postgresql_where=sa.text("sent_at IS NOT NULL"))


def downgrade():
    op.drop_index("ix_email_sent_at", table_name="email")
    op.drop_table("provider_action")
    op.drop_column("provider_state", "held_reason")
    op.drop_column("provider_state", "held_at")
    op.drop_column("provider_state", "held_by")
