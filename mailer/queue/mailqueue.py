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
  (sent, deferred, delivered, bounced, unsubscribed, complained) and the mail with them (the
  roll-up; a batch's in the statement that stores it, ``STORE_AND_MOVE_SQL``); permanent
  bounces, complaints and unsubscribes go on the suppression list.
- ``counts``: how much mail is in each status (the admin's dashboard), from the ledger of
  ``status_counts`` at the end of the module, with ``oldest_due_age``.
- ``purge_batch`` and ``count_purgeable``: delete finished mail past the retention period.
- ``page`` and ``mail_detail``: what the API lists and shows (``GET /mail``, ``GET /mail/<id>``),
  one statement each, written out for psycopg2.

Every status change writes the client's webhooks (``outbox.write``) in its own transaction. The
SQL of the suppression list and of the outbox's deliveries lives in ``suppressions`` and
``outbox``, each list or table with its own rules; every change of a mail's status is here.

Every time here is the database's (``now()``), never a worker's: a worker whose clock is an
hour ahead neither takes another's leases early nor sends mail before it is due. No
transaction here stays open across a provider call: the worker claims, commits, sends, and
only then opens a new transaction to record what happened.
"""

import json
import os
import re
import uuid
from collections import namedtuple
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import psycopg2
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
from sqlalchemy.exc import DBAPIError, IntegrityError

from mailer.events import outbox
from mailer.events import provider as provider_events
from mailer.queue import suppressions
from mailer.validation.addresses import bare_address
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
    Email,
    IdempotencyKey,
    Recipient,
)

email = Email.__table__
attempt = DeliveryAttempt.__table__
attachment = Attachment.__table__
keys = IdempotencyKey.__table__
recipient = Recipient.__table__

LEASE_EXPIRED = "lease expired: the worker stopped while sending; the provider may have the mail"
# Outcomes of attempt-log rows written here rather than by a provider call.
LEASE_EXPIRED_OUTCOME, RETRIED_OUTCOME, CANCELLED_OUTCOME = (
    "lease_expired",
    "retried",
    "cancelled",
)
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

# Every recipient of mail a provider took starts "sent" (one suppressed already has its row).
SENT_RECIPIENTS_SQL = (
    "INSERT INTO recipient (email_id, address, status) "
    "SELECT id, unnest(recipients), 'sent' FROM email WHERE id = ANY(%(ids)s::uuid[]) "
    "ON CONFLICT DO NOTHING"
)
HANDED_OFF_ARRAY = "ARRAY[" + ", ".join(f"'{status}'" for status in HANDED_OFF) + "]::text[]"
# What a mail's recipients say of it (``status`` over the rows of one mail, grouped).
SAID_STATUS = f"""CASE WHEN bool_or(status = '{COMPLAINED}') THEN '{COMPLAINED}'
                WHEN bool_or(status = '{BOUNCED}') THEN '{BOUNCED}'
                WHEN bool_and(status IN ('{DELIVERED}', '{UNSUBSCRIBED}', '{SUPPRESSED}'))
                    THEN '{DELIVERED}'
                ELSE '{SENT}' END"""
# Only ever forward: a mail moves when what its recipients say comes later in HANDED_OFF.
FURTHER = (
    f"array_position({HANDED_OFF_ARRAY}, email.status) "
    f"< array_position({HANDED_OFF_ARRAY}, said.status)"
)
# The handed-off mails ``ids`` (an array parameter) as their recipients now say, if that is
# further: complained if any recipient complained, else bounced if any bounced, else delivered
# once every recipient is delivered (or unsubscribed, or suppressed); only ever forward. Sent
# after SENT_RECIPIENTS_SQL in ``finish``'s round trip (a batch of events rolls its mails up
# in STORE_AND_MOVE_SQL).
ROLL_UP_SQL = f"""
WITH said AS (
    SELECT email_id, {SAID_STATUS} AS status
      FROM recipient WHERE email_id = ANY(%(ids)s::uuid[]) GROUP BY email_id)
UPDATE email SET status = said.status, updated_at = now()
  FROM said
 WHERE email.id = said.email_id AND {FURTHER}
"""

INSERT_COLUMNS = (
    "id",
    "from_address",
    "to_address",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "attempts",
    "headers",
    "metadata",
    "tags",
    "recipients",
    "send_at",
)
# Mail with a send_at in the future is held (scheduled) until then; the database's clock
# decides, and a time in the past means now.
INSERT_ROW = (
    "(" + ", ".join(["%s"] * len(INSERT_COLUMNS)) + ", CASE WHEN %s::timestamptz > "
    "now() THEN 'scheduled' ELSE 'queued' END, GREATEST(%s::timestamptz, now()))"
)
# The ids come back as text, as they were sent: no UUID objects parsed back only to be compared.
INSERT_SQL = (
    f"INSERT INTO email ({', '.join(INSERT_COLUMNS)}, status, next_attempt_at) "
    "VALUES {rows} RETURNING id::text, created_at, status, next_attempt_at"
)
# More than ``VALUES_UP_TO`` mails go as one array per column, unnested in the database (as
# ``record_events`` stores events): a VALUES list of 17 parameters a mail makes psycopg2 quote
# 17,000 values for a batch of 1,000 and PostgreSQL parse and plan them all, where arrays are a
# fixed 17 parameters. Unnesting has a fixed cost per statement of its own, so a few mails are
# cheaper as a VALUES list (BENCHMARKS.md, "Measurements behind the code"). The list columns
# go as arrays of array literals (``_array_literal``), the jsonb ones as arrays of JSON texts,
# each cast per row: the same values as ``row_params`` gives.
VALUES_UP_TO = 10  # mails
INSERT_ARRAYS_SQL = """
INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html, attempts,
                   headers, metadata, tags, recipients, send_at, status, next_attempt_at)
SELECT m.id, m.from_address, m.to_address::text[], m.cc::text[], m.bcc::text[], m.reply_to,
       m.subject, m.text, m.html, 0, m.headers::jsonb, m.metadata::jsonb, m.tags::text[],
       m.recipients::text[], m.send_at,
       CASE WHEN m.send_at > now() THEN 'scheduled' ELSE 'queued' END,
       GREATEST(m.send_at, now())
  FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
              %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
              %s::text[], %s::timestamptz[])
       AS m(id, from_address, to_address, cc, bcc, reply_to, subject, text, html, headers,
            metadata, tags, recipients, send_at)
RETURNING id::text, created_at, status, next_attempt_at
"""
ATTACHMENT_ROW = "(%s, %s, %s, %s, %s, %s)"
ATTACHMENT_SQL = (
    "INSERT INTO attachment (email_id, position, filename, content_type, size, "
    "content) VALUES {rows}"
)
# The key of a request with an Idempotency-Key, written in the statement that stores its mail,
# with the answer and what the database set for the (first) mail: a batch's answer shows none
# of it. Built with SQLAlchemy's expression language, it cost more CPU per request than the
# whole INSERT of the mail.
TAKE_KEY_SQL = (
    "INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response, "
    "mail_created_at, mail_status, mail_next_attempt_at) SELECT %s, %s, %s, %s, "
    "%s::jsonb, created_at, status, next_attempt_at FROM mail LIMIT 1"
)
# Each tag of the stored mail (``tagged``: mail id and tag, one pair per tag), with the mail's
# created_at, in mail_tag: the index that GET /mail?tag= reads (migration 0010). Only a
# submission with tags has this part.
MAIL_TAG_SQL = (
    "INSERT INTO mail_tag (email_id, tag, created_at) "
    "SELECT mail.id::uuid, tagged.tag, mail.created_at "
    "FROM unnest(%s::text[], %s::text[]) AS tagged(email_id, tag) "
    "JOIN mail ON mail.id = tagged.email_id"
)
KEY_CONSTRAINT = "idempotency_key_pkey"  # violated: the key was taken by another request
MAIL_CONSTRAINT = "email_pkey"  # violated by a second run: the first one stored the mail
READ_KEY_SQL = (
    "SELECT fingerprint, status_code, response, mail_created_at, mail_status, "
    "mail_next_attempt_at, created_at < now() - %s * interval '1 second' "
    "FROM idempotency_key WHERE scope = %s AND key = %s"
)
DELETE_KEY_SQL = "DELETE FROM idempotency_key WHERE scope = %s AND key = %s"
READ_BACK_SQL = (
    "SELECT id::text, created_at, status, next_attempt_at FROM email WHERE id = ANY(%s::uuid[])"
)


# ``finish``'s statements, written for psycopg2 with one array per column (psycopg2 adapts a
# list in C): the per-mail executemany of SQLAlchemy's compiled UPDATE and INSERT cost more of
# the worker's CPU than any other step of a mail but its provider call.
ATTACHMENTS_SQL = (
    "SELECT email_id, filename, content_type, content FROM attachment "
    "WHERE email_id = ANY(%s::uuid[]) ORDER BY email_id, position"
)
OWNED_SQL = (
    "SELECT id FROM email WHERE id = ANY(%s::uuid[]) AND locked_by = %s ORDER BY id FOR UPDATE"
)
# ``finish`` sends its statements in two round trips (BEGIN and COMMIT aside), each several
# statements that run in turn: OWNED_SQL (the locks, in id order), ATTEMPTS_SQL, then
# FINISH_SQL, whose RETURNING is the mails still owned; then the hand-off's recipients and
# roll-up. A round trip costs the recorder more CPU than the rows it carries.
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
    """The answer a key got the first time, to be given again: its status and body, without
    what the database set for the mail (``stamps``: created_at, status, next_attempt_at; None
    for a batch and for keys kept before migration 0009, whose body has it all)."""

    status_code: int
    response: dict
    stamps: tuple | None


def seconds(value):
    """An SQL interval of ``value`` seconds from now()."""
    return func.now() + SECOND * value


# The hex digit that starts a version 4 UUID's fourth group: RFC 4122's variant (binary 10) in
# its top two bits, two random bits below.
VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(count):
    """``count`` random (version 4) UUIDs as text, as ``str(uuid.uuid4())`` writes them.

    The ids of new mail, made from one ``os.urandom`` call rather than a ``uuid4()`` and its
    ``str()`` per mail, which weigh on building a batch's rows; every use of an id is as text
    (the statement, the answer)."""
    digits = os.urandom(16 * count).hex()
    return [
        f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-4{digits[at + 13 : at + 16]}-"
        f"{VARIANT_DIGIT[digits[at + 16]]}{digits[at + 17 : at + 20]}-{digits[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


def new_mail_row(clean, mail_id):
    """The column values of a new mail from a request that ``validate_mail`` cleaned (its lists
    and dicts shared, not copied); ``mail_id``: its id, as text (``new_ids``)."""
    to, cc, bcc = clean["to"], clean["cc"], clean["bcc"]
    return {
        "id": mail_id,
        "from_address": clean["from_address"],
        "to_address": to,
        "cc": cc,
        "bcc": bcc,
        "reply_to": clean["reply_to"],
        "subject": clean["subject"],
        "text": clean["text"],
        "html": clean["html"],
        "attempts": 0,
        "headers": clean["headers"],
        "metadata": clean["metadata"],
        "tags": clean["tags"],
        "recipients": recipients_of(to, cc, bcc),
        "send_at": clean["send_at"],
        "files": [
            {
                "filename": item["filename"],
                "content_type": item["content_type"],
                "size": len(item["content"]),
            }
            for item in clean["attachments"]
        ],
    }


def recipients_of(to, cc, bcc):
    """Every recipient's bare address (``bare_address``), once each, in to, cc, bcc order."""
    if not cc and not bcc and len(to) == 1:  # most mail: no list to build and deduplicate
        return [bare_address(to[0])]
    return list(dict.fromkeys(bare_address(address) for address in [*to, *cc, *bcc]))


def enqueue_many(begin, cleans, idempotency=None, answer=None):
    """Store validated requests in one statement: all or none. Returns their rows (ids as text).

    Each row also holds ``created_at``, ``status`` and ``next_attempt_at`` as the database set
    them, so the API answers from what it stored without reading it back. ``begin(True)``
    yields a DB-API cursor whose one statement commits by itself
    (``database.dbapi_transaction``: one round trip, where BEGIN, INSERT and COMMIT took
    three), or a cursor in a test's savepoint. With ``idempotency``, the same statement stores
    the key with ``answer(rows)`` (status, JSON text of the body without what the database
    sets); a key already used returns a ``Replay`` instead of rows (or raises
    ``IdempotencyConflict`` for a different request).
    """
    ids = new_ids(len(cleans))
    rows = [new_mail_row(clean, mail_id) for clean, mail_id in zip(cleans, ids, strict=True)]
    statement, params = _submission(rows, ids, cleans, idempotency, answer)
    for _ in range(2):
        try:
            stored = _run_once_more_if_dead(begin, statement, params, ids)
        except _KeyTaken:  # the statement failed as a whole: nothing of this request is stored
            replay = _replay(begin, idempotency)
            if replay is not None:
                return replay
            continue
        return _stamped(rows, ids, stored)
    raise IdempotencyConflict(idempotency.key)  # taken and lost twice in a row: say so


class _KeyTaken(Exception):
    """The request's Idempotency-Key was taken by another request: nothing was stored."""


class _AlreadyStored(Exception):
    """A second run of a submission found its mail: the first run was committed."""


def _submission(rows, ids, cleans, idempotency, answer):
    """The one statement (and its parameters) that stores ``rows``, their attachments and the
    key: each a data-modifying WITH query of a single statement, so all of it is committed,
    or none (a taken key fails the statement: a concurrent request with the same key waits on
    the key's index until the first commits, and then replays its answer).
    """
    mail, params = _mail_statement(rows, ids)
    parts = []
    files = [
        (mail_id, clean.get("attachments") or [])
        for mail_id, clean in zip(ids, cleans, strict=True)
    ]
    file_params = _attachment_params(files)
    if file_params:
        parts.append(
            ATTACHMENT_SQL.format(rows=", ".join([ATTACHMENT_ROW] * (len(file_params) // 6)))
        )
        params += file_params
    tagged = _tag_params(rows, ids)
    if tagged:
        parts.append(MAIL_TAG_SQL)
        params += tagged
    if idempotency is not None:
        status_code, body = answer(rows)
        parts.append(TAKE_KEY_SQL)
        params += [idempotency.scope, idempotency.key, idempotency.fingerprint, status_code, body]
    if not parts:
        return mail, params
    queries = ", ".join(f"extra{index} AS ({part})" for index, part in enumerate(parts))
    return (
        f"WITH mail AS ({mail}), {queries} SELECT id, created_at, status, next_attempt_at FROM mail"
    ), params


def _run_once_more_if_dead(begin, statement, params, ids):
    """Run the submission's statement; what the database returned for its mail.

    A connection that died (a restarted database) fails the statement, and the statement may
    or may not have been committed first: the answer is what was lost. So it runs once more,
    on a fresh connection, with the same mail ids: either it stores the mail now, or the
    mail's primary key says the first run did, and the stored values are read back. Never a
    second mail.
    """
    try:
        return _run(begin, statement, params)
    except DBAPIError as err:
        if not err.connection_invalidated:
            raise
    try:
        return _run(begin, statement, params, stored_means_done=True)
    except _AlreadyStored:
        with begin() as cursor:
            cursor.execute(READ_BACK_SQL, (ids,))
            return cursor.fetchall()


def _run(begin, statement, params, stored_means_done=False):
    """The statement on its own, committed as it ends; its rows. A taken key raises _KeyTaken,
    and with ``stored_means_done`` an existing mail id raises _AlreadyStored."""
    try:
        with begin(True) as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()
    except IntegrityError as err:
        violated = getattr(getattr(err.orig, "diag", None), "constraint_name", None)
        if violated == KEY_CONSTRAINT:
            raise _KeyTaken from None
        if stored_means_done and violated == MAIL_CONSTRAINT:
            raise _AlreadyStored from None
        raise


def _stamped(rows, ids, stored):
    """``rows`` with what the database set for each (matched by id, as text)."""
    by_id = {values[0]: values for values in stored}  # (id, created_at, status, due)
    for row, mail_id in zip(rows, ids, strict=True):
        _, row["created_at"], row["status"], row["next_attempt_at"] = by_id[mail_id]
        row["updated_at"] = row["created_at"]
    return rows


def _mail_statement(rows, ids):
    """The INSERT of ``rows`` (``ids``: their ids as text) and its parameters: a VALUES list up
    to ``VALUES_UP_TO`` mails, one array per column beyond."""
    if len(rows) > VALUES_UP_TO:
        return INSERT_ARRAYS_SQL, mail_columns(rows, ids)
    params = [
        value for row, mail_id in zip(rows, ids, strict=True) for value in row_params(row, mail_id)
    ]
    return INSERT_SQL.format(rows=", ".join([INSERT_ROW] * len(rows))), params


def row_params(row, mail_id):
    """The parameters of one row of ``INSERT_ROW``: its columns in ``INSERT_COLUMNS`` order
    (``mail_id``: its id as text), then send_at twice. psycopg2 adapts neither UUIDs nor dicts:
    a string, and JSON text (which the jsonb columns take as they would take Json(); most
    mails have none)."""
    return [
        mail_id,
        row["from_address"],
        row["to_address"],
        row["cc"],
        row["bcc"],
        row["reply_to"],
        row["subject"],
        row["text"],
        row["html"],
        row["attempts"],
        _json_text(row["headers"]),
        _json_text(row["metadata"]),
        row["tags"],
        row["recipients"],
        row["send_at"],
        row["send_at"],
        row["send_at"],
    ]


def mail_columns(rows, ids):
    """The parameters of ``INSERT_ARRAYS_SQL``: each column of ``rows`` as one array (``ids``: the
    mails' ids as text). The attempts are 0, written in the statement."""
    columns = [ids, [row["from_address"] for row in rows]]
    columns += [[_array_literal(row[name]) for row in rows] for name in ("to_address", "cc", "bcc")]
    columns += [[row[name] for row in rows] for name in ("reply_to", "subject", "text", "html")]
    columns += [[_json_text(row[name]) for row in rows] for name in ("headers", "metadata")]
    columns += [[_array_literal(row[name]) for row in rows] for name in ("tags", "recipients")]
    columns.append([row["send_at"] and row["send_at"].isoformat() for row in rows])
    return [_pg_array(column) for column in columns]


def _array_literal(values):
    """A list of strings as the text of a PostgreSQL array literal: each element in double
    quotes, where only a double quote and a backslash are escaped (with a backslash)."""
    if not values:
        return "{}"
    joined = '","'.join(values)
    if '"' in joined or "\\" in joined:
        joined = '","'.join(value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return '{"' + joined + '"}'


def _json_text(value):
    """A dict as JSON text for a jsonb column (as psycopg2's Json would write it)."""
    return json.dumps(value) if value else "{}"


def _attachment_params(attachments):
    """The parameters of every mail's attachments (``(mail id as text, files)``), in order, for
    ``ATTACHMENT_ROW``s."""
    params = []
    for mail_id, files in attachments:
        for position, item in enumerate(files):
            params += [
                mail_id,
                position,
                item["filename"],
                item["content_type"],
                len(item["content"]),
                psycopg2.Binary(item["content"]),
            ]
    return params


def _tag_params(rows, ids):
    """``MAIL_TAG_SQL``'s parameters for the tags of ``rows`` (``ids``: their ids as text): the
    mail ids and the tags, one pair per tag; [] when no mail has a tag."""
    pairs = [
        (mail_id, tag)
        for row, mail_id in zip(rows, ids, strict=True)
        for tag in dict.fromkeys(row["tags"])
    ]
    if not pairs:
        return []
    return [[mail_id for mail_id, _ in pairs], [tag for _, tag in pairs]]


def _replay(begin, idempotency):
    """The Replay of the answer the key got first, or None if the key is gone or expired
    (deleted here, so that the next attempt takes it anew); IdempotencyConflict if it came
    with another request."""
    where = (idempotency.scope, idempotency.key)
    with begin() as cursor:
        cursor.execute(READ_KEY_SQL, (idempotency.ttl, *where))
        row = cursor.fetchone()
        if row is None or row[-1]:  # gone meanwhile, or past its TTL: take it anew
            cursor.execute(DELETE_KEY_SQL, where)
            return None
    fingerprint, status_code, response, created, status, due, _ = row
    if fingerprint != idempotency.fingerprint:
        raise IdempotencyConflict(idempotency.key)
    return Replay(status_code, response, (created, status, due) if created else None)


def purge_idempotency_keys(conn, ttl, batch_size):
    """Delete up to ``batch_size`` keys older than ``ttl`` seconds; how many went."""
    doomed = (
        select(keys.c.scope, keys.c.key).where(keys.c.created_at < seconds(-ttl)).limit(batch_size)
    )
    return conn.execute(delete(keys).where(tuple_(keys.c.scope, keys.c.key).in_(doomed))).rowcount


def claim(conn, worker, limit, lease_seconds):
    """Mark up to ``limit`` due mails ``sending`` for ``worker``, and return them.

    The inner SELECT skips rows that another worker has locked, so concurrent claims never
    wait for each other nor take the same mail; the lease lets the reaper recover the batch if
    this worker dies.
    """
    result = conn.exec_driver_sql(
        CLAIM_SQL, {"worker": worker, "limit": limit, "lease": float(lease_seconds)}
    )
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
        ATTACHMENTS_SQL, (list(ids_by_text),)
    ):
        found.setdefault(ids_by_text[str(mail_id)], []).append(
            {"filename": filename, "content_type": content_type, "content": bytes(content)}
        )
    return found


def finish(conn, worker, decisions, attempts, webhooks=None):
    """Record the end of a batch of sends: one UPDATE of every mail, one INSERT of every attempt.

    Only rows still leased to ``worker`` change, so a worker whose lease was taken over does not
    overwrite the newer owner's state. ``decisions`` are ``delivery.Decision`` objects. Mail
    that went (or was suppressed) gets its recipients, and the client the webhooks it wants
    (``webhooks``, an ``outbox.Subscription``), in the same transaction.
    """
    if not decisions:
        if attempts:
            conn.exec_driver_sql(ATTEMPTS_SQL, _attempt_columns(attempts))
        return
    decisions = _owned_and_finished(conn, worker, decisions, attempts)
    _hand_off(conn, decisions, webhooks)


def _owned_and_finished(conn, worker, decisions, attempts):
    """Lock the mails ``worker`` still leases, insert ``attempts``, update those mails; the
    decisions of those mails (one round trip).

    Every writer that locks several mails (this, ``record_events``) takes them in id order, so
    a batch of sends and a batch of events never deadlock: the UPDATE finds them locked already,
    and its RETURNING names the same mails as the locking SELECT.
    """
    by_id = {str(d.id): d for d in decisions}
    statements, parameters = [OWNED_SQL], [list(by_id), worker]
    if attempts:
        statements.append(ATTEMPTS_SQL)
        parameters += _attempt_columns(attempts)
    statements.append(FINISH_SQL + " RETURNING email.id")
    parameters += [*_finish_columns(decisions), worker]
    owned = conn.exec_driver_sql(";".join(statements), tuple(parameters))
    return [by_id[str(mail_id)] for (mail_id,) in owned]


def _hand_off(conn, decisions, webhooks):
    """Recipients of mail that went or was suppressed, and the client's webhooks of the batch.

    Each recipient starts ``sent`` (or ``suppressed``); an event that came before the send was
    recorded already moved its recipient on, so the mail is rolled up at once.
    """
    suppressed = [
        {"email_id": d.id, "address": address, "status": SUPPRESSED, "reason": reason}
        for d in decisions
        if d.status in (SENT, SUPPRESSED)
        for address, reason in d.suppressed
    ]
    if suppressed:
        conn.execute(pg_insert(recipient).values(suppressed).on_conflict_do_nothing())
    sent = [str(d.id) for d in decisions if d.status == SENT]
    if sent:  # one round trip: the roll-up sees the recipients just inserted
        conn.exec_driver_sql(SENT_RECIPIENTS_SQL + ";" + ROLL_UP_SQL, {"ids": sent})
    items = [
        (row["email_id"], outbox.SUPPRESSED, row["address"], row["reason"]) for row in suppressed
    ]
    items += [
        (
            d.id,
            outbox.SENT if d.status == SENT else outbox.FAILED,
            None,
            d.last_error if d.status == FAILED else None,
        )
        for d in decisions
        if d.status in (SENT, FAILED)
    ]
    outbox.write(conn, webhooks, items)


def _finish_columns(decisions):
    """The arrays of ``FINISH_SQL``: one per column, one element per mail, in order.

    A delivery that called no provider has no ``result`` (NULL): the mail keeps the answers of
    the last one that did.
    """
    return (
        [str(d.id) for d in decisions],
        [d.status for d in decisions],
        [d.provider for d in decisions],
        [d.message_id for d in decisions],
        [None if d.result is None else json.dumps(d.result) for d in decisions],
        [d.attempts for d in decisions],
        [d.last_error for d in decisions],
        [float(d.retry_in) for d in decisions],
    )


def _attempt_columns(rows):
    """The arrays of ``ATTEMPTS_SQL`` from attempt-log rows (``delivery.attempt_rows``).

    ``response`` is JSON text, a None included (JSON null, as the ``JSON`` column stores it).
    """
    return (
        [str(row["email_id"]) for row in rows],
        [row["number"] for row in rows],
        [row["provider"] for row in rows],
        [row["outcome"] for row in rows],
        [row["status_code"] for row in rows],
        [json.dumps(row["response"]) for row in rows],
        [row["error"] for row in rows],
        [row["duration_ms"] for row in rows],
        [row["worker"] for row in rows],
        [row["created_at"] for row in rows],
    )


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
        conn.execute(
            insert(attempt),
            [
                {
                    "email_id": row.id,
                    "number": row.attempts,
                    "provider": None,
                    "outcome": LEASE_EXPIRED_OUTCOME,
                    "error": LEASE_EXPIRED,
                    "worker": worker,
                }
                for row in reaped
            ],
        )
    return [(row.id, row.status) for row in reaped]


def retry(conn, ids, actor):
    """Queue failed or cancelled mails again, due now, with a fresh budget; record who did it.

    ``attempts`` keeps counting (the log never shows two "#1"); the budget of MAX_ATTEMPTS and
    MAX_AGE starts again from this moment. Returns how many were queued.
    """
    retried = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status.in_(RETRYABLE))
        .values(
            status=QUEUED,
            next_attempt_at=func.now(),
            last_error=None,
            retried_at=func.now(),
            attempts_at_retry=email.c.attempts,
            updated_at=func.now(),
        )
        .returning(email.c.id, email.c.attempts)
    ).all()
    if retried:
        conn.execute(
            insert(attempt),
            [
                {
                    "email_id": row.id,
                    "number": row.attempts,
                    "outcome": RETRIED_OUTCOME,
                    "actor": actor,
                }
                for row in retried
            ],
        )
    return len(retried)


def seconds_until_due(conn):
    """Seconds until the earliest waiting mail falls due (0 if one is due), or None if none."""
    earliest = (
        select(func.min(email.c.next_attempt_at))
        .where(email.c.status.in_(WAITING))
        .scalar_subquery()
    )
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
        conn.execute(
            insert(attempt),
            [
                {
                    "email_id": row.id,
                    "number": row.attempts,
                    "outcome": CANCELLED_OUTCOME,
                    "actor": actor,
                }
                for row in cancelled
            ],
        )
        outbox.write(conn, webhooks, [(row.id, outbox.CANCELLED, None, None) for row in cancelled])
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

    A batch is two statements, whatever its size: lock its mails (``_lock_for_events``), then
    insert its new events, move their recipients and roll their mails up in one
    (``_store_and_move``); then, if any, suppressions and webhooks. Mail ids are handled as
    text here, as the database writes them: a thousand ``uuid.UUID`` objects to build, hash and
    adapt cost more than the statements' Python (``Event.mail_id`` is text already).
    """
    mails = _lock_for_events(conn, events)
    matched, unmatched = _match(events, mails)
    new, suppressing, moved = _store_and_move(conn, matched, mails, webhooks is not None)
    suppressions.add_many(
        conn,
        [
            {
                "address": event.recipient,
                "reason": provider_events.SUPPRESSES[event.type],
                "detail": event.reason,
                "email_id": uuid.UUID(mail_id),
            }
            for mail_id, event in suppressing
        ],
        suppression_days,
    )
    outbox.write(
        conn,
        webhooks,
        [
            (mail_id, provider_events.CLIENT_EVENT[status], address, reason)
            for mail_id, address, status, reason in moved
        ],
    )
    return Recorded(new, len(matched) - new, unmatched)


# The statements of ``record_events``, written for psycopg2 as ``INSERT_ARRAYS_SQL`` is: each
# column of a batch goes as one array parameter, unnested in the database. SQLAlchemy's
# insertmanyvalues spent more CPU building and keying 10 parameters per event (and JSON-encoding
# each payload again) than PostgreSQL spent storing them, and a VALUES list of 10,000
# parameters cost milliseconds of planning. Each array goes as one literal (``_pg_array``),
# which costs a fraction of a list that psycopg2 adapts value by value; the payloads, JSON
# already, go as one JSON array.
LOCK_FOR_EVENTS_SQL = """
SELECT email.id::text AS mail_id, recipients, provider_message_id FROM email
 WHERE email.id = ANY(%s::uuid[]) OR provider_message_id = ANY(%s::text[])
 ORDER BY email.id FOR UPDATE
"""
RECIPIENT_ORDER_ARRAY = "ARRAY[" + ", ".join(f"'{s}'" for s in RECIPIENT_ORDER) + "]::text[]"
SUPPRESSING_ARRAY = (
    "ARRAY[" + ", ".join(f"'{kind}'" for kind in provider_events.SUPPRESSES) + "]::text[]"
)
REPORTED_ARRAY = (
    "ARRAY[" + ", ".join(f"'{status}'" for status in provider_events.CLIENT_EVENT) + "]::text[]"
)
# One statement after the lock: its snapshot is taken once the mails are locked, so it sees
# every recipient that a worker's send committed before. Its parts, each a WITH query:
# - item: the batch's events, one row each (unnest keeps their order, so that the stored ids,
#   the timeline's tie-break, follow the batch); ``moves_to`` is the status the event moves
#   its recipient to (NULL: it moves none: an open, or an address the mail was not sent to);
# - fresh: the events not stored before (a repeat meets the dedup index and is skipped), news
#   those of them that move a recipient;
# - moves: each recipient's furthest status among the new events (the last of equals);
# - moved: the recipients that moved (the database keeps a status unless the new one comes
#   later in RECIPIENT_ORDER; a suppressed recipient, not in it, never moves);
# - said, then the UPDATE: each mail of a moved recipient, rolled up. All parts see the same
#   snapshot, so said reads the mail's recipients from moved and from the table's rows that
#   did not move, never the rows as they were before moved changed them. A mail of one
#   recipient (``fanout``, the addresses it was sent to: a recipient row is only ever made for
#   one of them) has no row but the one that moved: the table is read only for the others.
# It answers the number of new events, the positions of the new events that suppress their
# recipient, and (when ``%(report)s``) the moved recipients that raise a client webhook, in
# the order of their first new event.
STORE_AND_MOVE_SQL = f"""
WITH item AS (
    SELECT * FROM unnest(%(mail_ids)s::uuid[], %(providers)s::text[], %(keys)s::text[],
                         %(types)s::text[], %(names)s::text[], %(recipients)s::text[],
                         %(severities)s::text[], %(reasons)s::text[],
                         %(moments)s::timestamptz[], %(moves)s::text[], %(fanouts)s::int[])
           WITH ORDINALITY AS item(email_id, provider, dedup_key, type, provider_event,
                                   recipient, severity, reason, occurred_at, moves_to, fanout,
                                   n)
), fresh AS (
    INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event,
                                recipient, severity, reason, occurred_at, payload)
    SELECT email_id, provider, dedup_key, type, provider_event, recipient, severity, reason,
           occurred_at, CAST(%(payloads)s AS jsonb) -> CAST(n - 1 AS int)
      FROM item
    ON CONFLICT (provider, dedup_key) DO NOTHING
    RETURNING provider, dedup_key
), news AS (
    SELECT * FROM item
     WHERE moves_to IS NOT NULL
       AND (provider, dedup_key) IN (SELECT provider, dedup_key FROM fresh)
), moves AS (
    SELECT DISTINCT ON (email_id, recipient) email_id, recipient AS address,
           moves_to AS status, reason, fanout,
           min(n) OVER (PARTITION BY email_id, recipient) AS first
      FROM news
     ORDER BY email_id, recipient, array_position({RECIPIENT_ORDER_ARRAY}, moves_to) DESC,
              n DESC
), moved AS (
    INSERT INTO recipient (email_id, address, status, reason)
    SELECT email_id, address, status, reason FROM moves ORDER BY first
    ON CONFLICT (email_id, address) DO UPDATE
       SET status = excluded.status, reason = excluded.reason, updated_at = now()
     WHERE array_position({RECIPIENT_ORDER_ARRAY}, recipient.status)
           < array_position({RECIPIENT_ORDER_ARRAY}, excluded.status)
    RETURNING email_id, address, status, reason
), said AS (
    SELECT email_id, {SAID_STATUS} AS status
      FROM (SELECT email_id, status FROM moved
            UNION ALL
            SELECT email_id, status FROM recipient
             WHERE email_id IN (SELECT email_id FROM moves WHERE fanout > 1)
               AND (email_id, address) NOT IN (SELECT email_id, address FROM moved)) AS now
     GROUP BY email_id
), rolled AS (
    UPDATE email SET status = said.status, updated_at = now()
      FROM said
     WHERE email.id = said.email_id AND {FURTHER}
)
SELECT (SELECT count(*) FROM fresh),
       ARRAY(SELECT n FROM news WHERE type = ANY({SUPPRESSING_ARRAY}) ORDER BY n),
       (SELECT json_agg(json_build_array(moved.email_id, address, moved.status, moved.reason)
                        ORDER BY moves.first)
          FROM moved JOIN moves USING (email_id, address)
         WHERE %(report)s AND moved.status = ANY({REPORTED_ARRAY}))
"""
# A backslash that starts an escape other than \" or \\ (see _pg_array).
_JSON_ESCAPE = re.compile(r'\\[^"\\]')


def _pg_array(values):
    """``values`` (strings, integers or None) as the text of a PostgreSQL array literal.

    JSON's ``["a","b\\"c",null]`` is the literal ``{"a","b\\"c",null}`` once its brackets
    are braces: inside double quotes both read \\" and \\\\ alike, and an unquoted null is
    NULL. Other JSON escapes (\\n, \\u0001, ...) mean something else in an array literal: a
    list with one goes to psycopg2 as a list, which it adapts value by value.
    """
    text = provider_events.COMPACT.encode(values)
    if _JSON_ESCAPE.search(text):
        return values
    return "{" + text[1:-1] + "}"


def _isoformats(moments):
    """Each datetime of ``moments`` as ISO 8601 text, each distinct one written once (a batch
    brings a few moments with each of its events)."""
    texts = {}
    return [
        texts[moment] if moment in texts else texts.setdefault(moment, moment.isoformat())
        for moment in moments
    ]


def _lock_for_events(conn, events):
    """The recipients of the events' mails, by mail id (text), the mails locked in id order.

    The lock makes an event wait while a worker records the send of its mail, so that the
    roll-up never sees half of a mail's recipients.
    """
    ids = sorted({event.mail_id for event in events if event.mail_id})
    message_ids = sorted({event.message_id for event in events if event.message_id})
    if not ids and not message_ids:
        return {}
    rows = conn.exec_driver_sql(LOCK_FOR_EVENTS_SQL, (_pg_array(ids), _pg_array(message_ids)))
    return {
        mail_id: _MailOfEvents(frozenset(recipients or ()), message_id)
        for mail_id, recipients, message_id in rows
    }


class _MailOfEvents(NamedTuple):
    """What matching and moving events need of a mail."""

    recipients: frozenset  # bare addresses
    message_id: str | None  # the provider's, as the send answered


def _match(events, mails):
    """``([(mail id, event)], [unmatched events])``: by our id, else by the message id."""
    by_message = {mail.message_id: mail_id for mail_id, mail in mails.items() if mail.message_id}
    matched, unmatched = [], []
    for event in events:
        mail_id = event.mail_id
        if mail_id not in mails:
            mail_id = by_message.get(event.message_id)
        if mail_id is None:
            unmatched.append(event)
        else:
            matched.append((mail_id, event))
    return matched, unmatched


def _store_and_move(conn, matched, mails, report):
    """Insert the events not stored before, move their recipients, roll their mails up: one
    statement (``STORE_AND_MOVE_SQL``). Returns how many events were new, the new ``(mail id,
    event)`` that suppress their recipient, and (if ``report``) the moved recipients that raise
    a client webhook, ``(mail id, address, status, reason)``.
    """
    unique = {}
    for mail_id, event in matched:
        unique.setdefault((event.provider, event.key[:255]), (mail_id, event))
    if not unique:
        return 0, [], []
    pairs = list(unique.values())
    events = [event for _, event in pairs]
    columns = {
        "payloads": "[" + ",".join([event.payload for event in events]) + "]",
        "mail_ids": _pg_array([mail_id for mail_id, _ in pairs]),
        "providers": _pg_array([provider for provider, _ in unique]),
        "keys": _pg_array([key for _, key in unique]),
        "types": _pg_array([event.type for event in events]),
        "names": _pg_array([event.provider_event[:32] for event in events]),
        "recipients": _pg_array([event.recipient for event in events]),
        "severities": _pg_array([event.severity for event in events]),
        "reasons": _pg_array([event.reason for event in events]),
        "moments": _pg_array(_isoformats([event.occurred_at for event in events])),
        "moves": _pg_array([_moves_to(event, mails[mail_id]) for mail_id, event in pairs]),
        "fanouts": _pg_array([len(mails[mail_id].recipients) for mail_id, _ in pairs]),
        "report": report,
    }
    ((new, suppressing, moved),) = conn.exec_driver_sql(STORE_AND_MOVE_SQL, columns)
    return new, [pairs[n - 1] for n in suppressing], moved or []


def _moves_to(event, mail):
    """The status ``event`` moves its recipient to, or None: it moves none (an open, a
    click, ...), or its address is not one the mail was sent to."""
    status = provider_events.RECIPIENT_STATUS.get(event.type)
    return status if status is not None and event.recipient in mail.recipients else None


# The columns of a listed mail: what ``shapes.mail.ListedMail`` reads, and no more (the id as text:
# the answer shows it as text, and psycopg2 would otherwise build a UUID to be turned back).
PAGE_COLUMNS = (
    "id",
    "status",
    "from_address",
    "to_address",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "result",
    "provider",
    "provider_message_id",
    "attempts",
    "last_error",
    "next_attempt_at",
    "send_at",
    "headers",
    "metadata",
    "tags",
    "created_at",
    "updated_at",
    "sent_at",
)
# How the statements read them: the id as text; headers and metadata NULL when empty, which
# ``ListedMail`` shows as {} all the same, while psycopg2 would parse '{}' with json.loads twice
# per mail.
PAGE_SELECT = ", ".join(
    {
        "id": "email.id::text",
        "headers": "NULLIF(email.headers, jsonb_build_object())",
        "metadata": "NULLIF(email.metadata, jsonb_build_object())",
    }.get(name, f"email.{name}")
    for name in PAGE_COLUMNS
)
# ``{source}`` is the mail table, or a tag's rows of mail_tag joined to it (``PAGE_SOURCES``);
# the page is ordered by the source's (created_at, id), which its index gives newest first.
PAGE_SQL = (
    "SELECT " + PAGE_SELECT + " FROM {source}{where} "
    "ORDER BY {created} DESC, {key} DESC LIMIT %(limit)s"
)
# (FROM, its created_at, its mail id): all mail by ix_email_created; a tag's by
# ix_mail_tag_listing, which holds each tagged mail's created_at beside its id.
PAGE_SOURCES = {
    False: ("email", "email.created_at", "email.id"),
    True: (
        "mail_tag JOIN email ON email.id = mail_tag.email_id",
        "mail_tag.created_at",
        "mail_tag.email_id",
    ),
}


def page(
    cursor,
    statuses=(),
    to=None,
    tag=None,
    created_after=None,
    created_before=None,
    limit=50,
    after=None,
):
    """A page of mail, newest first, and whether more follow: ``(rows, more)``, each row a
    tuple of its ``email`` row's ``PAGE_COLUMNS`` (``listing.page_json`` writes the answer
    straight from them).

    Keyset pagination on (created_at, id): ``after`` is the position of the last mail of the
    previous page. Each filter has its index (status and created_at; recipients by GIN; a tag
    by mail_tag's, in the page's order), so a page costs the same with a million rows as with
    a thousand.

    The statement is written out for psycopg2 (``page_filters``) and runs on a DB-API cursor, as
    the submission's: SQLAlchemy's ORM objects, and then its result processing of each array
    column, cost more CPU than the database's work for the page.
    """
    source, created, key = PAGE_SOURCES[bool(tag)]
    conditions, params = page_filters(
        statuses, to, tag, created_after, created_before, after, created, key
    )
    params["limit"] = limit + 1
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    cursor.execute(PAGE_SQL.format(source=source, where=where, created=created, key=key), params)
    rows = cursor.fetchall()
    return rows[:limit], len(rows) > limit


def page_filters(statuses, to, tag, created_after, created_before, after, created, key):
    """The WHERE conditions of ``PAGE_SQL`` for the given filters, and their parameters; the
    times and the keyset compare the source's ``created`` and ``key`` columns.

    A status list is written ``IN (...)`` (a single status is then an equality, which the
    (status, created_at) index serves in order); a recipient is an array containment that its
    GIN index serves; a tag is mail_tag's (the source is then its rows: ``PAGE_SOURCES``).
    """
    conditions, params = [], {}
    if statuses:
        names = [f"status_{index}" for index in range(len(statuses))]
        conditions.append(f"status IN ({', '.join(f'%({name})s' for name in names)})")
        params.update(zip(names, statuses, strict=True))
    if to:
        conditions.append("recipients @> ARRAY[%(to)s]::text[]")
        params["to"] = bare_address(to)
    if tag:
        conditions.append("mail_tag.tag = %(tag)s")
        params["tag"] = tag
    if created_after:
        conditions.append(f"{created} > %(created_after)s")
        params["created_after"] = created_after
    if created_before:
        conditions.append(f"{created} < %(created_before)s")
        params["created_before"] = created_before
    if after:
        conditions.append(f"({created}, {key}) < (%(after_created)s, %(after_id)s::uuid)")
        params["after_created"], params["after_id"] = after[0], str(after[1])
    return conditions, params


# ``GET /mail/<id>``: the mail and everything its answer shows, in one statement. Each list of
# child rows comes back as one array per column, in the order the answer lists them (as the
# ORM relationships of ``Email`` order them); ``mail_detail`` zips them back into rows.
AttachmentRow = namedtuple("AttachmentRow", "filename content_type size")
AttemptRow = namedtuple(
    "AttemptRow", "number provider outcome status_code response error duration_ms actor created_at"
)
RecipientRow = namedtuple("RecipientRow", "address status reason updated_at")
EventRow = namedtuple(
    "EventRow", "type provider provider_event recipient severity reason occurred_at received_at"
)
DETAIL_CHILDREN = (  # (key in the mail, row type, table, order)
    ("attachments", AttachmentRow, "attachment", "position"),
    ("attempt_log", AttemptRow, "delivery_attempt", "id"),
    ("recipient_rows", RecipientRow, "recipient", "address"),
    ("events", EventRow, "delivery_event", "occurred_at, id"),
)


# A mail may have any number of events: the answer holds the latest ``%(events_shown)s`` of
# them (NULL: all), and how many there are.
SHOWN_LAST = {"delivery_event": "occurred_at DESC, id DESC"}


def _children_sql(table, columns, order):
    """A LATERAL subquery of ``table``'s rows of the mail: one array per column, in ``order``."""
    arrays = ", ".join(f"array_agg({column} ORDER BY {order})" for column in columns)
    source = f"{table} WHERE email_id = email.id"
    if table in SHOWN_LAST:
        source = (
            f"(SELECT * FROM {source} ORDER BY {SHOWN_LAST[table]} LIMIT %(events_shown)s) AS shown"
        )
    return f"CROSS JOIN LATERAL (SELECT {arrays} FROM {source}) AS {table}"


DETAIL_SQL = (
    "SELECT "
    + PAGE_SELECT
    + ", email.recipients, "
    + ", ".join(f"{table}.*" for _, _, table, _ in DETAIL_CHILDREN)
    + ", (SELECT count(*) FROM delivery_event WHERE email_id = email.id)"
    + " FROM email "
    + " ".join(
        _children_sql(table, kind._fields, order) for _, kind, table, order in DETAIL_CHILDREN
    )
    + " WHERE email.id = %(id)s"
)


def mail_detail(cursor, mail_id, events_shown=None):
    """The mail ``mail_id`` (a UUID) as a dict of its ``PAGE_COLUMNS`` and ``recipients``, with
    its ``attachments``, ``attempt_log``, ``recipient_rows`` and ``events`` as lists of rows of
    the same names as the ORM's (``AttemptRow``, ...), of ``events`` only the latest
    ``events_shown`` (None: all) and their total in ``event_count``; None if there is no such
    mail.

    One statement and one round trip, where the ORM's relationships cost five; in READ
    COMMITTED every statement had its own snapshot anyway, so this one is at least as
    consistent.
    """
    cursor.execute(DETAIL_SQL, {"id": str(mail_id), "events_shown": events_shown})
    row = cursor.fetchone()
    if row is None:
        return None
    columns = (*PAGE_COLUMNS, "recipients")
    mail = dict(zip(columns, row, strict=False))
    arrays = iter(row[len(columns) :])
    for key, kind, _, _ in DETAIL_CHILDREN:
        values = [next(arrays) for _ in kind._fields]
        mail[key] = (
            [kind(*item) for item in zip(*values, strict=True)] if values[0] is not None else []
        )
    mail["event_count"] = next(arrays)
    return mail


# ``GET /mail/<id>/events``: a page of a mail's events, oldest first, after a position
# (occurred_at, id); a mail without events has one row of NULLs, an unknown mail none.
EVENTS_PAGE_SQL = (
    "SELECT shown.id, "
    + ", ".join(f"shown.{column}" for column in EventRow._fields)
    + " FROM email LEFT JOIN LATERAL (SELECT * FROM delivery_event"
    " WHERE email_id = email.id AND (occurred_at, id) > (%(after_at)s, %(after_id)s)"
    " ORDER BY occurred_at, id LIMIT %(limit)s) AS shown ON true"
    " WHERE email.id = %(id)s ORDER BY shown.occurred_at, shown.id"
)
FIRST = (datetime.min.replace(tzinfo=UTC), 0)  # before every event


def events_page(cursor, mail_id, limit=50, after=None):
    """A page of the mail ``mail_id``'s events, oldest first (by the providers' clocks), after
    the position ``after`` (occurred_at, id) of the previous page's last: ``(rows, more)``,
    each row (id, ``EventRow``); None if there is no such mail. Keyset-paged, as ``page``:
    events that arrive during a walk never shift it, and the ix_delivery_event_email index
    serves every page.
    """
    after_at, after_id = after or FIRST
    params = {"id": str(mail_id), "after_at": after_at, "after_id": after_id, "limit": limit + 1}
    cursor.execute(EVENTS_PAGE_SQL, params)
    rows = cursor.fetchall()
    if not rows:
        return None
    events = [(row[0], EventRow(*row[1:])) for row in rows if row[0] is not None]
    return events[:limit], len(events) > limit


def as_email(row):
    """An ``Email`` built from the values ``enqueue_many`` stored (nothing read back); its id a
    ``UUID``, as the ORM loads it."""
    values = {key: value for key, value in row.items() if key not in ("id", "metadata", "files")}
    return Email(**values, id=uuid.UUID(row["id"]), meta=row["metadata"])


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
RESEND_COPIED = (
    "from_address",
    "to_address",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "headers",
    "metadata",
    "tags",
    "recipients",
)
# The copies' tags go into mail_tag in the same statement, as a submission's do.
RESEND_SQL = text(f"""
    WITH copied AS (
        INSERT INTO email (id, status, attempts, next_attempt_at, {", ".join(RESEND_COPIED)})
        SELECT m.new_id, 'queued', 0, now(), {", ".join("e." + c for c in RESEND_COPIED)}
          FROM email AS e
          JOIN unnest(CAST(:old AS uuid[]), CAST(:new AS uuid[])) AS m(old_id, new_id)
            ON e.id = m.old_id
         WHERE e.status IN ({", ".join(f"'{status}'" for status in HANDED_OFF)})
        RETURNING id, tags, created_at
    ), tagged AS (
        INSERT INTO mail_tag (email_id, tag, created_at)
        SELECT DISTINCT id, unnest(tags), created_at FROM copied
    )
    SELECT id FROM copied
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
        conn.execute(
            insert(attempt),
            [
                {
                    "email_id": row.id,
                    "number": row.attempts,
                    "outcome": outcome,
                    "actor": actor,
                    **fields,
                }
                for row in rows
            ],
        )


def release_stuck(conn, ids, actor, alive_workers=None, max_attempts=None):
    """Hand mail stuck in ``sending`` back to the queue, due now: its lease expired, or (with
    ``alive_workers``, the names of the workers alive now) its worker is gone.

    As ``reap`` does, the interrupted send counts as an attempt (the provider may have taken
    the mail, so a resend is at-least-once). Mail of a live worker with a lease still running
    is left alone. Returns the ids released.
    """
    stuck = email.c.locked_until < func.now()
    if alive_workers is not None:
        stuck = (
            stuck
            | email.c.locked_by.is_(None)
            | email.c.locked_by.not_in(list(alive_workers) or [""])
        )
    spent = email.c.attempts + 1 - email.c.attempts_at_retry
    released = conn.execute(
        update(email)
        .where(email.c.id.in_(ids), email.c.status == SENDING, stuck)
        .values(
            status=QUEUED
            if max_attempts is None
            else case((spent >= max_attempts, FAILED), else_=QUEUED),
            attempts=email.c.attempts + 1,
            last_error=RELEASED,
            locked_by=None,
            locked_until=None,
            next_attempt_at=func.now(),
            updated_at=func.now(),
        )
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
        .where(
            email.c.id.in_(ids), email.c.status.in_(WAITING), email.c.next_attempt_at > func.now()
        )
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
    conn.execute(
        RESEND_ATTACHMENTS_SQL,
        {"old": [str(old) for old in pairs], "new": [str(new) for new in pairs.values()]},
    )
    originals = conn.execute(
        select(email.c.id, email.c.attempts).where(email.c.id.in_(list(pairs)))
    ).all()
    conn.execute(
        insert(attempt),
        [
            {
                "email_id": row.id,
                "number": row.attempts,
                "outcome": RESENT_OUTCOME,
                "actor": actor,
                "response": {"resent_as": str(pairs[row.id])},
                "error": f"resent as {pairs[row.id]}",
            }
            for row in originals
        ],
    )
    conn.execute(
        insert(attempt),
        [
            {
                "email_id": new,
                "number": 0,
                "outcome": RESENT_FROM_OUTCOME,
                "actor": actor,
                "response": {"resent_from": str(old)},
                "error": f"a resend of {old}",
            }
            for old, new in pairs.items()
        ],
    )
    return pairs
