# The baseline of the ingest benchmarks (scripts/bench): the least a Flask endpoint can do to
# accept a mail durably. It is not part of the service and has no validation or authentication.
"""Minimal Flask app: parse the form (or a JSON list), insert into ``email``, commit, answer 202.

With an ``Idempotency-Key`` header, ``POST /mail`` also keeps the key, a digest of the body and
the answer in ``idempotency_key``, in the same transaction: the least code that does the work
of ours with a key on the same tables (a key already taken is a 409; ours replays it).

    DATABASE_URL=postgresql://... gunicorn -c gunicorn.conf.py devkit.bench.minimal_app:app

One psycopg2 connection per thread, opened on first use; no ORM, no pool, no validation.
"""

import hashlib
import json
import os
import threading
import uuid
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
from flask import Flask, jsonify, request
from psycopg2.extras import execute_values

INSERT = (
    "INSERT INTO email (id, status, from_address, to_address, cc, bcc, reply_to, subject, text, "
    "html, attempts, next_attempt_at, created_at, updated_at) VALUES %s"
)
KEY_INSERT = (
    "INSERT INTO idempotency_key (scope, key, fingerprint, status_code, response) "
    "VALUES ('minimal', %s, %s, 202, %s)"
)

app = Flask(__name__)
_local = threading.local()


def dsn():
    """DATABASE_URL without a SQLAlchemy ``+driver`` suffix (libpq accepts the rest)."""
    scheme, _, rest = os.environ["DATABASE_URL"].partition("://")
    return f"{scheme.split('+')[0]}://{rest}"


def connection():
    """This thread's connection, opened on first use and reopened if it broke."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg2.connect(dsn())
    return conn


def row_of(fields, now):
    """The email row for one submitted mail (missing fields stored as empty)."""
    return (
        str(uuid.uuid4()),
        "queued",
        fields.get("from") or "",
        [fields.get("to") or ""],
        as_list(fields.get("cc")),
        as_list(fields.get("bcc")),
        fields.get("reply_to"),
        fields.get("subject") or "",
        fields.get("text"),
        fields.get("html"),
        0,
        now,
        now,
        now,
    )


def as_list(value):
    """A recipients column's value: the one address given, or none."""
    return [value] if value else []


def store(rows, key=None):
    """Insert ``rows`` in one statement (and ``key``'s row, if given: (key, digest, answer))
    and commit; their ids."""
    conn = connection()
    try:
        with conn.cursor() as cursor:
            execute_values(cursor, INSERT, rows, page_size=1000)
            if key is not None:
                cursor.execute(KEY_INSERT, key)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return [row[0] for row in rows]


@app.post("/mail")
def post_mail():
    """Store one mail from form fields (or a JSON object)."""
    fields = request.form if request.form else (request.get_json(silent=True) or {})
    row = row_of(fields, datetime.now(UTC))
    answer = {"id": row[0], "status": "queued"}
    key = request.headers.get("Idempotency-Key")
    try:
        store(
            [row], key and (key, hashlib.sha256(request.get_data()).hexdigest(), json.dumps(answer))
        )
    except psycopg2.errors.UniqueViolation:
        return jsonify({"message": "Idempotency-Key already used"}), 409
    return jsonify(answer), 202


@app.post("/mail/batch")
def post_batch():
    """Store a JSON list of mails in one transaction."""
    items = request.get_json(silent=True)
    if not isinstance(items, list) or not items:
        return jsonify({"success": False, "message": "a non-empty JSON list"}), 400
    now = datetime.now(UTC)
    ids = store([row_of(item, now) for item in items])
    return jsonify({"success": True, "count": len(ids), "ids": ids}), 202


@app.get("/health")
def health():
    """Ready once the database answers."""
    with connection().cursor() as cursor:
        cursor.execute("SELECT 1")
    connection().rollback()
    return jsonify({"status": "ok"})
