"""Tenants and stored API keys: ``api_key`` and ``key_usage``; the tenant of mail, suppression
entries, idempotency keys and templates.

A tenant is a name on the rows it owns (no table of its own): ``default`` for everything stored
before, and for ``API_KEYS``. An API key is stored as its SHA-256 only (``key_hash``), with the
readable start and last four characters that the lists show. ``key_usage`` holds one row per
key with limits: its token bucket (``rate_limit``) and its count of the current UTC day
(``daily_quota``), shared by every API process.

``email`` gains ``tenant`` (its default only changes the catalogue: no rewrite), the key that
submitted it and ``test``; tenant-leading indexes keep a tenant's ``GET /mail`` on a keyset
index. A suppression entry belongs to a tenant, or to ``*`` (every tenant): the entries added
by hand before this migration applied to all mail, so they become ``*``. Template names are
unique per tenant among the live ones.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
DEFAULT_TENANT = sa.text("'default'")


def upgrade():
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("last4", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("allowed_from_domains", postgresql.ARRAY(sa.Text()), nullable=False,
                  server_default="{}"),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("daily_quota", sa.Integer(), nullable=True),
        sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    # GET /keys: a tenant's keys (or every key), newest first, keyset-paged by (created_at, id).
    op.create_index("ix_api_key_listing", "api_key",
                    ["tenant", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_api_key_created", "api_key",
                    [sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.Uuid(), sa.ForeignKey("api_key.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("day_count", sa.Integer(), nullable=False, server_default="0"),
    )

    op.add_column("email", sa.Column("tenant", sa.Text(), nullable=False,
                                     server_default=DEFAULT_TENANT))
    op.add_column("email", sa.Column("api_key_id", sa.Uuid(), nullable=True))
    op.add_column("email", sa.Column("test", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.create_index("ix_email_tenant_created", "email",
                    ["tenant", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_email_tenant_status_created", "email",
                    ["tenant", "status", sa.text("created_at DESC"), sa.text("id DESC")])

    op.add_column("suppression", sa.Column("tenant", sa.Text(), nullable=False,
                                           server_default=DEFAULT_TENANT))
    op.execute("UPDATE suppression SET tenant = '*' WHERE email_id IS NULL")
    op.drop_constraint("suppression_pkey", "suppression", type_="primary")
    op.create_primary_key("suppression_pkey", "suppression", ["tenant", "address"])
    op.create_index("ix_suppression_tenant_created", "suppression",
                    ["tenant", sa.text("created_at DESC"), "address"])

    op.add_column("idempotency_key", sa.Column("tenant", sa.Text(), nullable=False,
                                               server_default=DEFAULT_TENANT))

    op.add_column("template", sa.Column("tenant", sa.Text(), nullable=False,
                                        server_default=DEFAULT_TENANT))
    op.drop_index("ix_template_name", table_name="template")
    op.create_index("ix_template_name", "template", ["tenant", "name"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_index("ix_template_listing", table_name="template")
    op.create_index("ix_template_listing", "template",
                    ["tenant", sa.text("created_at DESC"), "name"],
                    postgresql_where=sa.text("deleted_at IS NULL"))


def downgrade():
    op.drop_index("ix_template_listing", table_name="template")
    op.create_index("ix_template_listing", "template", [sa.text("created_at DESC"), "name"],
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_index("ix_template_name", table_name="template")
    # Two tenants' live templates of one name cannot both stay live under one name.
    op.execute(
        "UPDATE template SET deleted_at = now() WHERE deleted_at IS NULL AND id NOT IN "
        "(SELECT min(id) FROM template WHERE deleted_at IS NULL GROUP BY name)"
    )
    op.create_index("ix_template_name", "template", ["name"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_column("template", "tenant")

    op.drop_column("idempotency_key", "tenant")

    op.drop_index("ix_suppression_tenant_created", table_name="suppression")
    op.drop_constraint("suppression_pkey", "suppression", type_="primary")
    op.execute(
        "DELETE FROM suppression AS s USING suppression AS other "
        "WHERE s.address = other.address AND s.tenant > other.tenant"
    )
    op.create_primary_key("suppression_pkey", "suppression", ["address"])
    op.drop_column("suppression", "tenant")

    op.drop_index("ix_email_tenant_status_created", table_name="email")
    op.drop_index("ix_email_tenant_created", table_name="email")
    op.drop_column("email", "test")
    op.drop_column("email", "api_key_id")
    op.drop_column("email", "tenant")
    op.drop_table("key_usage")
    op.drop_table("api_key")
