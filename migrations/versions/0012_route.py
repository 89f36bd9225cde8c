"""``email.route``: the route a mail's latest delivery took (``PROVIDER_ROUTES``).

The name of the route: the recipient domain that matched one (``hotmail.com``), or ``default``
for a mail that went through ``PROVIDERS``; NULL until the worker first plans a delivery of the
mail. A nullable column without a default: adding it rewrites nothing.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("email", sa.Column("route", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("email", "route")
