"""``webhook_token`` and ``auth_failure``: two memories every API process shares.

``webhook_token``: each Mailgun signature token that passed, with a digest of the event it
signed, until its signature is too old to be taken anyway (``WEBHOOK_MAX_AGE`` after its
timestamp). Mailgun's HMAC covers the timestamp and the token, not the event, so a token kept
only when its event matched a mail could be posted again with any other event. A token seen
again with the same event is Mailgun's retry (answered as a repeat); with another event it is
refused (``mailer.queue.webhook_tokens``).

``auth_failure``: failed authentications per client address (wrong API key, admin password or
metrics token), counted in a window, and until when the client is refused. Only a failure
writes here; a valid key reads nothing (``mailer.queue.auth_failures``).

Each table's ``expires_at`` says when a row means nothing any more: each write deletes a few
such rows through its index, so neither table outgrows its window.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "webhook_token",
        sa.Column("token", sa.Text(), primary_key=True),
        sa.Column("event_digest", sa.String(64), nullable=False),  # sha256, hex
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_token_expires", "webhook_token", ["expires_at"])
    op.create_table(
        "auth_failure",
        sa.Column("client", sa.Text(), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_ends", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_failure_expires", "auth_failure", ["expires_at"])


def downgrade():
    op.drop_table("auth_failure")
    op.drop_table("webhook_token")
