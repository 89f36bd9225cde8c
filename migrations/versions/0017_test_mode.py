"""Test mode: a test key's mail (``email.test``, migration 0015) is left out of the live counts.

The status-count ledger (``email_status_count``, migration 0007) is what the dashboard and
``/metrics`` read; its three triggers now count only live mail, and the ledger is counted
again from the live rows, with writes to ``email`` held back meanwhile, so it starts exact.
The suppression entries of test mail live under the tenant's test view (``<tenant>:test``,
``mailer.queue.suppressions.view``), a name no tenant can have: no column is needed for them.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The ledger's functions (0007's), over the live rows of each transition table or all of them.
FUNCTIONS = {
    "email_status_count_insert": """
        INSERT INTO email_status_count (status, n)
        SELECT status, count(*) FROM new_rows {live} GROUP BY status
    """,
    "email_status_count_update": """
        INSERT INTO email_status_count (status, n)
        SELECT status, sum(n) FROM (
            SELECT status, 1 AS n FROM new_rows {live}
            UNION ALL
            SELECT status, -1 AS n FROM old_rows {live}
        ) AS changes
        GROUP BY status HAVING sum(n) <> 0
    """,
    "email_status_count_delete": """
        INSERT INTO email_status_count (status, n)
        SELECT status, -count(*) FROM old_rows {live} GROUP BY status
    """,
}


def replace_functions(live, recount):
    """Redefine the ledger's functions with the filter ``live`` and count it again from the
    rows that ``recount`` selects."""
    op.execute("LOCK TABLE email IN SHARE ROW EXCLUSIVE MODE")
    for function, body in FUNCTIONS.items():
        op.execute(f"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {body.format(live=live).strip()};
                RETURN NULL;
            END;
            $$
        """)
    op.execute("DELETE FROM email_status_count")
    op.execute(f"INSERT INTO email_status_count (status, n) "
               f"SELECT status, count(*) FROM email {recount} GROUP BY status")


def upgrade():
    replace_functions("WHERE NOT test", "WHERE NOT test")


def downgrade():
    replace_functions("", "")
