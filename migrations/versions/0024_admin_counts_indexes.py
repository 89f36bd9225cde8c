"""Two partial indexes that let the admin count without reading the table.

- ``ix_email_backoff``: queued mail by its next attempt, the dashboard's "in backoff" (queued,
  next attempt later than now) and the list's filter of the same name, read from the index
  alone. The claim's ``ix_email_due`` also holds scheduled mail and not the status, so counting
  the backoff through it fetched every future mail's row to read its status.
- ``ix_email_test``: test mail by status. The mail list counts its pages from the status-count
  ledger (migration 0007), which holds live mail only (0017); the test mail is counted apart,
  through this index, which holds only test mail.

Revision ID: 0024
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_email_backoff",
        "email",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_email_test", "email", ["status"], postgresql_where=sa.text("test"))


def downgrade():
    op.drop_index("ix_email_test", table_name="email")
    op.drop_index("ix_email_backoff", table_name="email")
