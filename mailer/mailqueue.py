"""Every SQL statement of a mail's life in the queue, one named step each.

- ``enqueue_many``: store validated requests as ``queued`` in one INSERT (the API, the admin).
- ``claim``: take due mail in a batch, ``FOR UPDATE SKIP LOCKED``, and mark it ``sending``
  under a lease in the same statement, so no two workers ever hold the same mail.
- ``finish``: record the decisions of a batch of sends and their attempts in one transaction,
  with the recipients of mail that went (or was suppressed: every recipient on the list).
- ``release``: hand claimed but unsent mail back (graceful stop).
- ``reap``: return mail whose lease expired (its worker died) to the queue.
- ``retry``: an operator puts failed mail back in the queue, recorded with who did it.
- ``cancel``: a client or an operator cancels mail no worker has taken yet.
- ``release_stuck``, ``send_now``, ``resend``: an operator's actions in the admin (the section
  at the end), each recorded with who did it.
- ``record_events``: after the hand-off, the providers' events move each recipient forward
  (sent, deferred, delivered, bounced, unsubscribed, complained) and the mail with them
  (``_roll_up``); permanent bounces, complaints and unsubscribes go on the suppression list.
- ``counts``: how much mail is in each status (the admin's dashboard), from the ledger of
  ``status_counts`` at the end of the module, with ``oldest_due_age``.
- ``purge_batch`` and ``count_purgeable``: delete finished mail past the retention period.

Every status change writes the client's webhooks (``outbox.write``) in its own transaction. The
SQL of the suppression list and of the outbox's deliveries lives in ``suppressions`` and
``outbox``, each list or table with its own rules; every change of a mail's status is here.

Every time here is the database's (``now()``), never a worker's: a worker whose clock is an
hour ahead neither takes another's leases early nor sends mail before it is due. No
transaction here stays open across a provider call: the worker claims, commits, sends, and
only then opens a new transaction to record what happened.
"""

import json
import uuid
from dataclasses import dataclass
from typing import NamedTuple

import psycopg2
from psycopg2.extras import Json
from sqlalchemy import (
    case,
    delete,
    extract,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from models import (
    BOUNCED,
    CANCELLED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    FINISHED,
    HANDED_OFF,
    QUEUED,
    RECIPIENT_ORDER,
    SENDING,
    SENT,
    STATUSES,
    SUPPRESSED,
    UNSUBSCRIBED,
    WAITING,
    Attachment,
    DeliveryAttempt,
    DeliveryEvent,
    Email,
    IdempotencyKey,
    Recipient,
)

from . import outbox, provider_events, suppressions
from .addresses import bare_address

email = Email.__table__
attempt = DeliveryAttempt.__table__
attachment = Attachment.__table__
keys = IdempotencyKey.__table__
recipient = Recipient.__table__
event_table = DeliveryEvent.__table__

LEASE_EXPIRED = "lease expired: the worker stopped while sending; the provider may have the mail"
# Outcomes of attempt-log rows written here rather than by a provider call.
LEASE_EXPIRED_OUTCOME, RETRIED_OUTCOME, CANCELLED_OUTCOME = (
    "lease_expired", "retried", "cancelled")
RETRYABLE = (FAILED, CANCELLED)  # what an operator or client may queue again
SECOND = literal_column("interval '1 second'")

# The claim, once a few dozen mails for every worker: written for psycopg2 (the values come back
# as the driver reads them, not through SQLAlchemy's result processing per row and column).
CLAIM_SQL = f"""
UPDATE email
   SET status = '{SENDING}', locked_by = %(worker)s, updated_at = now(),
       locked_until = now() + %(lease)s * interval '1 second'
 WHERE id IN (SELECT id FROM email
               WHERE status IN ({", ".join(f"'{status}'" for status in WAITING)})
                 AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id, from_address, to_address, cc, bcc, reply_to, subject, text, html, attempts,
          headers, tags, metadata,
          -- What the retry policy needs, measured by the database: attempts and age since the
          -- mail was created or last retried by an operator.
          attempts - attempts_at_retry AS budget_used,
          extract(epoch FROM now() - coalesce(retried_at, created_at)) AS age,
          -- Whether to read its attachments (most mail has none: no query for them).
          EXISTS (SELECT 1 FROM attachment WHERE attachment.email_id = email.id)
              AS has_attachments
"""

def _position_in(order):
    """``array_position`` of a column's value in ``order`` (NULL for a value not in it)."""
    array = literal_column("ARRAY[" + ", ".join(f"'{value}'" for value in order) + "]::text[]")
    return lambda column: func.array_position(array, column)


RECIPIENT_RANK = _position_in(RECIPIENT_ORDER)
# Every recipient of mail a provider took starts "sent" (one suppressed already has its row).
SENT_RECIPIENTS_SQL = text(
    "INSERT INTO recipient (email_id, address, status) "
    "SELECT id, unnest(recipients), 'sent' FROM email WHERE id = ANY(CAST(:ids AS uuid[])) "
    "ON CONFLICT DO NOTHING")
HANDED_OFF_ARRAY = "ARRAY[" + ", ".join(f"'{status}'" for status in HANDED_OFF) + "]::text[]"
ROLL_UP_SQL = text(f"""
WITH said AS (
    SELECT email_id,
           CASE WHEN bool_or(status = '{COMPLAINED}') THEN '{COMPLAINED}'
                WHEN bool_or(status = '{BOUNCED}') THEN '{BOUNCED}'
                WHEN bool_and(status IN ('{DELIVERED}', '{UNSUBSCRIBED}', '{SUPPRESSED}'))
                    THEN '{DELIVERED}'
                ELSE '{SENT}' END AS status
      FROM recipient WHERE email_id = ANY(CAST(:ids AS uuid[])) GROUP BY email_id)
UPDATE email SET status = said.status, updated_at = now()
  FROM said
 WHERE email.id = said.email_id
   AND array_position({HANDED_OFF_ARRAY}, email.status)
       < array_position({HANDED_OFF_ARRAY}, said.status)
""")

INSERT_COLUMNS = ("id", "from_address", "to_address", "cc", "bcc", "reply_to", "subject",
                  "text", "html", "attempts", "headers", "metadata", "tags", "recipients",
                  "send_at")
# Mail with a send_at in the future is held (scheduled) until then; the database's clock
# decides, and a time in the past means now.
INSERT_ROW = ("(" + ", ".join(["%s"] * len(INSERT_COLUMNS)) + ", CASE WHEN %s::timestamptz > "
              "now() THEN 'scheduled' ELSE 'queued' END, GREATEST(%s::timestamptz, now()))")
INSERT_SQL = (f"INSERT INTO email ({', '.join(INSERT_COLUMNS)}, status, next_attempt_at) "
              "VALUES {rows} RETURNING id, created_at, status, next_attempt_at")
ATTACHMENT_ROW = "(%s, %s, %s, %s, %s, %s)"
ATTACHMENT_SQL = ("INSERT INTO attachment (email_id, position, filename, content_type, size, "
                  "content) VALUES {rows}")
# The statement of every request with an Idempotency-Key, written for psycopg2 as INSERT_SQL
# is: built with SQLAlchemy's expression language, it cost more CPU per request (constructing
# and keying the statement) than the whole INSERT of the mail.
TAKE_KEY_SQL = ("INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response) "
                "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING RETURNING key")


# ``finish``'s statements, written for psycopg2 with one array per column (psycopg2 adapts a
# list in C): the per-mail executemany of SQLAlchemy's compiled UPDATE and INSERT cost more of
# the worker's CPU than any other step of a mail but its provider call.
ATTACHMENTS_SQL = ("SELECT email_id, filename, content_type, content FROM attachment "
                   "WHERE email_id = ANY(%s::uuid[]) ORDER BY email_id, position")
OWNED_SQL = ("SELECT id FROM email WHERE id = ANY(%s::uuid[]) AND locked_by = %s "
             "ORDER BY id FOR UPDATE")
FINISH_SQL = f"""
UPDATE email
   SET status = d.status, provider = d.provider, provider_message_id = d.message_id,
       result = coalesce(d.result, email.result), attempts = d.attempts,
       last_error = d.last_error, next_attempt_at = now() + d.retry_in * interval '1 second',
       sent_at = CASE WHEN d.status = '{SENT}' THEN now() END,
       locked_by = NULL, locked_until = NULL, updated_at = now()
  FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::json[], %s::int[],
              %s::text[], %s::float8[])
       AS d(id, status, provider, message_id, result, attempts, last_error, retry_in)
 WHERE email.id = d.id AND email.locked_by = %s
"""
ATTEMPTS_SQL = """
INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, response, error,
                              duration_ms, worker, created_at)
SELECT * FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::int[], %s::json[],
                     %s::text[], %s::int[], %s::text[], %s::timestamptz[])
"""

class IdempotencyConflict(Exception):
    """The key was used before with a different request."""


@dataclass(frozen=True)
class Idempotency:
    """A client's ``Idempotency-Key``: whose (``scope``), the key, the request's fingerprint."""

    scope: str
    key: str
    fingerprint: str
    ttl: float  # seconds a key is kept


@dataclass(frozen=True)
class Replay:
    """The answer a key got the first time, to be given again."""

    status_code: int
    response: dict


def seconds(value):
    """An SQL interval of ``value`` seconds from now()."""
    return func.now() + SECOND * value


def new_mail_row(clean):
    """The column values of a new mail from a validated request."""
    return {
        "id": uuid.uuid4(),
        "from_address": clean["from_address"],
        "to_address": clean["to"],
        "cc": clean["cc"],
        "bcc": clean["bcc"],
        "reply_to": clean["reply_to"],
        "subject": clean["subject"],
        "text": clean["text"],
        "html": clean["html"],
        "attempts": 0,
        "headers": clean.get("headers") or {},
        "metadata": clean.get("metadata") or {},
        "tags": clean.get("tags") or [],
        "recipients": list(dict.fromkeys(
            bare_address(a) for a in [*clean["to"], *clean["cc"], *clean["bcc"]])),
        "send_at": clean.get("send_at"),
    }


def enqueue_many(begin, cleans, idempotency=None, answer=None):
    """Store validated requests as one INSERT and commit: all or none. Returns their rows.

    Each row also holds ``created_at``, ``status`` and ``next_attempt_at`` as the database set
    them, so the API answers from what it stored without reading it back. ``begin()`` opens the
    transaction and yields its connection: the engine's own (a plain connection costs half the
    CPU of a Session on this hot path), or a test's savepoint in a transaction that it rolls
    back. With ``idempotency``, the key is stored with the answer ``answer(rows)`` gives
    (status, body) in the same transaction; a key already used returns a ``Replay`` instead of
    rows (or raises ``IdempotencyConflict`` for a different request).
    """
    rows = [new_mail_row(clean) for clean in cleans]
    attachments = [(row["id"], clean.get("attachments") or []) for row, clean in zip(rows, cleans,
                                                                                    strict=True)]
    written = []  # set once the statements ran: a failure after that (at COMMIT) is final

    def attempt():
        with begin() as conn:
            result = _store(conn, rows, attachments, idempotency, answer)
            written.append(True)
        return result

    def attempt_once_more_if_dead():
        try:
            return attempt()
        except DBAPIError as err:
            # A connection that died while idle in the pool (a database restart) fails at the
            # first statement, before anything was written, so once more on a fresh connection
            # is safe. A failure at COMMIT is never retried: the commit may have happened.
            if written or not err.connection_invalidated:
                raise
            return attempt()

    for _ in range(2):
        try:
            return attempt_once_more_if_dead()
        except _KeyTaken:  # rolled back: nothing of this request was stored
            replay = _replay(begin, idempotency)
            if replay is not None:
                return replay
    raise IdempotencyConflict(idempotency.key)  # taken and lost twice in a row: say so


class _KeyTaken(Exception):
    """The request's Idempotency-Key was taken by another request: roll this one back."""


def _store(conn, rows, attachments, idempotency, answer):
    """The statements of ``enqueue_many``, in one transaction (not yet committed).

    With a key, the key's row is written last, with the answer, in one statement: a concurrent
    request with the same key waits on that row until the first one commits (then this one is
    rolled back and replays the first's answer) or rolls back (then this one takes the key):
    never a second mail. Written first, the key cost a second statement (its answer) on every
    request; now only a replay pays, with a mail INSERT that is rolled back.
    """
    stamped = _insert(conn, rows)
    for row, (_, files) in zip(rows, attachments, strict=True):
        row.update(stamped[row["id"]])
        row["files"] = [{"filename": item["filename"], "content_type": item["content_type"],
                         "size": len(item["content"])} for item in files]
    _insert_attachments(conn, attachments)
    if idempotency is not None:
        status_code, body = answer(rows)
        if not _take_key(conn, idempotency, status_code, body):
            raise _KeyTaken
    return rows


def _insert(conn, rows):
    """One multi-row INSERT of new mail rows; what the database set, by id.

    The statement is written out for psycopg2 directly: SQLAlchemy's compiled insertmanyvalues
    costs more CPU than the database's own work, and this is the API's hot path. It still goes
    through SQLAlchemy's connection (unlike a raw cursor's ``execute_values``), so a dead
    connection is reported as such and invalidated, which the retry above depends on.
    created_at and updated_at come from the columns' ``now()``.
    """
    params = [value for row in rows for value in row_params(row)]
    returned = conn.exec_driver_sql(
        INSERT_SQL.format(rows=", ".join([INSERT_ROW] * len(rows))), tuple(params))
    # psycopg2 returns the ids as text here: looked up as text, not parsed back into UUIDs
    ids = {str(row["id"]): row["id"] for row in rows}
    return {ids[str(mail_id)]: {"created_at": created, "updated_at": created, "status": status,
                                "next_attempt_at": due}
            for mail_id, created, status, due in returned}


def row_params(row):
    """The parameters of one row of ``INSERT_ROW``: its columns in ``INSERT_COLUMNS`` order,
    then send_at twice. psycopg2 adapts neither UUIDs nor dicts: a string, and JSON text
    (which the jsonb columns take as they would take Json(); most mails have none)."""
    return [str(row["id"]), row["from_address"], row["to_address"], row["cc"], row["bcc"],
            row["reply_to"], row["subject"], row["text"], row["html"], row["attempts"],
            _json_text(row["headers"]), _json_text(row["metadata"]), row["tags"],
            row["recipients"], row["send_at"], row["send_at"], row["send_at"]]


def _json_text(value):
    """A dict as JSON text for a jsonb column (as psycopg2's Json would write it)."""
    return json.dumps(value) if value else "{}"


def _insert_attachments(conn, attachments):
    """Store every mail's attachments, in order, in one INSERT (none: no statement)."""
    params = []
    for mail_id, files in attachments:
        for position, item in enumerate(files):
            params += [str(mail_id), position, item["filename"], item["content_type"],
                       len(item["content"]), psycopg2.Binary(item["content"])]
    if params:
        rows = ", ".join([ATTACHMENT_ROW] * (len(params) // 6))
        conn.exec_driver_sql(ATTACHMENT_SQL.format(rows=rows), tuple(params))


def _take_key(conn, idempotency, status_code, body):
    """Store ``idempotency``'s key with this request's answer; False if the key was taken."""
    return conn.exec_driver_sql(
        TAKE_KEY_SQL, (idempotency.scope, idempotency.key, idempotency.fingerprint, status_code,
                       Json(body))).first() is not None


def _replay(begin, idempotency):
    """The Replay of the answer the key got first, or None if the key is gone or expired
    (deleted here, so that the next attempt takes it anew); IdempotencyConflict if it came
    with another request."""
    with begin() as conn:
        row = conn.execute(
            select(keys, (keys.c.created_at < seconds(-idempotency.ttl)).label("expired"))
            .where(keys.c.scope == idempotency.scope, keys.c.key == idempotency.key)
        ).mappings().first()
        if row is None or row["expired"]:  # gone meanwhile, or past its TTL: take it anew
            conn.execute(delete(keys).where(keys.c.scope == idempotency.scope,
                                            keys.c.key == idempotency.key))
            return None
    if row["fingerprint"] != idempotency.fingerprint:
        raise IdempotencyConflict(idempotency.key)
    return Replay(row["status_code"], row["response"])


def purge_idempotency_keys(conn, ttl, batch_size):
    """Delete up to ``batch_size`` keys older than ``ttl`` seconds; how many went."""
    doomed = (select(keys.c.scope, keys.c.key).where(keys.c.created_at < seconds(-ttl))
              .limit(batch_size))
    return conn.execute(
        delete(keys).where(tuple_(keys.c.scope, keys.c.key).in_(doomed))).rowcount


def claim(conn, worker, limit, lease_seconds):
    """Mark up to ``limit`` due mails ``sending`` for ``worker``, and return them.

    The inner SELECT skips rows that another worker has locked, so concurrent claims never
    wait for each other nor take the same mail; the lease lets the reaper recover the batch if
    this worker dies.
    """
    result = conn.exec_driver_sql(CLAIM_SQL, {"worker": worker, "limit": limit,
                                              "lease": float(lease_seconds)})
    columns = list(result.keys())
    rows = [dict(zip(columns, values, strict=True)) for values in result]
    files = attachments_of(conn, [row["id"] for row in rows if row.pop("has_attachments")])
    for row in rows:
        row["attachments"] = files.get(row["id"], [])
    return rows


def attachments_of(conn, ids):
    """The attachments of the mails ``ids`` with their content, in order, by mail id.

    One array parameter (``= ANY``), not an IN list that SQLAlchemy renders anew for every
    claimed batch. The ids are matched as text: what psycopg2 gives back depends on its set-up.
    """
    if not ids:
        return {}
    ids_by_text = {str(mail_id): mail_id for mail_id in ids}
    found = {}
    for mail_id, filename, content_type, content in conn.exec_driver_sql(
            ATTACHMENTS_SQL, (list(ids_by_text),)):
        found.setdefault(ids_by_text[str(mail_id)], []).append(
            {"filename": filename, "content_type": content_type, "content": bytes(content)})
    return found


def finish(conn, worker, decisions, attempts, webhooks=None):
    """Record the end of a batch of sends: one UPDATE of every mail, one INSERT of every attempt.

    Only rows still leased to ``worker`` change, so a worker whose lease was taken over does not
    overwrite the newer owner's state. ``decisions`` are ``delivery.Decision`` objects. Mail
    that went (or was suppressed) gets its recipients, and the client the webhooks it wants
    (``webhooks``, an ``outbox.Subscription``), in the same transaction.
    """
    decisions = _owned(conn, worker, decisions)
    if decisions:
        conn.exec_driver_sql(FINISH_SQL, (*_finish_columns(decisions), worker))
    if attempts:
        conn.exec_driver_sql(ATTEMPTS_SQL, _attempt_columns(attempts))
    _hand_off(conn, decisions, webhooks)


def _owned(conn, worker, decisions):
    """The decisions whose mail ``worker`` still leases, their rows locked in id order.

    Every writer that locks several mails (this, ``record_events``) takes them in id order, so
    a batch of sends and a batch of events never deadlock.
    """
    if not decisions:
        return []
    by_id = {str(d.id): d for d in decisions}
    owned = conn.exec_driver_sql(OWNED_SQL, (list(by_id), worker))
    return [by_id[str(mail_id)] for mail_id, in owned]


def _hand_off(conn, decisions, webhooks):
    """Recipients of mail that went or was suppressed, and the client's webhooks of the batch.

    Each recipient starts ``sent`` (or ``suppressed``); an event that came before the send was
    recorded already moved its recipient on, so the mail is rolled up at once.
    """
    suppressed = [{"email_id": d.id, "address": address, "status": SUPPRESSED, "reason": reason}
                  for d in decisions if d.status in (SENT, SUPPRESSED)
                  for address, reason in d.suppressed]
    if suppressed:
        conn.execute(pg_insert(recipient).values(suppressed).on_conflict_do_nothing())
    sent = [str(d.id) for d in decisions if d.status == SENT]
    if sent:
        conn.execute(SENT_RECIPIENTS_SQL, {"ids": sent})
        _roll_up(conn, sent)
    items = [(row["email_id"], outbox.SUPPRESSED, row["address"], row["reason"])
             for row in suppressed]
    items += [(d.id, outbox.SENT if d.status == SENT else outbox.FAILED, None,
               d.last_error if d.status == FAILED else None)
              for d in decisions if d.status in (SENT, FAILED)]
    outbox.write(conn, webhooks, items)


def _finish_columns(decisions):
    """The arrays of ``FINISH_SQL``: one per column, one element per mail, in order.

    A delivery that called no provider has no ``result`` (NULL): the mail keeps the answers of
    the last one that did.
    """
    return ([str(d.id) for d in decisions], [d.status for d in decisions],
            [d.provider for d in decisions], [d.message_id for d in decisions],
            [None if d.result is None else json.dumps(d.result) for d in decisions],
            [d.attempts for d in decisions], [d.last_error for d in decisions],
            [float(d.retry_in) for d in decisions])


def _attempt_columns(rows):
    """The arrays of ``ATTEMPTS_SQL`` from attempt-log rows (``delivery.attempt_rows``).

    ``response`` is JSON text, a None included (JSON null, as the ``JSON`` column stores it).
    """
    return ([str(row["email_id"]) for row in rows], [row["number"] for row in rows],
            [row["provider"] for row in rows], [row["outcome"] for row in rows],
            [row["status_code"] for row in rows], [json.dumps(row["response"]) for row in rows],
            [row["error"] for row in rows], [row["duration_ms"] for row in rows],
            [row["worker"] for row in rows], [row["created_at"] for row in rows])


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
    such, and resending makes delivery at-least-once. Returns the (id, status) of each.
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
        .returning(email.c.id, email.c.attempts, email.c.status)
    ).all()
    if reaped:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "provider": None,
             "outcome": LEASE_EXPIRED_OUTCOME, "error": LEASE_EXPIRED, "worker": worker}
            for row in reaped
        ])
    return [(row.id, row.status) for row in reaped]


def retry(conn, ids, actor):
    """Queue failed or cancelled mails again, due now, with a fresh budget; record who did it.

    ``attempts`` keeps counting (the log never shows two "#1"); the budget of MAX_ATTEMPTS and
    MAX_AGE starts again from this moment. Returns how many were queued.
    """
    retried = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status.in_(RETRYABLE))
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


def seconds_until_due(conn):
    """Seconds until the earliest waiting mail falls due (0 if one is due), or None if none."""
    earliest = (select(func.min(email.c.next_attempt_at))
                .where(email.c.status.in_(WAITING)).scalar_subquery())
    seconds_left = conn.scalar(select(extract("epoch", earliest - func.now())))
    return None if seconds_left is None else max(float(seconds_left), 0.0)


def cancel(conn, ids, actor, webhooks=None):
    """Cancel mails that no worker has taken yet (queued or scheduled); record who did it.

    One UPDATE that re-checks the status: a worker's claim locks the row first (then this
    finds it ``sending`` and changes nothing) or waits for this to commit (then finds it
    cancelled): a mail ends cancelled and never sent, or sent and not cancelled. Returns the
    ids cancelled. The client's ``mail.cancelled`` webhooks are written with it.
    """
    cancelled = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status.in_(WAITING))
        .values(status=CANCELLED, updated_at=func.now(), next_attempt_at=func.now())
        .returning(email.c.id, email.c.attempts)
    ).all()
    if cancelled:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "outcome": CANCELLED_OUTCOME,
             "actor": actor}
            for row in cancelled
        ])
        outbox.write(conn, webhooks, [(row.id, outbox.CANCELLED, None, None)
                                      for row in cancelled])
    return [row.id for row in cancelled]


# After the hand-off: the providers' events move recipients and mail forward ----------------


@dataclass(frozen=True)
class Recorded:
    """What came of a request's events: how many were new, repeats, and those of no mail."""

    new: int
    repeats: int
    unmatched: list


def record_events(conn, events, suppression_days, webhooks=None):
    """Store the providers' events and move their recipients and mails forward; ``Recorded``.

    All in the caller's transaction (a SendGrid batch is one). An event finds its mail by our
    id, else by the provider's message id; one that finds none is not stored. A repeat of a
    stored event (the same provider's key) changes nothing. A recipient's status only moves
    forward (``models.RECIPIENT_ORDER``), so events may come in any order. A permanent bounce,
    a complaint or an unsubscribe suppresses the address; a recipient that moved to delivered,
    bounced or complained raises the client's webhook.
    """
    mails = _lock_for_events(conn, events)
    matched, unmatched = _match(events, mails)
    fresh = _store_events(conn, matched)
    moved = _advance_recipients(conn, fresh, mails)
    _roll_up(conn, sorted({str(row["email_id"]) for row in moved}))
    suppressions.add_many(conn, [
        {"address": event.recipient, "reason": provider_events.SUPPRESSES[event.type],
         "detail": event.reason, "email_id": mail_id}
        for mail_id, event in fresh
        if event.type in provider_events.SUPPRESSES
        and event.recipient in mails[mail_id].recipients
    ], suppression_days)
    outbox.write(conn, webhooks, [
        (row["email_id"], provider_events.CLIENT_EVENT[row["status"]], row["address"],
         row["reason"]) for row in moved if row["status"] in provider_events.CLIENT_EVENT])
    return Recorded(len(fresh), len(matched) - len(fresh), unmatched)


def _lock_for_events(conn, events):
    """The recipients of the events' mails, by mail id, the mails locked in id order.

    The lock makes an event wait while a worker records the send of its mail, so that the
    roll-up never sees half of a mail's recipients.
    """
    ids = sorted({str(event.mail_id) for event in events if event.mail_id})
    message_ids = sorted({event.message_id for event in events if event.message_id})
    if not ids and not message_ids:
        return {}
    rows = conn.execute(
        select(email.c.id, email.c.recipients, email.c.provider_message_id)
        .where(email.c.id.in_(ids) | email.c.provider_message_id.in_(message_ids))
        .order_by(email.c.id).with_for_update())
    return {row.id: _MailOfEvents(frozenset(row.recipients or ()), row.provider_message_id)
            for row in rows}


class _MailOfEvents(NamedTuple):
    """What matching and moving events need of a mail."""

    recipients: frozenset  # bare addresses
    message_id: str | None  # the provider's, as the send answered


def _match(events, mails):
    """``([(mail id, event)], [unmatched events])``: by our id, else by the message id."""
    by_message = {mail.message_id: mail_id for mail_id, mail in mails.items() if mail.message_id}
    matched, unmatched = [], []
    for event in events:
        mail_id = event.mail_id if event.mail_id in mails else by_message.get(event.message_id)
        if mail_id is None:
            unmatched.append(event)
        else:
            matched.append((mail_id, event))
    return matched, unmatched


def _store_events(conn, matched):
    """Insert the events not stored before (one statement); the new ones, in order."""
    unique = {}
    for mail_id, event in matched:
        unique.setdefault((event.provider, event.key[:255]), (mail_id, event))
    if not unique:
        return []
    rows = [{"email_id": mail_id, "provider": provider, "dedup_key": key, "type": event.type,
             "provider_event": event.provider_event[:32], "recipient": event.recipient,
             "severity": event.severity, "reason": event.reason,
             "occurred_at": event.occurred_at, "payload": event.payload}
            for (provider, key), (mail_id, event) in unique.items()]
    statement = (pg_insert(event_table)
                 .on_conflict_do_nothing(index_elements=["provider", "dedup_key"])
                 .returning(event_table.c.provider, event_table.c.dedup_key))
    stored = {(row.provider, row.dedup_key) for row in conn.execute(statement, rows)}
    return [pair for key, pair in unique.items() if key in stored]


def _advance_recipients(conn, fresh, mails):
    """Move each recipient to the furthest status its new events reach; the rows that moved.

    One upsert: the database keeps the current status unless the new one comes later in
    ``RECIPIENT_ORDER`` (a suppressed recipient never moves).
    """
    furthest = {}
    for mail_id, event in fresh:
        status = provider_events.RECIPIENT_STATUS.get(event.type)
        if status is None or event.recipient not in mails[mail_id].recipients:
            continue  # an event only (opened, ...), or an address the mail was not sent to
        key = (mail_id, event.recipient)
        if key not in furthest or _rank(status) >= _rank(furthest[key][0]):
            furthest[key] = (status, event.reason)
    if not furthest:
        return []
    # The rows go as executemany parameters, not .values([...]): one cached statement that
    # SQLAlchemy batches (insertmanyvalues), instead of a new statement of 4 x n parameters
    # compiled for every batch of events (40 % of a 1,000-event request's CPU).
    statement = pg_insert(recipient)
    statement = statement.on_conflict_do_update(
        index_elements=["email_id", "address"],
        set_={"status": statement.excluded.status, "reason": statement.excluded.reason,
              "updated_at": func.now()},
        where=RECIPIENT_RANK(recipient.c.status) < RECIPIENT_RANK(statement.excluded.status),
    ).returning(recipient.c.email_id, recipient.c.address, recipient.c.status,
                recipient.c.reason)
    rows = [{"email_id": mail_id, "address": address, "status": status, "reason": reason}
            for (mail_id, address), (status, reason) in furthest.items()]
    return [dict(row) for row in conn.execute(statement, rows).mappings()]


def _rank(status):
    """A recipient status's place in ``RECIPIENT_ORDER``."""
    return RECIPIENT_ORDER.index(status)


def _roll_up(conn, ids):
    """Set each handed-off mail of ``ids`` to what its recipients now say, if that is further.

    Complained if any recipient complained, else bounced if any bounced, else delivered once
    every recipient is delivered (or unsubscribed, or suppressed); only ever forward.
    """
    if ids:
        conn.execute(ROLL_UP_SQL, {"ids": list(ids)})


def page(session, statuses=(), to=None, tag=None, created_after=None, created_before=None,
         limit=50, after=None):
    """A page of mail, newest first, and whether more follow: ``(mails, more)``, each mail a
    mapping of its ``email`` columns (no ORM objects: they cost more than the query).

    Keyset pagination on (created_at, id): ``after`` is the position of the last mail of the
    previous page. Each filter has its index (status and created_at; recipients and tags by
    GIN), so a page costs the same with a million rows as with a thousand.
    """
    query = select(email).order_by(email.c.created_at.desc(), email.c.id.desc()).limit(limit + 1)
    if statuses:
        query = query.where(email.c.status.in_(statuses))
    if to:
        query = query.where(email.c.recipients.contains([bare_address(to)]))
    if tag:
        query = query.where(email.c.tags.contains([tag]))
    if created_after:
        query = query.where(email.c.created_at > created_after)
    if created_before:
        query = query.where(email.c.created_at < created_before)
    if after:
        query = query.where(tuple_(email.c.created_at, email.c.id) < tuple_(*after))
    mails = session.execute(query).mappings().all()
    return mails[:limit], len(mails) > limit


def as_email(row):
    """An ``Email`` built from the values ``enqueue_many`` stored (nothing read back)."""
    values = {key: value for key, value in row.items() if key not in ("metadata", "files")}
    return Email(**values, meta=row["metadata"])


def counts(conn):
    """How many mails are in each status (none listed for a status with none): the ledger's."""
    return {status: count for status, count in status_counts(conn).items() if count}


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


# Operators' numbers, cheap at any size of the table -------------------------------------------
#
# The number of mails in each status is kept by the database itself (migration 0007):
# statement-level triggers append each statement's net change per status to
# ``email_status_count``, so a count is a sum over a few rows, never a COUNT over ``email``,
# and concurrent inserts never wait on one counter row.

STATUS_COUNTS_SQL = text("SELECT status, sum(n)::bigint FROM email_status_count GROUP BY status")
# Only one fold at a time (a second one skips): two DELETEs of the same rows in different
# orders could deadlock. Rows appended while it runs are not in its snapshot and stay.
FOLD_LOCK = 70070001  # pg advisory lock key of the fold
FOLD_SQL = text(f"""
WITH folded AS (
    DELETE FROM email_status_count WHERE (SELECT pg_try_advisory_xact_lock({FOLD_LOCK}))
    RETURNING status, n
)
INSERT INTO email_status_count (status, n)
SELECT status, sum(n) FROM folded GROUP BY status HAVING sum(n) <> 0
""")
OLDEST_DUE_SQL = text("""
SELECT extract(epoch FROM now() - min(next_attempt_at))
  FROM email WHERE status IN ('queued', 'scheduled') AND next_attempt_at <= now()
""")


def status_counts(conn):
    """How many mails are in each status, every status listed (0 for none).

    Exact (what the caller's snapshot sees committed, plus its own changes) and cheap: a sum
    over the ledger's rows, a few per status once folded.
    """
    counted = dict.fromkeys(STATUSES, 0)
    counted.update({status: int(total) for status, total in conn.execute(STATUS_COUNTS_SQL)})
    return counted


def fold_status_counts(conn):
    """Fold the ledger of status changes to one row per status (the worker calls it now and
    then, so that reading it stays cheap); one statement, a no-op while another fold runs."""
    conn.execute(FOLD_SQL)


def oldest_due_age(conn):
    """Seconds since the oldest due mail (queued, or scheduled and due) fell due; 0 if none.

    How far behind the workers are. The partial index of the claim (``ix_email_due``) finds it
    in one index probe, however many mails the table holds.
    """
    age = conn.scalar(OLDEST_DUE_SQL)
    return max(float(age), 0.0) if age is not None else 0.0


# Operators' actions (the admin) ------------------------------------------------------------
# Each changes only the mails its rule allows, in one statement that re-checks the status (a
# worker may have moved the mail since the page was drawn), and writes an attempt-log row with
# the operator's name (``actor``): the mail's page shows who did what, and when.

RELEASED_OUTCOME, SENT_NOW_OUTCOME = "released", "send_now"
RESENT_OUTCOME, RESENT_FROM_OUTCOME = "resent", "resent_from"
RELEASED = "released by an operator: its worker stopped; the provider may have the mail"
# Columns a resend copies from the original (a new id, status, times and attempt budget).
RESEND_COPIED = ("from_address", "to_address", "cc", "bcc", "reply_to", "subject", "text",
                 "html", "headers", "metadata", "tags", "recipients")
RESEND_SQL = text(f"""
    INSERT INTO email (id, status, attempts, next_attempt_at, {", ".join(RESEND_COPIED)})
    SELECT m.new_id, 'queued', 0, now(), {", ".join("e." + c for c in RESEND_COPIED)}
      FROM email AS e
      JOIN unnest(CAST(:old AS uuid[]), CAST(:new AS uuid[])) AS m(old_id, new_id)
        ON e.id = m.old_id
     WHERE e.status IN ({", ".join(f"'{status}'" for status in HANDED_OFF)})
    RETURNING id
""")
RESEND_ATTACHMENTS_SQL = text("""
    INSERT INTO attachment (email_id, position, filename, content_type, size, content)
    SELECT m.new_id, a.position, a.filename, a.content_type, a.size, a.content
      FROM attachment AS a
      JOIN unnest(CAST(:old AS uuid[]), CAST(:new AS uuid[])) AS m(old_id, new_id)
        ON a.email_id = m.old_id
""")


def _log_actions(conn, rows, outcome, actor, **fields):
    """One attempt-log row per changed mail (``rows`` of id and attempts), by ``actor``."""
    if rows:
        conn.execute(insert(attempt), [
            {"email_id": row.id, "number": row.attempts, "outcome": outcome, "actor": actor,
             **fields} for row in rows])


def release_stuck(conn, ids, actor, alive_workers=None, max_attempts=None):
    """Hand mail stuck in ``sending`` back to the queue, due now: its lease expired, or (with
    ``alive_workers``, the names of the workers alive now) its worker is gone.

    As ``reap`` does, the interrupted send counts as an attempt (the provider may have taken
    the mail, so a resend is at-least-once). Mail of a live worker with a lease still running
    is left alone. Returns the ids released.
    """
    stuck = email.c.locked_until < func.now()
    if alive_workers is not None:
        stuck = stuck | email.c.locked_by.is_(None) | email.c.locked_by.not_in(
            list(alive_workers) or [""])
    spent = email.c.attempts + 1 - email.c.attempts_at_retry
    released = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status == SENDING, stuck)
        .values(status=QUEUED if max_attempts is None
                else case((spent >= max_attempts, FAILED), else_=QUEUED),
                attempts=email.c.attempts + 1, last_error=RELEASED, locked_by=None,
                locked_until=None, next_attempt_at=func.now(), updated_at=func.now())
        .returning(email.c.id, email.c.attempts)
    ).all()
    _log_actions(conn, released, RELEASED_OUTCOME, actor, error=RELEASED)
    return [row.id for row in released]


def send_now(conn, ids, actor):
    """Make mail waiting for its time (backoff after a failure, or scheduled) due now.

    Only mail not yet due changes; it becomes ``queued`` and the next claim takes it. Returns
    the ids changed.
    """
    hurried = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status.in_(WAITING),
               email.c.next_attempt_at > func.now())
        .values(status=QUEUED, next_attempt_at=func.now(), updated_at=func.now())
        .returning(email.c.id, email.c.attempts)
    ).all()
    _log_actions(conn, hurried, SENT_NOW_OUTCOME, actor)
    if hurried:
        conn.execute(text("SELECT pg_notify('mail_queued', '')"))  # wake an idle worker now
    return [row.id for row in hurried]


def resend(conn, ids, actor):
    """Send mail a provider already took again, as a NEW mail: same sender, recipients, body,
    headers, tags, metadata and attachments; queued now with a fresh budget.

    The original keeps its history. Each log names the other mail (``response``
    ``{"resent_as": new}`` on the original, ``{"resent_from": old}`` on the copy). Returns
    ``{original id: new id}`` of the mails resent (only sent, delivered, bounced or
    complained mail is).
    """
    wanted = list(dict.fromkeys(ids))
    pairs = {old: uuid.uuid4() for old in wanted}
    params = {"old": [str(old) for old in pairs], "new": [str(new) for new in pairs.values()]}
    created = {row.id for row in conn.execute(RESEND_SQL, params)}
    pairs = {old: new for old, new in pairs.items() if new in created}
    if not pairs:
        return {}
    conn.execute(RESEND_ATTACHMENTS_SQL, {"old": [str(old) for old in pairs],
                                          "new": [str(new) for new in pairs.values()]})
    originals = conn.execute(select(email.c.id, email.c.attempts)
                             .where(email.c.id.in_(list(pairs)))).all()
    conn.execute(insert(attempt), [
        {"email_id": row.id, "number": row.attempts, "outcome": RESENT_OUTCOME, "actor": actor,
         "response": {"resent_as": str(pairs[row.id])}, "error": f"resent as {pairs[row.id]}"}
        for row in originals])
    conn.execute(insert(attempt), [
        {"email_id": new, "number": 0, "outcome": RESENT_FROM_OUTCOME, "actor": actor,
         "response": {"resent_from": str(old)}, "error": f"a resend of {old}"}
        for old, new in pairs.items()])
    return pairs
