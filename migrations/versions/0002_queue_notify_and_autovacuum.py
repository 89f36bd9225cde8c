"""Wake idle workers on new mail (LISTEN/NOTIFY) and vacuum the queue table eagerly.

- A statement-level trigger sends one NOTIFY on channel ``mail_queued`` per INSERT statement
  (so a batch of 1,000 mails wakes the workers once).
  PostgreSQL delivers it at commit, so a worker never wakes before the mail is visible.
- A queue table is rewritten all day (every mail is updated two or three times), so dead rows
  pile up fast: vacuum and analyze it after 1-2 % of its rows change instead of 20 %, as Oban,
  River and pgqueuer advise for their queue tables.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHANNEL = "mail_queued"


def upgrade():
    op.execute(f"""
        CREATE FUNCTION notify_mail_queued() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END;
        $$
    """)
    op.execute("""
        CREATE TRIGGER email_queued_notify
        AFTER INSERT ON email
        FOR EACH STATEMENT EXECUTE FUNCTION notify_mail_queued()
    """)
    op.execute("""
        ALTER TABLE email SET (
            autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_analyze_scale_factor = 0.01,
            autovacuum_vacuum_insert_scale_factor = 0.02
        )
    """)
    op.execute("""
        ALTER TABLE delivery_attempt SET (
            autovacuum_vacuum_scale_factor = 0.05,
            autovacuum_analyze_scale_factor = 0.02
        )
    """)


def downgrade():
    op.execute("ALTER TABLE delivery_attempt RESET (autovacuum_vacuum_scale_factor, "
               "autovacuum_analyze_scale_factor)")
    op.execute("ALTER TABLE email RESET (autovacuum_vacuum_scale_factor, "
               "autovacuum_analyze_scale_factor, autovacuum_vacuum_insert_scale_factor)")
    op.execute("DROP TRIGGER email_queued_notify ON email")
    op.execute("DROP FUNCTION notify_mail_queued()")
