"""A shared send-rate cap per provider: a token bucket every worker draws from.

``tokens`` refill at the provider's ``PROVIDER_RATE_LIMITS`` rate by the database's clock, up
to a small burst; a worker takes a block of them per claim in one statement. ``window`` and
``granted``/``last_granted`` count what was taken in the current and the previous second, for
the admin and ``/health`` to show the current rate.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "provider_rate",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False, server_default="0"),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("clock_timestamp()")),
        sa.Column("window", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("date_trunc('second', clock_timestamp())")),
        sa.Column("granted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_granted", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade():
    op.drop_table("provider_rate")
