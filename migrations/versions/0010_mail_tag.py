"""``mail_tag``: each tag of a mail in an index ordered per tag, for ``GET /mail?tag=``.

The listing is newest first, keyset-paged by (created_at, id). Filtered by a tag through the
GIN index of ``email.tags`` (or by walking ``ix_email_created`` and keeping the mail that has
the tag), a page of a tag that 1 % of mail carries read about 100 index entries and rows for
each one it kept: 1.5 ms of PostgreSQL per page at 1,000,000 mails. ``mail_tag`` holds one
row per (mail, tag) with the mail's ``created_at``, and its index ``(tag, created_at DESC,
email_id DESC)`` gives a tag's mails in the listing's order, so a page reads its own rows.

The rows are written in the statement that stores the mail (``mailqueue``), only for mail
with tags (mail without any pays nothing), and go with the mail (ON DELETE CASCADE; the
primary key serves that delete). ``email.tags`` stays the mail's own record of its tags. The
upgrade locks ``email`` against writes while it copies the tags of the mail already there.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    # The copy reads every mail: at a million of them it takes longer than the API's statement
    # timeout, which the migration's connection has too (this transaction's only).
    op.execute("SET LOCAL statement_timeout = 0")
    op.create_table(
        "mail_tag",
        sa.Column("email_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # No mail may be stored between the copy below and the code that writes mail_tag.
    op.execute("LOCK TABLE email IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO mail_tag (email_id, tag, created_at) "
               "SELECT DISTINCT id, unnest(tags), created_at FROM email")
    # The keys and the index once the rows are in: built in one pass each, and the foreign key
    # checked by one join, not by a look-up per copied row.
    op.create_primary_key("mail_tag_pkey", "mail_tag", ["email_id", "tag"])
    op.create_foreign_key("mail_tag_email_id_fkey", "mail_tag", "email", ["email_id"], ["id"],
                          ondelete="CASCADE")
    op.create_index("ix_mail_tag_listing", "mail_tag",
                    ["tag", sa.text("created_at DESC"), sa.text("email_id DESC")])


def downgrade():
    op.drop_table("mail_tag")
