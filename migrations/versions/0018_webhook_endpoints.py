"""Client webhook endpoints per tenant: ``webhook_endpoint``, and the endpoint and tenant of each
webhook in the outbox.

A tenant's endpoints each have a URL, the event types they take (empty: every one) and a
secret of their own (``whsec_``...), which signs what they are sent and so must be kept as it
is. A deleted endpoint keeps its row (``deleted_at``, its secret blanked) so that the webhooks
sent to it still name it in the admin.

``webhook_outbox`` gains ``endpoint_id`` (NULL: the settings' ``WEBHOOK_URL``, the ``default``
tenant's endpoint, as every row before this migration) and ``tenant``; both defaults only
change the catalogue, no rewrite.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade():
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    # GET /webhook-endpoints, keyset-paged by (created_at, id); and the outbox's fan-out, which
    # looks up a mail's tenant's live endpoints.
    op.create_index("ix_webhook_endpoint_listing", "webhook_endpoint",
                    ["tenant", sa.text("created_at DESC"), sa.text("id DESC")],
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.add_column("webhook_outbox", sa.Column(
        "endpoint_id", sa.Uuid(), sa.ForeignKey("webhook_endpoint.id"), nullable=True))
    op.add_column("webhook_outbox", sa.Column("tenant", sa.Text(), nullable=False,
                                              server_default=sa.text("'default'")))
    # The admin's deliveries of one endpoint, newest first.
    op.create_index("ix_webhook_outbox_endpoint", "webhook_outbox",
                    ["endpoint_id", sa.text("id DESC")],
                    postgresql_where=sa.text("endpoint_id IS NOT NULL"))


def downgrade():
    op.execute("DELETE FROM webhook_outbox WHERE endpoint_id IS NOT NULL")
    op.drop_index("ix_webhook_outbox_endpoint", table_name="webhook_outbox")
    op.drop_column("webhook_outbox", "tenant")
    op.drop_column("webhook_outbox", "endpoint_id")
    op.drop_table("webhook_endpoint")
