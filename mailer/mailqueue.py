"""Every SQL statement of a mail's life in the queue, one named step each.

- ``enqueue_many``: store validated requests as ``queued`` in one INSERT (the API, the admin).
- ``claim``: take due mail in a batch, ``FOR UPDATE SKIP LOCKED``, and mark it ``sending``
  under a lease in the same statement, so no two workers ever hold the same mail.
- ``finish``: record the decisions of a batch of sends and their attempts in one transaction.
- ``release``: hand claimed but unsent mail back (graceful stop).
- ``reap``: return mail whose lease expired (its worker died) to the queue.
- ``retry``: an operator puts failed mail back in the queue, recorded with who did it.
- ``counts``: how much mail is in each status (the admin's dashboard).
- ``purge_batch`` and ``count_purgeable``: delete finished mail past the retention period.

Every time here is the database's (``now()``), never a worker's: a worker whose clock is an
hour ahead neither takes another's leases early nor sends mail before it is due. No
transaction here stays open across a provider call: the worker claims, commits, sends, and
only then opens a new transaction to record what happened.
"""

import uuid

from sqlalchemy import (
    JSON,
    bindparam,
    case,
    delete,
    extract,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from models import FAILED, FINISHED, QUEUED, SENDING, SENT, DeliveryAttempt, Email

email = Email.__table__
attempt = DeliveryAttempt.__table__

LEASE_EXPIRED = "lease expired: the worker stopped while sending; the provider may have the mail"
# Outcomes of attempt-log rows written here rather than by a provider call.
LEASE_EXPIRED_OUTCOME, RETRIED_OUTCOME = "lease_expired", "retried"
SECOND = literal_column("interval '1 second'")

CLAIMED_COLUMNS = (
    email.c.id, email.c.from_address, email.c.to_address, email.c.cc, email.c.bcc,
    email.c.reply_to, email.c.subject, email.c.text, email.c.html, email.c.attempts,
    # What the retry policy needs, measured by the database: attempts and age since the mail
    # was created or last retried by an operator.
    (email.c.attempts - email.c.attempts_at_retry).label("budget_used"),
    extract("epoch", func.now() - func.coalesce(email.c.retried_at, email.c.created_at))
    .label("age"),
)

INSERT_COLUMNS = ("id", "status", "from_address", "to_address", "cc", "bcc", "reply_to",
                  "subject", "text", "html", "attempts")
INSERT_SQL = (f"INSERT INTO email ({', '.join(INSERT_COLUMNS)}) VALUES %s "
              "RETURNING id, created_at")


def seconds(value):
    """An SQL interval of ``value`` seconds from now()."""
    return func.now() + SECOND * value


def new_mail_row(clean):
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
    }


def enqueue_many(session, cleans):
    """Store validated requests in one INSERT and commit: all or none. Returns their rows.

    Each row also holds ``created_at`` as the database stamped it, so the API answers from
    what it stored without reading it back. ``session`` is the request's database session, so
    a test can hand it a connection inside a transaction that it rolls back.
    """
    rows = [new_mail_row(clean) for clean in cleans]
    try:
        stamped = _insert(session, rows)
    except DBAPIError as err:
        # A connection that died while idle in the pool (a database restart) fails here,
        # before anything was written, so once more on a fresh connection is safe. A failure
        # at COMMIT is never retried: the commit may have happened.
        session.rollback()
        if not err.connection_invalidated:
            raise
        stamped = _insert(session, rows)
    session.commit()
    for row in rows:
        row["created_at"] = row["updated_at"] = row["next_attempt_at"] = stamped[row["id"]]
    return rows


def _insert(session, rows):
    """One multi-row INSERT of new mail rows; their ``created_at`` by id.

    The statement is written out for psycopg2 directly: SQLAlchemy's compiled insertmanyvalues
    costs more CPU than the database's own work, and this is the API's hot path. It still goes
    through SQLAlchemy's connection (unlike a raw cursor's ``execute_values``), so a dead
    connection is reported as such and invalidated, which the retry above depends on.
    created_at, updated_at and next_attempt_at come from the columns' ``now()``.
    """
    placeholders = "(" + ", ".join(["%s"] * len(INSERT_COLUMNS)) + ")"
    params = tuple(_db_value(row[column]) for row in rows for column in INSERT_COLUMNS)
    returned = session.connection().exec_driver_sql(
        INSERT_SQL % ", ".join([placeholders] * len(rows)), params)
    return {uuid.UUID(str(mail_id)): created_at for mail_id, created_at in returned}


def _db_value(value):
    """psycopg2 does not adapt UUIDs by default; everything else it takes as is."""
    return str(value) if isinstance(value, uuid.UUID) else value


def claim(conn, worker, limit, lease_seconds):
    """Mark up to ``limit`` due mails ``sending`` for ``worker``, and return them.

    The inner SELECT skips rows that another worker has locked, so concurrent claims never
    wait for each other nor take the same mail; the lease lets the reaper recover the batch if
    this worker dies.
    """
    due = (
        select(email.c.id)
        .where(email.c.status == QUEUED, email.c.next_attempt_at <= func.now())
        .order_by(email.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(email)
        .where(email.c.id.in_(due.scalar_subquery()))
        .values(status=SENDING, locked_by=worker, updated_at=func.now(),
                locked_until=seconds(lease_seconds))
        .returning(*CLAIMED_COLUMNS)
    )
    return list(conn.execute(claimed).mappings())


def finish(conn, worker, decisions, attempts):
    """Record the end of a batch of sends: one UPDATE per mail, and every attempt row.

    Only rows still leased to ``worker`` change, so a worker whose lease was taken over does not
    overwrite the newer owner's state. ``decisions`` are ``delivery.Decision`` objects.
    """
    if decisions:
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
                next_attempt_at=seconds(bindparam("b_retry_in")),
                sent_at=case((bindparam("b_status") == SENT, func.now()), else_=None),
                locked_by=None,
                locked_until=None,
                updated_at=func.now(),
            )
        )
        conn.execute(statement, [_finish_params(decision) for decision in decisions])
    if attempts:
        conn.execute(insert(attempt), attempts)


def _finish_params(decision):
    """The bind parameters of one mail's row in ``finish``."""
    return {"b_id": decision.id, "b_status": decision.status, "b_provider": decision.provider,
            "b_message_id": decision.message_id, "b_result": decision.result,
            "b_attempts": decision.attempts, "b_last_error": decision.last_error,
            "b_retry_in": decision.retry_in}


def release(conn, worker, ids):
    """Put claimed mails that were never sent back in the queue, due now."""
    if not ids:
        return
    conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.locked_by == worker)
        .values(status=QUEUED, locked_by=None, locked_until=None, updated_at=func.now())
    )


def reap(conn, max_attempts, worker=None):
    """Return mails whose lease expired to the queue (or fail them past ``max_attempts``).

    Their worker died mid-send, so the provider may have taken them: the attempt is recorded as
    such, and resending makes delivery at-least-once.
    """
    spent = email.c.attempts + 1 - email.c.attempts_at_retry
    reaped = conn.execute(
        update(email)
        .where(email.c.status == SENDING, email.c.locked_until < func.now())
        .values(
            status=case((spent >= max_attempts, FAILED), else_=QUEUED),
            attempts=email.c.attempts + 1,
            last_error=LEASE_EXPIRED,
            locked_by=None,
            locked_until=None,
            next_attempt_at=func.now(),
            updated_at=func.now(),
        )
        .returning(email.c.id, email.c.attempts)
    ).all()
    if reaped:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "provider": None,
             "outcome": LEASE_EXPIRED_OUTCOME, "error": LEASE_EXPIRED, "worker": worker}
            for row in reaped
        ])
    return len(reaped)


def retry(conn, ids, actor):
    """Queue failed mails again, due now, with a fresh budget; record who did it. Their count.

    ``attempts`` keeps counting (the log never shows two "#1"); the budget of MAX_ATTEMPTS and
    MAX_AGE starts again from this moment.
    """
    retried = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status == FAILED)
        .values(status=QUEUED, next_attempt_at=func.now(), last_error=None,
                retried_at=func.now(), attempts_at_retry=email.c.attempts,
                updated_at=func.now())
        .returning(email.c.id, email.c.attempts)
    ).all()
    if retried:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "outcome": RETRIED_OUTCOME, "actor": actor}
            for row in retried
        ])
    return len(retried)


def counts(conn):
    """How many mails are in each status."""
    rows = conn.execute(select(email.c.status, func.count()).group_by(email.c.status))
    return {status: count for status, count in rows}


def purgeable(days):
    """The condition of finished mail last updated more than ``days`` ago."""
    cutoff = func.now() - SECOND * (float(days) * 86400)
    return email.c.status.in_(FINISHED) & (email.c.updated_at < cutoff)


def purge_batch(conn, days, batch_size):
    """Delete up to ``batch_size`` sent or failed mails last updated more than ``days`` ago.

    Their attempts go with them (ON DELETE CASCADE). Small batches, each its own transaction,
    keep locks short and let autovacuum keep up; the (status, updated_at) index finds them.
    """
    doomed = select(email.c.id).where(purgeable(days)).limit(batch_size)
    return conn.execute(delete(email).where(email.c.id.in_(doomed.scalar_subquery()))).rowcount


def count_purgeable(conn, days):
    """How many finished mails were last updated more than ``days`` ago."""
    return conn.scalar(select(func.count()).select_from(email).where(purgeable(days)))



def database_now(conn):
    """The database's clock, which every lease and schedule is compared with (the admin's
    "expired" mark on a lease agrees with ``reap``)."""
    return conn.scalar(select(func.now()))
