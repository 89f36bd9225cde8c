"""``attachment.content_id``: the Content-ID of an inline part, which the mail's HTML refers to
as ``cid:<id>`` (an inline image), kept without its angle brackets; NULL for an attached file.

Every attachment stored before this revision is an attached file, so NULL is their value too;
a nullable column without a default rewrites no row.

Revision ID: 0022
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("attachment", sa.Column("content_id", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("attachment", "content_id")
