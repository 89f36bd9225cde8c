# The baseline of the ingest benchmarks (scripts/bench): the least a Flask endpoint can do to
# accept a mail durably. It is not part of the service and has no validation or authentication.
"""Minimal Flask app: parse the form (or a JSON list), insert into ``email``, commit, answer 202.

    DATABASE_URL=postgresql://... gunicorn -c gunicorn.conf.py mailer.bench.minimal_app:app

One psycopg2 connection per thread, opened on first use; no ORM, no pool, no validation.
"""

import os
import threading
import uuid
from datetime import UTC, datetime

import psycopg2
from flask import Flask, jsonify, request
from psycopg2.extras import execute_values

INSERT = (
    "INSERT INTO email (id, status, from_address, to_address, cc, bcc, reply_to, subject, text, "
    "html, attempts, next_attempt_at, created_at, updated_at) VALUES %s"
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
    return (str(uuid.uuid4()), "queued", fields.get("from") or "", [fields.get("to") or ""],
            as_list(fields.get("cc")), as_list(fields.get("bcc")), fields.get("reply_to"),
            fields.get("subject") or "", fields.get("text"), fields.get("html"), 0, now, now,
            now)


def as_list(value):
    """A recipients column's value: the one address given, or none."""
    return [value] if value else []


def store(rows):
    """Insert ``rows`` in one statement and commit; their ids."""
    conn = connection()
    try:
        with conn.cursor() as cursor:
            execute_values(cursor, INSERT, rows, page_size=1000)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return [row[0] for row in rows]


@app.post("/mail")
def post_mail():
    """Store one mail from form fields (or a JSON object)."""
    fields = request.form if request.form else (request.get_json(silent=True) or {})
    (mail_id,) = store([row_of(fields, datetime.now(UTC))])
    return jsonify({"id": mail_id, "status": "queued"}), 202


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
