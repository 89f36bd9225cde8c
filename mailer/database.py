"""Database connections and the schema check that both processes run at start.

PostgreSQL is the only database; the quick start and the tests may run an embedded one
(embedded_db.py). Connections time out quickly, so that an outage turns into a prompt 503 from
the API and a retry in the worker, and both recover by themselves when the database returns.
"""

import os
import re
from contextlib import contextmanager

import psycopg2
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIGRATIONS_DIR = os.path.join(ROOT, "migrations")


class SchemaError(RuntimeError):
    """The database has no schema, or an older one than this code needs."""


def normalize_url(url):
    """Use psycopg2 for a plain ``postgresql://`` URL.

    SQLAlchemy 2.1 maps the bare scheme to psycopg 3, which only the test tools install; the
    service's driver is psycopg2 (and LISTEN/NOTIFY in notify.py relies on it).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def engine_options(config, pool_size=5):
    """Keyword arguments for ``create_engine`` (also Flask-SQLAlchemy's engine options)."""
    statement_timeout = config["DB_STATEMENT_TIMEOUT"]
    return {
        # No ping before each checkout (a round trip per request): a connection that died in
        # the pool fails its first statement, SQLAlchemy then discards every connection of that
        # age, and the API answers that one request 503 (or, for an INSERT, retries it at once;
        # see mailqueue._insert). The worker retries on its own.
        "pool_pre_ping": False,
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": config["DB_CONNECT_TIMEOUT"] + 2,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": config["DB_CONNECT_TIMEOUT"],
            "options": f"-c statement_timeout={statement_timeout}",
            "application_name": config.get("APPLICATION_NAME", "mail-service"),
        },
    }


def make_engine(config, pool_size=5, worker=False):
    """An engine for ``config["DATABASE_URL"]`` outside Flask (the worker, scripts).

    The worker's statements of many rows (the attempt-log rows of reaped mail, for one)
    go as executemany; psycopg2's batch mode sends them in a few round trips instead of one
    each. A batch of results is one statement over arrays (``mailqueue.finish``).
    """
    options = engine_options(config, pool_size)
    if worker and make_url(normalize_url(config["DATABASE_URL"])).get_driver_name() == "psycopg2":
        options["executemany_mode"] = "values_plus_batch"
    return create_engine(normalize_url(config["DATABASE_URL"]), **options)


@contextmanager
def dbapi_transaction(engine, single_statement=False):
    """A transaction on a pooled connection's DB-API cursor, committed when the block ends.

    The API's hot path (``POST /mail``) runs its hand-written statement here: SQLAlchemy's
    ``Connection``, its transaction and result objects cost more CPU than the statement's own
    work. With ``single_statement`` the block runs one statement, which commits by itself
    (autocommit): one round trip instead of BEGIN, the statement and COMMIT. Errors still come
    out as SQLAlchemy's, as from a ``Connection``: a connection that died is invalidated, with
    every pooled connection as old as it (a restarted database), and the error says
    ``connection_invalidated``.
    """
    try:
        fairy = engine.raw_connection()
    except psycopg2.Error as err:  # no connection at all: the database is down
        raise DBAPIError.instance(None, None, err, psycopg2.Error) from err
    connection = fairy.dbapi_connection
    try:
        with translated_errors(engine, fairy):
            connection.autocommit = single_statement
            cursor = fairy.cursor()
            yield cursor
            if not single_statement:
                fairy.commit()
    finally:
        if single_statement and not connection.closed:
            connection.autocommit = False  # as the pool's other users expect it
        fairy.close()  # back to the pool (rolled back there if still in a transaction)


@contextmanager
def cursor_of(connection_block):
    """The DB-API cursor of the SQLAlchemy connection that ``connection_block`` yields (a
    test's savepoint): the same statements as ``dbapi_transaction``, in someone else's
    transaction."""
    with (
        connection_block as connection,
        translated_errors(connection.engine, connection.connection),
    ):
        yield connection.connection.cursor()


@contextmanager
def translated_errors(engine, fairy):
    """Re-raise psycopg2's errors as SQLAlchemy's ``DBAPIError`` family, invalidating the
    connection (and the pool's older ones) when the error means it is gone."""
    try:
        yield
    except psycopg2.Error as err:
        gone = engine.dialect.is_disconnect(err, fairy.dbapi_connection, None)
        if gone:
            # What a Connection does on a disconnect: this connection, and the pool's
            # connections checked out before now, are replaced on their next checkout.
            engine.pool._invalidate(fairy, err)
        raise DBAPIError.instance(
            None, None, err, psycopg2.Error, connection_invalidated=gone
        ) from err


def describe(err):
    """A database error for the log: its class and the server's first line, never a password.

    "connection refused" and "password authentication failed" need different fixes, so the
    class name alone is not enough; libpq's messages name the host and user, never the
    password, and a URL that slipped into one has its password masked.
    """
    original = getattr(err, "orig", None) or err
    lines = str(original).strip().splitlines() or [""]
    message = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", lines[0])
    return f"{original.__class__.__name__}: {message}" if message else original.__class__.__name__


def head_revision():
    """The newest migration revision that this code ships."""
    from alembic.config import Config

    alembic_config = Config()
    alembic_config.set_main_option("script_location", MIGRATIONS_DIR)
    return ScriptDirectory.from_config(alembic_config).get_current_head()


def check_schema(engine):
    """Raise SchemaError unless the database is migrated to this code's head revision."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current is None:
        raise SchemaError("The database has no schema. Create it with: flask --app app db upgrade")
    if current != head:
        raise SchemaError(
            f"The database schema is at revision {current}, this code needs {head}. "
            "Migrate it with: flask --app app db upgrade"
        )
