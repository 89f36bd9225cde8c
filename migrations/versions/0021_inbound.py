"""Inbound mail: ``inbound`` (a received mail, whichever way it came in), its attachments in
``inbound_attachment``, and the client webhook ``mail.received`` in the outbox.

A record is written once per delivery: ``(source, delivery_id)`` is unique (a provider that
posts the same delivery again), and so is ``message_id`` where there is one (the same mail
again, by whatever way). ``received_at`` is the database's clock. ``recipients`` holds the bare
addresses of the envelope's recipients, To and Cc (the domain lower-cased), and ``sender`` the
bare From (else the envelope's sender), for ``GET /inbound?to=`` and ``?from=``. The To
header's addresses are ``to_address`` and the References ``reference_ids`` (``to`` and
``references`` are SQL's words).

``in_reply_to_mail_id`` is the mail of ours it answers, found by its In-Reply-To or References.
It is a foreign key ``ON DELETE SET NULL``: a reply has its own retention, counted from when it
came, so purging the mail it answers keeps the reply and only unlinks it (its ``in_reply_to``
and ``reference_ids`` still name the Message-ID). ``ix_inbound_reply`` serves the mail's replies,
``?in_reply_to=`` and that unlinking.

An attachment's bytes are kept as an outbound attachment's are (``bytea``); one past
``MAX_ATTACHMENTS`` or ``MAX_ATTACHMENT_BYTES`` is recorded without them (``dropped`` says why).

``webhook_outbox.email_id`` becomes nullable and ``inbound_id`` is added (``mail.received`` is
about a received mail, which may answer none of ours); a row has one or the other, and goes
with it (ON DELETE CASCADE, through ``ix_webhook_outbox_inbound``).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

TEXTS = postgresql.ARRAY(sa.Text())
EMPTY = sa.text("'{}'")


def upgrade():
    op.create_table(
        "inbound",
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=True),
        sa.Column("envelope_from", sa.Text(), nullable=True),
        sa.Column("envelope_to", TEXTS, nullable=False, server_default=EMPTY),
        sa.Column("from_address", sa.Text(), nullable=True),
        sa.Column("to_address", TEXTS, nullable=False, server_default=EMPTY),
        sa.Column("cc", TEXTS, nullable=False, server_default=EMPTY),
        sa.Column("subject", sa.Text(), nullable=False, server_default=""),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("stripped_text", sa.Text(), nullable=True),
        sa.Column("headers", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'[]'::jsonb")),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("in_reply_to", sa.Text(), nullable=True),
        sa.Column("reference_ids", TEXTS, nullable=False, server_default=EMPTY),
        sa.Column("spam_score", sa.Float(), nullable=True),
        sa.Column("spam_verdict", sa.Text(), nullable=True),
        sa.Column("auto_reply", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("in_reply_to_mail_id", sa.Uuid(),
                  sa.ForeignKey("email.id", ondelete="SET NULL"), nullable=True),
        sa.Column("tenant", sa.Text(), nullable=False, server_default=sa.text("'default'")),
        sa.Column("recipients", TEXTS, nullable=False, server_default=EMPTY),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.CheckConstraint("source IN ('mailgun', 'sendgrid', 'postmark', 'smtp')",
                           name="ck_inbound_source"),
    )
    # Replays: the same provider's delivery, or the same Message-ID, is stored once.
    op.create_index("ix_inbound_delivery", "inbound", ["source", "delivery_id"], unique=True)
    op.create_index("ix_inbound_message_id", "inbound", ["message_id"], unique=True,
                    postgresql_where=sa.text("message_id IS NOT NULL"))
    # GET /inbound, newest first, keyset-paged by (received_at, id); a tenant's; the purge.
    op.create_index("ix_inbound_received", "inbound",
                    [sa.text("received_at DESC"), sa.text("id DESC")])
    op.create_index("ix_inbound_tenant_received", "inbound",
                    ["tenant", sa.text("received_at DESC"), sa.text("id DESC")])
    op.create_index("ix_inbound_reply", "inbound",
                    ["in_reply_to_mail_id", sa.text("received_at DESC"), sa.text("id DESC")],
                    postgresql_where=sa.text("in_reply_to_mail_id IS NOT NULL"))
    op.create_index("ix_inbound_sender", "inbound",
                    ["sender", sa.text("received_at DESC"), sa.text("id DESC")])
    op.create_index("ix_inbound_recipients", "inbound", ["recipients"], postgresql_using="gin")

    op.create_table(
        "inbound_attachment",
        sa.Column("inbound_id", sa.Uuid(), sa.ForeignKey("inbound.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("content_id", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("dropped", sa.Text(), nullable=True),
    )

    op.alter_column("webhook_outbox", "email_id", nullable=True)
    op.add_column("webhook_outbox", sa.Column(
        "inbound_id", sa.Uuid(), sa.ForeignKey("inbound.id", ondelete="CASCADE"), nullable=True))
    op.create_check_constraint("ck_webhook_outbox_subject", "webhook_outbox",
                               "email_id IS NOT NULL OR inbound_id IS NOT NULL")
    op.create_index("ix_webhook_outbox_inbound", "webhook_outbox", ["inbound_id"],
                    postgresql_where=sa.text("inbound_id IS NOT NULL"))


def downgrade():
    op.execute("DELETE FROM webhook_outbox WHERE email_id IS NULL")
    op.drop_index("ix_webhook_outbox_inbound", table_name="webhook_outbox")
    op.drop_constraint("ck_webhook_outbox_subject", "webhook_outbox", type_="check")
    op.drop_column("webhook_outbox", "inbound_id")
    op.alter_column("webhook_outbox", "email_id", nullable=False)
    op.drop_table("inbound_attachment")
    op.drop_table("inbound")
