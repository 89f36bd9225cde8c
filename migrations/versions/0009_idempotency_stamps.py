"""A kept answer's values that the database set: one statement stores a submission.

``POST /mail`` stores the mail, its attachments and its ``Idempotency-Key`` in one statement,
so the key is written before that statement's ``now()`` is known to the API. The key keeps
the answer without what the database set (``response``) and, beside it, what the database set
for the mail: ``mail_created_at``, ``mail_status`` and ``mail_next_attempt_at``. A replay puts
them back in (``mailer.api.resources.stamp_mail``), as the first answer did. Keys kept by earlier code
hold the whole answer and no stamps, and replay as they are.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("idempotency_key", sa.Column("mail_created_at", sa.DateTime(timezone=True),
                                               nullable=True))
    op.add_column("idempotency_key", sa.Column("mail_status", sa.String(16), nullable=True))
    op.add_column("idempotency_key", sa.Column("mail_next_attempt_at",
                                               sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("idempotency_key", "mail_next_attempt_at")
    op.drop_column("idempotency_key", "mail_status")
    op.drop_column("idempotency_key", "mail_created_at")
