"""Operators' numbers, cheap at any size of the table (``sql/counts.sql``).

The number of mails in each status is kept by the database itself (migration 0007): triggers
append each statement's net change per status to a ledger, ``email_status_count``, which the
workers fold now and then; it holds live mail only, and ``mail_count`` adds the test mail.
``oldest_due_age`` says how far behind the workers are.
"""

from mailer.queue.queries import load
from models import STATUSES

SQL = load("counts.sql")


def status_counts(conn):
    """How many mails are in each status, every status listed (0 for none).

    Exact (what the caller's snapshot sees committed, plus its own changes) and cheap: a sum
    over the ledger's rows, a few per status once folded.
    """
    counted = dict.fromkeys(STATUSES, 0)
    counted.update(
        {status: int(total) for status, total in conn.exec_driver_sql(SQL.status_counts)}
    )
    return counted


def mail_count(conn, statuses):
    """How many mails, test mail included, are in one of ``statuses``: exact, and cheap with
    little test mail (the admin's list counts its pages with it)."""
    return int(conn.exec_driver_sql(SQL.mail_count, {"statuses": list(statuses)}).scalar())


def counts(conn):
    """How many mails are in each status (none listed for a status with none)."""
    return {status: count for status, count in status_counts(conn).items() if count}


def fold_status_counts(conn):
    """Fold the ledger of status changes to one row per status (the worker calls it now and
    then, so that reading it stays cheap); one statement, a no-op while another fold runs."""
    conn.exec_driver_sql(SQL.fold_status_counts)


def oldest_due_age(conn):
    """Seconds since the oldest due mail (queued, or scheduled and due) fell due; 0 if none."""
    age = conn.exec_driver_sql(SQL.oldest_due_age).scalar()
    return max(float(age), 0.0) if age is not None else 0.0
