"""New mail: validated requests stored as ``queued`` (or ``scheduled``), with their
attachments, tags and the client's Idempotency-Key, all in one statement.

``enqueue_many`` is the API's ``POST /mail`` and ``POST /mail/batch`` and the admin's create
form. The statements are in ``sql/submit.sql``: one mail without attachments goes as a VALUES
row (``insert_mail``, ``insert_mail_keyed``, ``insert_mail_tagged``), anything else as one
JSON array of mails (``insert_mails``); each runs on the connection's DB-API cursor
(``queries.fetch_all``: the API's hot path). A statement that dies with its connection (a
restarted database) runs once more with the same ids: a mail is stored once, whatever was
lost.
"""

import json
import os
import uuid
from dataclasses import dataclass

import psycopg2
from sqlalchemy.exc import DBAPIError, IntegrityError

from mailer.queue.queries import as_json, fetch_all, load
from mailer.validation.addresses import bare_address
from models import Email

SQL = load("submit.sql")
API, SMTP = "api", "smtp"  # the ways a mail comes in: the REST API (and the admin), the SMTP door
SOURCES = (API, SMTP)
KEY_CONSTRAINT = "idempotency_key_pkey"  # violated: the key was taken by another request
MAIL_CONSTRAINT = "email_pkey"  # violated by a second run: the first one stored the mail
# The parameters of insert_mails' Idempotency-Key part when the request has no key.
NO_KEY = dict.fromkeys(("scope", "key", "fingerprint", "status_code", "response"))


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


# The hex digit that starts a version 4 UUID's fourth group: RFC 4122's variant (binary 10) in
# its top two bits, two random bits below.
VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(count):
    """``count`` random (version 4) UUIDs as text, as ``str(uuid.uuid4())`` writes them.

    The ids of new mail, made from one ``os.urandom`` call: every use of a new mail's id is as
    text (the statement, the answer), and ``uuid4()`` builds an object per id only to be
    written out again.
    """
    digits = os.urandom(16 * count).hex()
    return [
        f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-4{digits[at + 13 : at + 16]}-"
        f"{VARIANT_DIGIT[digits[at + 16]]}{digits[at + 17 : at + 20]}-{digits[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


@dataclass(frozen=True)
class Owner:
    """Whose new mail is: its tenant, the stored key that sent it (its id as text; None for
    ``API_KEYS``, protected mode and the admin) and whether that is a test key."""

    tenant: str = "default"
    api_key_id: str | None = None
    test: bool = False


OPERATOR = Owner()  # the admin's mail, and API_KEYS': the default tenant's, of no stored key


def new_mail_row(clean, mail_id, owner=OPERATOR):
    """The column values of a new mail from a request that ``validate_mail`` cleaned (its lists
    and dicts shared, not copied); ``mail_id``: its id, as text (``new_ids``); ``owner``: whose
    it is."""
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
        "template": clean.get("template"),
        "template_version": clean.get("template_version"),
        "tenant": owner.tenant,
        "api_key_id": owner.api_key_id,
        "test": owner.test,
        "source": clean.get("source", API),
        "files": [
            {
                "filename": item["filename"],
                "content_type": item["content_type"],
                "size": len(item["content"]),
                "content_id": item.get("content_id"),
            }
            for item in clean["attachments"]
        ],
    }


def recipients_of(to, cc, bcc):
    """Every recipient's bare address (``bare_address``), once each, in to, cc, bcc order."""
    if not cc and not bcc and len(to) == 1:  # most mail: no list to build and deduplicate
        return [bare_address(to[0])]
    return list(dict.fromkeys(bare_address(address) for address in [*to, *cc, *bcc]))


def as_email(row):
    """An ``Email`` built from the values ``enqueue_many`` stored (nothing read back); its id a
    ``UUID``, as the ORM loads it."""
    values = {key: value for key, value in row.items() if key not in ("id", "metadata", "files")}
    return Email(**values, id=uuid.UUID(row["id"]), meta=row["metadata"])


def enqueue_many(begin, cleans, idempotency=None, answer=None, owner=OPERATOR):
    """Store validated requests in one statement: all or none. Returns their rows (ids as text).

    Each row also holds ``created_at``, ``status`` and ``next_attempt_at`` as the database set
    them, so the API answers from what it stored without reading it back. ``begin(True)``
    yields a connection whose one statement commits by itself (``database.transaction``: one
    round trip, where BEGIN, INSERT and COMMIT took three), or one in a test's savepoint. With
    ``idempotency``, the same statement stores the key with ``answer(rows)`` (status, JSON
    text of the body without what the database sets); a key already used returns a ``Replay``
    instead of rows (or raises ``IdempotencyConflict`` for a different request). ``owner``:
    whose mail it is (``Owner``).
    """
    ids = new_ids(len(cleans))
    rows = [new_mail_row(clean, mail_id, owner) for clean, mail_id in zip(cleans, ids, strict=True)]
    statement, params = _submission(rows, cleans, idempotency, answer)
    for _ in range(2):
        try:
            stored = _run_once_more_if_dead(begin, statement, params, ids)
        except _KeyTaken:  # the statement failed as a whole: nothing of this request is stored
            replay = _replay(begin, idempotency)
            if replay is not None:
                return replay
            continue
        return _stamped(rows, stored)
    raise IdempotencyConflict(idempotency.key)  # taken and lost twice in a row: say so


class _KeyTaken(Exception):
    """The request's Idempotency-Key was taken by another request: nothing was stored."""


class _AlreadyStored(Exception):
    """A second run of a submission found its mail: the first run was committed."""


def _submission(rows, cleans, idempotency, answer):
    """The statement that stores ``rows`` (with their attachments, tags and the key) and its
    parameters: a single mail without attachments as a VALUES row, anything else as a JSON
    array of mails."""
    key = _key_params(rows, idempotency, answer)
    if len(rows) > 1 or cleans[0]["attachments"]:
        return SQL.insert_mails, {
            "mails": as_json(rows),
            **_attachment_params(rows, cleans),
            **(key or NO_KEY),
            "tenant": rows[0]["tenant"],
        }
    params = _row_params(rows[0])
    if rows[0]["tags"]:
        return SQL.insert_mail_tagged, {**params, **(key or NO_KEY)}
    if key is None:
        return SQL.insert_mail, params
    return SQL.insert_mail_keyed, {**params, **key}


def _row_params(row):
    """The parameters of ``insert_mail``: the mail's columns; psycopg2 adapts the lists to
    arrays, and the dicts go as their JSON text (``_json_text``)."""
    return {
        **row,
        "headers": _json_text(row["headers"]),
        "metadata": _json_text(row["metadata"]),
    }


def _json_text(value):
    """A dict as the JSON text a jsonb column takes, the text psycopg2's ``Json`` would write:
    most mails have no headers and no metadata, and ``Json`` encodes even an empty dict anew
    (in Python) each time."""
    return json.dumps(value) if value else "{}"


def _key_params(rows, idempotency, answer):
    """The key's parameters (scope, key, fingerprint, and the answer to keep), or None."""
    if idempotency is None:
        return None
    status_code, body = answer(rows)
    return {
        "scope": idempotency.scope,
        "key": idempotency.key,
        "fingerprint": idempotency.fingerprint,
        "status_code": status_code,
        "response": body,
    }


def _attachment_params(rows, cleans):
    """The attachments of every mail, in order: one list per column of ``attachment``."""
    files = [
        (row["id"], position, item)
        for row, clean in zip(rows, cleans, strict=True)
        for position, item in enumerate(clean["attachments"] or ())
    ]
    return {
        "file_ids": [mail_id for mail_id, _, _ in files],
        "positions": [position for _, position, _ in files],
        "filenames": [item["filename"] for _, _, item in files],
        "content_types": [item["content_type"] for _, _, item in files],
        "sizes": [len(item["content"]) for _, _, item in files],
        "contents": [psycopg2.Binary(item["content"]) for _, _, item in files],
        "content_ids": [item.get("content_id") for _, _, item in files],
    }


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
        with begin() as conn:
            return conn.exec_driver_sql(SQL.stored_mails, {"ids": ids}).all()


def _run(begin, statement, params, stored_means_done=False):
    """The statement on its own, committed as it ends; its rows. A taken key raises _KeyTaken,
    and with ``stored_means_done`` an existing mail id raises _AlreadyStored."""
    try:
        with begin(True) as conn:
            return fetch_all(conn, statement, params)
    except IntegrityError as err:
        violated = getattr(getattr(err.orig, "diag", None), "constraint_name", None)
        if violated == KEY_CONSTRAINT:
            raise _KeyTaken from None
        if stored_means_done and violated == MAIL_CONSTRAINT:
            raise _AlreadyStored from None
        raise


def _stamped(rows, stored):
    """``rows`` with what the database set for each (matched by id, as text)."""
    by_id = {values[0]: values for values in stored}  # (id, created_at, status, due)
    for row in rows:
        _, row["created_at"], row["status"], row["next_attempt_at"] = by_id[row["id"]]
        row["updated_at"] = row["created_at"]
    return rows


def _replay(begin, idempotency):
    """The Replay of the answer the key got first, or None if the key is gone or expired
    (deleted here, so that the next attempt takes it anew); IdempotencyConflict if it came
    with another request."""
    where = {"scope": idempotency.scope, "key": idempotency.key}
    with begin() as conn:
        row = conn.exec_driver_sql(SQL.read_key, {**where, "ttl": idempotency.ttl}).first()
        if row is None or row.expired:  # gone meanwhile, or past its TTL: take it anew
            conn.exec_driver_sql(SQL.delete_key, where)
            return None
    if row.fingerprint != idempotency.fingerprint:
        raise IdempotencyConflict(idempotency.key)
    stamps = (row.mail_created_at, row.mail_status, row.mail_next_attempt_at)
    return Replay(row.status_code, row.response, stamps if row.mail_created_at else None)
