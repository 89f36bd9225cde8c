"""The outbox's due index holds its claim's whole order, ``(next_attempt_at, id)``.

The client webhooks' claim takes only the oldest pending webhook of each mail and endpoint, the
longest due first (``mailer/queue/sql/webhooks.sql``, ``claim``). With the index on
``next_attempt_at`` alone, the claim's order could not be read from it: PostgreSQL sorted every
due webhook, checking each against its mail's others, before taking the first few, so a claim
cost as much as the backlog it was meant to work off. With ``id`` in the index, the claim walks
it in order and stops once it has its batch. Same rows (``status = 'pending'``), one column more.

Revision ID: 0023
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade():
    op.drop_index("ix_webhook_outbox_due", table_name="webhook_outbox")
    op.create_index(
        "ix_webhook_outbox_due", "webhook_outbox", ["next_attempt_at", "id"], postgresql_where=PENDING
    )


def downgrade():
    op.drop_index("ix_webhook_outbox_due", table_name="webhook_outbox")
    op.create_index(
        "ix_webhook_outbox_due", "webhook_outbox", ["next_attempt_at"], postgresql_where=PENDING
    )
