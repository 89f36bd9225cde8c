"""``template`` and ``template_version``: templates stored on the server; and the template a
mail was rendered from.

A template is a name (unique among the templates not deleted, so a deleted name may be taken
again) and its versions, numbered from 1 and never changed (``mailer.queue.templates``). A
deleted template keeps its rows (``deleted_at``): mail already rendered from it stays as it was,
and its versions can still be read by id.

``email.template`` and ``email.template_version`` record what a mail was rendered from (NULL: the
client rendered it). ``ix_email_template`` serves ``GET /mail?template=`` in the listing's order,
and holds only templated mail.

Revision ID: 0014
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "template",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_template_name", "template", ["name"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    # GET /templates: the live templates, newest first, keyset-paged by (created_at, name).
    op.create_index("ix_template_listing", "template",
                    [sa.text("created_at DESC"), "name"],
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "template_version",
        sa.Column("template_id", sa.BigInteger(),
                  sa.ForeignKey("template.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version"),
        sa.CheckConstraint("version >= 1", name="ck_template_version_from_1"),
    )
    # Adding nullable columns without a default only changes the catalogue: no rewrite.
    op.add_column("email", sa.Column("template", sa.Text(), nullable=True))
    op.add_column("email", sa.Column("template_version", sa.Integer(), nullable=True))
    op.create_index("ix_email_template", "email",
                    ["template", sa.text("created_at DESC"), sa.text("id DESC")],
                    postgresql_where=sa.text("template IS NOT NULL"))


def downgrade():
    op.drop_index("ix_email_template", table_name="email")
    op.drop_column("email", "template_version")
    op.drop_column("email", "template")
    op.drop_table("template_version")
    op.drop_table("template")
