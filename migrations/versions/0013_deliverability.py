"""``deliverability`` and ``steering``: the guard that steers away from a blocked path.

``deliverability``: the providers' delivery outcomes per provider, recipient domain and minute
(delivered, bounced, deferred, complained), added to as the events are recorded
(``mailer.queue.events``). Its key leads with the minute, so that the worker's look at the
last ``DELIVERABILITY_WINDOW`` seconds and the purge of old minutes each read one range.

``steering``: the (provider, recipient domain) pairs steered away from now, shared by every
worker: since when, and the figures of the last look (``mailer.queue.steering``).

Revision ID: 0013
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "deliverability",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("bounced", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deferred", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("complained", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("minute", "provider", "domain"),
    )
    op.create_table(
        "steering",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("failure_rate", sa.Float(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "domain"),
    )


def downgrade():
    op.drop_table("steering")
    op.drop_table("deliverability")
