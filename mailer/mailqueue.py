"""Every SQL statement of a mail's life in the queue, one named step each.

- ``enqueue``: store a validated request as ``queued`` (the API and the admin).
- ``claim``: take due mail in a batch, ``FOR UPDATE SKIP LOCKED``, and mark it ``sending``
  under a lease in the same statement, so no two workers ever hold the same mail.
- ``finish``: record the results of a batch of sends and their attempts in one transaction.
- ``release``: hand claimed but unsent mail back (graceful stop).
- ``reap``: return mail whose lease expired (its worker died) to the queue.
- ``purge_batch``: delete a batch of finished mail older than the retention period.

No transaction here stays open across a provider call: the worker claims, commits, sends, and
only then opens a new transaction to record what happened.
"""

import uuid
from datetime import timedelta

from sqlalchemy import JSON, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from models import FAILED, FINISHED, QUEUED, SENDING, DeliveryAttempt, Email, db, utcnow

email = Email.__table__
attempt = DeliveryAttempt.__table__

LEASE_EXPIRED = "lease expired: the worker stopped while sending; the provider may have the mail"

CLAIMED_COLUMNS = (
    email.c.id, email.c.from_address, email.c.to_address, email.c.cc, email.c.bcc,
    email.c.reply_to, email.c.subject, email.c.text, email.c.html, email.c.attempts,
    email.c.created_at,
)


INSERT_COLUMNS = ("id", "status", "from_address", "to_address", "cc", "bcc", "reply_to",
                  "subject", "text", "html", "attempts", "next_attempt_at", "created_at",
                  "updated_at")


def new_mail_row(clean, now):
    """The column values of a new queued mail from a validated request."""
    return {
        "id": uuid.uuid4(),
        "status": QUEUED,
        "from_address": clean["from_address"],
        "to_address": clean["to"],
        "cc": clean["cc"],
        "bcc": clean["bcc"],
        "reply_to": clean["reply_to"],
        "subject": clean["subject"],
        "text": clean["text"],
        "html": clean["html"],
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def enqueue(clean):
    """Store a validated mail request as ``queued``, commit, and return it as an Email.

    A Core INSERT on its own connection costs half of the ORM session's unit of work on this
    hot path; the returned Email is built from the very values stored, so nothing is read back
    after the commit.
    """
    return Email(**enqueue_many([clean])[0])


def enqueue_many(cleans):
    """Store many validated requests in one INSERT and one transaction: all or none."""
    now = utcnow()
    rows = [new_mail_row(clean, now) for clean in cleans]
    if not _insert(rows):
        _insert(rows, retry=False)  # a stale pooled connection: once more, on a fresh one
    return rows


def _insert(rows, retry=True):
    """INSERT ``rows`` and commit; False if the connection turned out dead before writing.

    Connections are not pinged before use (that costs a round trip per request); instead a
    connection that died while idle in the pool, say across a database restart, fails on the
    INSERT, before anything was written, so trying once more is safe. SQLAlchemy then discards
    the other connections of that age. A failure at COMMIT is never retried: the commit may
    have happened, and a retry could store the mail twice.
    """
    with db.engine.connect() as conn:
        try:
            _insert_rows(conn, rows)
        except DBAPIError as err:
            if retry and err.connection_invalidated:
                return False
            raise
        conn.commit()
    return True


def _insert_rows(conn, rows):
    """One multi-row INSERT of new mail rows.

    On psycopg2 the statement is written out directly: SQLAlchemy's compiled insertmanyvalues
    costs more CPU than the database's own work for a batch, and this is the API's hot path.
    """
    if conn.dialect.driver != "psycopg2":
        conn.execute(insert(email), rows)
        return
    placeholders = "(" + ", ".join(["%s"] * len(INSERT_COLUMNS)) + ")"
    values = ", ".join([placeholders] * len(rows))
    params = tuple(_db_value(row[column]) for row in rows for column in INSERT_COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO email ({', '.join(INSERT_COLUMNS)}) VALUES {values}",
                         params)


def _db_value(value):
    """psycopg2 does not adapt UUIDs by default; everything else it takes as is."""
    return str(value) if isinstance(value, uuid.UUID) else value


def claim(conn, worker, limit, lease_seconds):
    """Mark up to ``limit`` due mails ``sending`` for ``worker``, and return them.

    The inner SELECT skips rows that another worker has locked, so concurrent claims never
    wait for each other nor take the same mail; the lease lets the reaper recover the batch if
    this worker dies.
    """
    now = utcnow()
    due = (
        select(email.c.id)
        .where(email.c.status == QUEUED, email.c.next_attempt_at <= now)
        .order_by(email.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(email)
        .where(email.c.id.in_(due.scalar_subquery()))
        .values(status=SENDING, locked_by=worker, updated_at=now,
                locked_until=now + timedelta(seconds=lease_seconds))
        .returning(*CLAIMED_COLUMNS)
    )
    return list(conn.execute(claimed).mappings())


def finish(conn, worker, results, attempts):
    """Record the end of a batch of sends: one UPDATE per mail, and every attempt row.

    Only rows still leased to ``worker`` change, so a worker whose lease was taken over does not
    overwrite the newer owner's state.
    """
    if results:
        statement = (
            update(email)
            .where(email.c.id == bindparam("b_id"), email.c.locked_by == worker)
            .values(
                status=bindparam("b_status"),
                provider=bindparam("b_provider"),
                provider_message_id=bindparam("b_message_id"),
                # A delivery that called no provider keeps the answers of the last one that did.
                result=func.coalesce(bindparam("b_result", type_=JSON(none_as_null=True)),
                                     email.c.result),
                attempts=bindparam("b_attempts"),
                last_error=bindparam("b_last_error"),
                next_attempt_at=bindparam("b_next_attempt_at"),
                sent_at=bindparam("b_sent_at"),
                locked_by=None,
                locked_until=None,
                updated_at=utcnow(),
            )
        )
        conn.execute(statement, [{f"b_{key}": value for key, value in row.items()}
                                 for row in results])
    if attempts:
        conn.execute(insert(attempt), attempts)


def release(conn, worker, ids):
    """Put claimed mails that were never sent back in the queue, due now."""
    if not ids:
        return
    conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.locked_by == worker)
        .values(status=QUEUED, locked_by=None, locked_until=None, updated_at=utcnow())
    )


def reap(conn, max_attempts, worker=None):
    """Return mails whose lease expired to the queue (or fail them past ``max_attempts``).

    Their worker died mid-send, so the provider may have taken them: the attempt is recorded as
    such, and resending makes delivery at-least-once.
    """
    now = utcnow()
    reaped = conn.execute(
        update(email)
        .where(email.c.status == SENDING, email.c.locked_until < now)
        .values(
            status=case((email.c.attempts + 1 >= max_attempts, FAILED), else_=QUEUED),
            attempts=email.c.attempts + 1,
            last_error=LEASE_EXPIRED,
            locked_by=None,
            locked_until=None,
            next_attempt_at=now,
            updated_at=now,
        )
        .returning(email.c.id, email.c.attempts)
    ).all()
    if reaped:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "provider": None,
             "outcome": "lease_expired", "error": LEASE_EXPIRED, "worker": worker,
             "created_at": now}
            for row in reaped
        ])
    return len(reaped)


def queue_counts(conn):
    """How many mails are in each status."""
    rows = conn.execute(select(email.c.status, func.count()).group_by(email.c.status))
    return {status: count for status, count in rows}


def next_due(conn):
    """When the earliest queued mail becomes due, or None if none is queued."""
    return conn.scalar(select(func.min(email.c.next_attempt_at)).where(email.c.status == QUEUED))


def purge_batch(conn, cutoff, batch_size):
    """Delete up to ``batch_size`` sent or failed mails last updated before ``cutoff``.

    Their attempts go with them (ON DELETE CASCADE). Small batches, each its own transaction,
    keep locks short and let autovacuum keep up; the (status, updated_at) index finds them.
    """
    doomed = (
        select(email.c.id)
        .where(email.c.status.in_(FINISHED), email.c.updated_at < cutoff)
        .limit(batch_size)
    )
    return conn.execute(delete(email).where(email.c.id.in_(doomed.scalar_subquery()))).rowcount


def count_purgeable(conn, cutoff):
    """How many finished mails were last updated before ``cutoff``."""
    return conn.scalar(
        select(func.count())
        .select_from(email)
        .where(email.c.status.in_(FINISHED), email.c.updated_at < cutoff)
    )
