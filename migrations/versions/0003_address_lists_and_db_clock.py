"""Recipients as lists, the database's clock for timestamps, and a record of operator retries.

- ``to_address``, ``cc`` and ``bcc`` become ``text[]``: a display name may now hold a comma
  (``"Doe, John" <john@example.com>``), which a comma-joined string could not keep apart.
  Existing rows are split on their ``", "`` joins, which is exact: such names were refused.
- ``created_at``, ``updated_at`` and ``next_attempt_at`` default to the database's ``now()``,
  so no process's clock decides when a mail was made or is due.
- ``retried_at`` and ``attempts_at_retry`` let an operator's retry give a mail a fresh budget
  of attempts and age while its attempt count keeps growing.
- ``delivery_attempt.actor`` names who did an operator's action recorded in the attempt log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIST_COLUMNS = ("to_address", "cc", "bcc")


def upgrade():
    for column in LIST_COLUMNS:
        op.execute(f"ALTER TABLE email ALTER COLUMN {column} TYPE text[] USING "
                   f"COALESCE(regexp_split_to_array(NULLIF({column}, ''), ',\\s*'), '{{}}')")
        op.execute(f"ALTER TABLE email ALTER COLUMN {column} SET DEFAULT '{{}}'")
        op.execute(f"ALTER TABLE email ALTER COLUMN {column} SET NOT NULL")
    for column in ("created_at", "updated_at", "next_attempt_at"):
        op.alter_column("email", column, server_default=sa.text("now()"))
    op.add_column("email", sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("email", sa.Column("attempts_at_retry", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.add_column("delivery_attempt", sa.Column("actor", sa.String(128), nullable=True))
    op.alter_column("delivery_attempt", "created_at", server_default=sa.text("now()"))
    op.alter_column("provider_state", "updated_at", server_default=sa.text("now()"))


def downgrade():
    op.alter_column("provider_state", "updated_at", server_default=None)
    op.alter_column("delivery_attempt", "created_at", server_default=None)
    op.drop_column("delivery_attempt", "actor")
    op.drop_column("email", "attempts_at_retry")
    op.drop_column("email", "retried_at")
    for column in ("created_at", "updated_at", "next_attempt_at"):
        op.alter_column("email", column, server_default=None)
    for column in LIST_COLUMNS:
        op.execute(f"ALTER TABLE email ALTER COLUMN {column} DROP DEFAULT")
        op.alter_column("email", column, type_=sa.Text(), postgresql_using=
                        f"array_to_string({column}, ', ')",
                        existing_type=postgresql.ARRAY(sa.Text()))
    op.alter_column("email", "cc", nullable=True)
    op.alter_column("email", "bcc", nullable=True)
