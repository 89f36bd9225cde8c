"""``email.source``: the way a mail came in, ``api`` (the REST API and the admin) or ``smtp``
(the SMTP door, ``smtp_service.py``).

Every mail stored before this revision came through the API, so the column's default ``api``
is their value too; PostgreSQL keeps a constant default in the catalogue, and adding the
column rewrites no row. ``ix_email_source`` serves ``GET /mail?source=`` in the listing's
order, and holds only the mail that did not come through the API: the few, which a filter
is for.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "email",
        sa.Column("source", sa.Text(), nullable=False, server_default=sa.text("'api'")),
    )
    op.create_check_constraint("ck_email_source", "email", "source IN ('api', 'smtp')")
    op.create_index(
        "ix_email_source",
        "email",
        ["source", sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("source <> 'api'"),
    )


def downgrade():
    op.drop_index("ix_email_source", table_name="email")
    op.drop_constraint("ck_email_source", "email", type_="check")
    op.drop_column("email", "source")
