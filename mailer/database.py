"""Database connections and the schema check that both processes run at start.

PostgreSQL is the only database; the quick start and the tests may run an embedded one
(embedded_db.py). Connections time out quickly, so that an outage turns into a prompt 503 from
the API and a retry in the worker, and both recover by themselves when the database returns.
"""

import os
import re
from contextlib import contextmanager

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from models import db

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
        # age, and the API answers that one request 503 (or, for an INSERT, runs it once more;
        # see submit._run_once_more_if_dead). The worker retries on its own.
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

    The queue's statements of many rows take them as one JSON array (``lease.finish``); a
    statement run with a list of parameter sets (executemany) goes in psycopg2's batch mode,
    a few round trips instead of one each.
    """
    options = engine_options(config, pool_size)
    if worker and make_url(normalize_url(config["DATABASE_URL"])).get_driver_name() == "psycopg2":
        options["executemany_mode"] = "values_plus_batch"
    return create_engine(normalize_url(config["DATABASE_URL"]), **options)


@contextmanager
def transaction(single_statement=False):
    """A connection in a transaction committed when the block ends, for the API, the admin and
    the providers' webhooks: the app's engine's, unless a test handed in its own.

    With ``single_statement`` the block runs one statement, which commits by itself
    (``autocommit``): one round trip instead of BEGIN, the statement and COMMIT (or the pool's
    ROLLBACK). ``POST /mail`` stores that way, and ``GET /mail`` and ``GET /mail/<id>`` read
    that way: in READ COMMITTED each statement had its own snapshot anyway.

    A test that rolls everything back sets ``db.test_transaction`` (as it swaps
    ``db.session``), so that every app it builds runs inside its transaction (a savepoint).
    A connection that died fails its statement with ``connection_invalidated`` set, and
    SQLAlchemy replaces it and the pool's older connections (a restarted database).
    """
    test_transaction = db.test_transaction
    if test_transaction is not None:
        with test_transaction() as conn:
            yield conn
    elif single_statement:
        with db.engine.connect() as conn, autocommit(conn):
            yield conn
    else:
        with db.engine.begin() as conn:
            yield conn


@contextmanager
def autocommit(conn):
    """Each statement on ``conn`` commits by itself while the block runs.

    psycopg2's own ``autocommit`` on the connection's DB-API connection: SQLAlchemy's
    ``isolation_level="AUTOCOMMIT"`` does the same through psycopg2's
    ``set_isolation_level``, which costs a ``SET`` round trip on the way in and another on the
    way out. SQLAlchemy's transaction on ``conn`` then begins and ends nothing on the server.
    """
    dbapi_connection = conn.connection.dbapi_connection
    dbapi_connection.autocommit = True
    try:
        yield conn
    finally:
        if not dbapi_connection.closed:  # a connection that died is discarded as it is
            dbapi_connection.autocommit = False


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
