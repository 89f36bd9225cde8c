"""The queue's SQL, read by name from the ``.sql`` files in ``sql/`` (as procrastinate's
``sql/queries.sql`` and aiosql do).

A file is a list of blocks, each opened by a line ``-- name: claim_due``. The comment lines
right after it say what the statement does; the rest of the block, up to the next name, is the
statement exactly as it runs, so it can be pasted into ``psql`` (with its ``%(name)s``
parameters filled in). A block may hold several statements separated by semicolons: they go in
one round trip and run in turn. The files are read once, when a module loads its own.

Every statement runs on a SQLAlchemy ``Connection`` with a dict of parameters, which psycopg2
adapts (lists to arrays, ``psycopg2.extras.Json`` to JSON, UUIDs): through
``Connection.exec_driver_sql``, except the API's hottest (``fetch_all``). A literal percent sign
would read as a parameter: the statements have none (``parse`` refuses one).
"""

import json
import os
import re
import uuid
from datetime import datetime
from types import SimpleNamespace

import psycopg2
from psycopg2.extras import Json
from sqlalchemy.exc import DBAPIError

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sql")
NAME = re.compile(r"^-- name: (\w+)[ \t]*$", re.MULTILINE)
# A percent sign that is not a parameter (``%(name)s``).
STRAY_PERCENT = re.compile(r"%(?!\(\w+\)s)")


class QueryFileError(ValueError):
    """A ``.sql`` file that does not follow the format above."""


def load(filename):
    """The statements of ``sql/<filename>``, as attributes named by their ``-- name:``."""
    with open(os.path.join(DIRECTORY, filename), encoding="utf-8") as handle:
        return SimpleNamespace(**parse(handle.read(), filename))


def parse(text, filename="<text>"):
    """``{name: statement}`` of the blocks in ``text`` (the contents of a ``.sql`` file)."""
    parts = NAME.split(text)
    if parts[0].strip() and not all(
        line.startswith("--") for line in parts[0].strip().splitlines()
    ):
        raise QueryFileError(f"{filename}: SQL before the first '-- name:'")
    statements = {}
    for name, block in zip(parts[1::2], parts[2::2], strict=True):
        if name in statements:
            raise QueryFileError(f"{filename}: {name} is named twice")
        statement = _statement(block)
        if not statement:
            raise QueryFileError(f"{filename}: {name} has no statement")
        if STRAY_PERCENT.search(statement):
            raise QueryFileError(f"{filename}: {name} has a % that is not a parameter")
        statements[name] = statement
    return statements


def _statement(block):
    """A block without its leading comment lines (what it does) and its final semicolon."""
    lines = block.strip().splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip().rstrip(";").rstrip()


def fetch_all(conn, statement, params):
    """The rows of ``statement`` (tuples), run on the DB-API cursor of ``conn``, a SQLAlchemy
    ``Connection``.

    For the API's hottest statements only (storing mail, a page of ``GET /mail``, a mail of
    ``GET /mail/<id>``): SQLAlchemy's execution context and result objects cost more CPU than
    the rest of such a request's database work. Errors come out as SQLAlchemy's, as from
    ``exec_driver_sql``: a connection that died is handed to SQLAlchemy (``_gone``), which
    replaces it and the pool's older connections and says ``connection_invalidated``.
    """
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement, params)
        return cursor.fetchall()
    except psycopg2.Error as err:
        if conn.dialect.is_disconnect(err, conn.connection.dbapi_connection, cursor):
            raise _gone(conn) or _translated(err) from err
        raise _translated(err) from err


def _gone(conn):
    """SQLAlchemy's error for ``conn``'s dead connection, or None if it answers after all.

    A statement through SQLAlchemy meets the dead connection again, and SQLAlchemy then does
    what it does on a disconnect: the connection, and every pooled one as old as it (a
    restarted database), is replaced on its next checkout.
    """
    try:
        conn.exec_driver_sql(_CONNECTION.ping)
    except DBAPIError as err:
        return err
    return None


def _translated(err):
    """A psycopg2 error as SQLAlchemy's exception of the same kind (``IntegrityError``, ...)."""
    return DBAPIError.instance(None, None, err, psycopg2.Error)


def as_json(value):
    """``value`` as one JSON parameter (``psycopg2.extras.Json``), datetimes as ISO 8601 text
    and UUIDs as text.

    A batch of rows goes this way, as one JSON array that the statement reads with
    ``json_to_recordset``: psycopg2 adapts a list per column value by value, and a list of
    lists (a mail's recipients) not at all when their lengths differ.
    """
    return Json(value, dumps=_ENCODER.encode)


def _plain(value):
    """The JSON of what ``json`` cannot write itself: a datetime, a UUID."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{value.__class__.__name__} is not JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain)

_CONNECTION = load("connection.sql")
