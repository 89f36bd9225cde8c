"""Shared fixtures: a real PostgreSQL database, the app, the provider sandbox, a worker.

The tests run on ``TEST_DATABASE_URL`` if it is set (migrated and used as is). Otherwise they
run on a fresh database, dropped at the end, on the PostgreSQL at 127.0.0.1:5432 if it accepts
user ``postgres`` without a password, or else on an embedded server (devkit/embedded_db.py)
that the session starts in a temporary folder and deletes at the end. The database is migrated
to head once. API and admin tests run inside a transaction that is rolled back at the end (the
app's commits become savepoints), as warehouse does; tests that need committed rows visible to
other connections (a worker, a subprocess) use ``run_worker`` or the ``committed`` marker, and
the tables are emptied after.

The tests come in three layers, a folder each, and inside each a folder per package of the
code (tests/integration/api/ ...): tests/unit needs neither a database nor a process and runs
without PostgreSQL (these fixtures start nothing until a test asks for one), tests/integration
runs on the one database, and tests/system starts processes (workers, gunicorn, an embedded
PostgreSQL, chromium, schemathesis). Each test is marked with its layer (``-m unit``).

Run in parallel (pytest-xdist, as ``scripts/test`` does), each process has a database and a
sandbox of its own, on the same server (or an embedded server each); ``TEST_DATABASE_URL``,
one database, is for one process only.
"""

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest
from flask.globals import app_ctx
from flask_migrate import upgrade
from helpers import sample_mail
from pytest_postgresql.janitor import DatabaseJanitor
from signed import (
    MAILGUN_SIGNING_KEY,
    POSTMARK_WEBHOOK_PASSWORD,
    POSTMARK_WEBHOOK_USERNAME,
    SENDGRID_INBOUND_PASSWORD,
    SENDGRID_INBOUND_USERNAME,
    SENDGRID_PUBLIC_KEY,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import scoped_session, sessionmaker

from app import create_app
from devkit.embedded_db import EmbeddedPostgres
from devkit.sandbox import Sandbox
from mailer.config import load_config
from mailer.database import make_engine
from mailer.worker.loop import Worker
from models import db
from providers import build_providers

HERE = Path(__file__).resolve().parent
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("system", "integration", "unit")  # tests/<layer>; a parallel run starts from the left
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MAILGUN_KEY = "key-test-mailgun"
SENDGRID_KEY = "SG.test-sendgrid"
SES_KEY_ID, SES_SECRET = "AKIATESTSANDBOX", "test-ses-secret-access-key"
SMTP_USERNAME, SMTP_PASSWORD = "relay-user", "relay-test-password"
POSTMARK_TOKEN = "pm-test-server-token"
DEADLOCK = "40P01"  # PostgreSQL's deadlock_detected
# Every table a test may fill, in an order to empty them in: a mail's rows go with it (ON DELETE
# CASCADE), and deleting mail writes to the status counts, so those come last.
TABLES = (
    "email",
    "inbound",
    "inbound_attachment",
    "delivery_attempt",
    "attachment",
    "mail_tag",
    "recipient",
    "delivery_event",
    "suppression",
    "webhook_attempt",
    "webhook_outbox",
    "webhook_endpoint",
    "idempotency_key",
    "provider_state",
    "provider_rate",
    "provider_action",
    "worker_heartbeat",
    "webhook_token",
    "auth_failure",
    "deliverability",
    "steering",
    "email_status_count",
    "template_version",
    "template",
    "key_usage",
    "api_key",
    "audit_log",
)
ANY_ROW = text("SELECT " + " OR ".join(f"EXISTS (SELECT FROM {table})" for table in TABLES))


@functools.cache
def _local_server_answers():
    """Whether the PostgreSQL at 127.0.0.1:5432 lets user postgres in without a password."""
    try:
        psycopg2.connect(LOCAL_SERVER, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def pytest_configure(config):
    """Refuse to share ``TEST_DATABASE_URL``, one database, between parallel test processes."""
    if os.environ.get("TEST_DATABASE_URL") and (config.getoption("numprocesses", 0) or 0) > 1:
        raise pytest.UsageError("TEST_DATABASE_URL is one database: run the tests in one process")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: twice the cores (the tests wait on timers and other processes as often as
    they compute), one with ``TEST_DATABASE_URL``; PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    if os.environ.get("TEST_DATABASE_URL"):
        return 1
    return 2 * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(config, items):
    """Mark each test with its layer, and refuse a test that is in none.

    In a parallel run (``scripts/test``: a module at a time to each process, in this order) the
    modules that start processes go first, those with a ``slow`` test before the others, so that
    the long ones start at once on processes of their own and none begins when the rest are
    nearly done.
    """
    outside = []
    for item in items:
        layer = _layer(item)
        if layer is None:
            outside.append(item.nodeid)
        else:
            item.add_marker(layer)
    if outside:
        raise pytest.UsageError(
            "these tests are in no layer; move them to tests/unit, tests/integration or "
            "tests/system: " + ", ".join(outside)
        )
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: its order is the schedule's
        slow = {item.module for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: (LAYERS.index(_layer(item)), item.module not in slow))


def _layer(item):
    """The layer a test is in (the first folder under tests/), or None."""
    try:
        folder = item.path.resolve().relative_to(HERE).parts[0]
    except ValueError:
        return None
    return folder if folder in LAYERS else None


def pytest_report_header(config):
    """Say which PostgreSQL the run uses."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        return f"database: TEST_DATABASE_URL {make_url(given).render_as_string()}"
    if _local_server_answers():
        return "database: a fresh database on the PostgreSQL at 127.0.0.1:5432"
    return "database: an embedded PostgreSQL, if a test needs one (none answers on 127.0.0.1:5432)"


def throwaway_postgres():
    """A started embedded PostgreSQL in a new temporary folder; ``destroy()`` it when done."""
    folder = tempfile.mkdtemp(prefix="mail-test-pg-")
    return EmbeddedPostgres(folder, settings={"fsync": "off"}).start()


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a server to create test databases on: TEST_DATABASE_URL's, local or embedded."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given or _local_server_answers():
        yield make_url(given or LOCAL_SERVER)
        return
    server = throwaway_postgres()
    try:
        yield make_url(server.url())
    finally:
        server.destroy()


@contextlib.contextmanager
def fresh_database(server):
    """A new, empty database on ``server`` (a URL) for the block; dropped afterwards."""
    name = f"mail_test_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=server.username or "postgres",
        host=server.host or "127.0.0.1",
        port=server.port or 5432,
        dbname=name,
        password=server.password,
    )
    janitor.init()
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        janitor.drop()


@contextlib.contextmanager
def migrated_to(server, revision):
    """A fresh database on ``server`` migrated up to ``revision``, in an app context on it, for
    a migration's test: yields its URL and the migrations' directory (for ``flask_migrate``'s
    ``upgrade`` and ``downgrade``)."""
    with fresh_database(server) as url:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
        with app.app_context():
            migrations = f"{ROOT}/migrations"
            upgrade(directory=migrations, revision=revision)
            try:
                yield url, migrations
            finally:
                db.engine.dispose()


@pytest.fixture(scope="session")
def database_url(postgres_server):
    """A migrated, empty PostgreSQL database for the whole session."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        _migrate(given)
        yield given
        return
    with fresh_database(postgres_server) as url:
        _migrate(url)
        yield url


def _migrate(url):
    """Run the migrations to head on ``url``."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
        db.engine.dispose()


@pytest.fixture(scope="session")
def sandbox():
    """The provider sandbox on free loopback ports, for the whole session."""
    with Sandbox(
        mailgun_key=MAILGUN_KEY,
        sendgrid_key=SENDGRID_KEY,
        ses_access_key_id=SES_KEY_ID,
        ses_secret_access_key=SES_SECRET,
        postmark_token=POSTMARK_TOKEN,
        smtp=True,
        smtp_username=SMTP_USERNAME,
        smtp_password=SMTP_PASSWORD,
    ).start() as server:
        yield server


@pytest.fixture
def settings(database_url, sandbox):
    """Settings for the app and the worker: the test database and the sandbox, fast timings."""
    sandbox.reset()
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "API_KEYS": "",
        "ADMIN_PASSWORD": "",
        "PROVIDERS": "mailgun,sendgrid",
        "MAILGUN_API_KEY": MAILGUN_KEY,
        "MAILGUN_DOMAIN": "mg.example.com",
        "MAILGUN_BASE_URL": sandbox.url,
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "SENDGRID_BASE_URL": sandbox.url,
        "SES_REGION": "eu-west-1",
        "SES_ACCESS_KEY_ID": SES_KEY_ID,
        "SES_SECRET_ACCESS_KEY": SES_SECRET,
        "SES_BASE_URL": sandbox.url,
        "SMTP_HOST": "localhost",
        "SMTP_PORT": sandbox.smtp_port,
        "SMTP_USERNAME": SMTP_USERNAME,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_CA_FILE": sandbox.smtp_ca_file,
        "SMTP_TIMEOUT": 2.0,
        "POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN,
        "POSTMARK_BASE_URL": sandbox.url,
        "PROVIDER_TIMEOUT": 2.0,
        "WORKER_PROCESSES": 1,  # mail_service.py is one worker; the supervisor's tests ask for more
        "WORKER_CONCURRENCY": 8,
        "POLL_INTERVAL": 0.1,
        "RETRY_BASE": 0.2,
        "RETRY_CAP": 1.0,
        "CIRCUIT_COOLDOWN": 1.0,
        "CIRCUIT_COOLDOWN_CAP": 4.0,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": SENDGRID_PUBLIC_KEY,
        "POSTMARK_WEBHOOK_USERNAME": POSTMARK_WEBHOOK_USERNAME,
        "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_WEBHOOK_PASSWORD,
        "SENDGRID_INBOUND_USERNAME": SENDGRID_INBOUND_USERNAME,
        "SENDGRID_INBOUND_PASSWORD": SENDGRID_INBOUND_PASSWORD,
    }


def _empty_tables(application, tries=5):
    """Delete every row of the test database, for tests whose rows are committed.

    Usually the test before left nothing, and one look says so. Otherwise the rows go by DELETE
    (a few rows: much cheaper than TRUNCATE, which makes new files for every table and index)
    in a transaction whose commit does not wait for the disk: a test database need not
    survive a crash. A process the test started may still be finishing a transaction (a
    worker's last heartbeat, a webhook thread); if PostgreSQL picks the cleanup as a
    deadlock's victim, it is tried again rather than failing a test that passed.
    """
    with application.app_context():
        db.session.remove()
        for attempt in range(tries):
            try:
                with db.engine.begin() as conn:
                    if conn.execute(ANY_ROW).scalar():
                        conn.execute(text("SET LOCAL synchronous_commit = off"))
                        for table in TABLES:
                            conn.execute(text(f"DELETE FROM {table}"))
                break
            except DBAPIError as err:
                if getattr(err.orig, "pgcode", None) != DEADLOCK or attempt == tries - 1:
                    raise
        db.engine.dispose()


def _crosses_connections(request):
    """Whether the test needs committed rows that another connection or process reads."""
    return (
        "run_worker" in request.fixturenames
        or request.node.get_closest_marker("committed") is not None
    )


@pytest.fixture
def app(settings, request):
    """The Flask app on the test database, rolled back (or, across processes, emptied) after."""
    application = create_app(settings)
    if _crosses_connections(request):
        _empty_tables(application)  # also what a test with an app of its own left behind
        yield application
        _empty_tables(application)
        return
    with application.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    # A plain Session: Flask-SQLAlchemy's own picks the engine per table and would ignore the
    # connection. Scoped per app context, as Flask-SQLAlchemy scopes its own.
    db.session = scoped_session(
        sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ),
        scopefunc=lambda: id(app_ctx._get_current_object()),
    )
    application.extensions["test_connection"] = connection

    @contextlib.contextmanager
    def savepoint():
        with connection.begin_nested():
            yield connection

    db.test_transaction = savepoint  # where the API stores mail (see mailer.database.transaction)
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.session = original
            db.test_transaction = None
            outer.rollback()
            connection.close()
            db.engine.dispose()


@pytest.fixture
def sql(app, database_url):
    """Run SQL on the test database as the test sees it: inside its transaction when it has one.

    Returns rows as mappings (or None for a statement that returns none).
    """
    connection = app.extensions.get("test_connection")
    engine = None if connection is not None else create_engine(database_url)

    def run(statement, **params):
        if connection is not None:
            result = connection.execute(text(statement), params)
            return result.mappings().all() if result.returns_rows else None
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.mappings().all() if result.returns_rows else None

    yield run
    if engine is not None:
        engine.dispose()


@pytest.fixture
def client(app):
    """A test client of the app, calling from loopback like a local client."""
    return app.test_client()


@pytest.fixture
def mail():
    """A valid mail request for POST /mail, fresh for each test."""
    return sample_mail()


@pytest.fixture
def run_worker(settings):
    """Run a worker in this process; by default until nothing is due (``--burst``).

    ``run_worker.workers`` lists the workers started, so a test can stop one that runs on a
    thread; any still running at the end of the test are stopped.
    """
    engines = []

    def run(burst=True, **overrides):
        config = load_config(overrides={**settings, **overrides}, environ={})
        engine = make_engine(config, pool_size=config["WORKER_CONCURRENCY"] + 4, worker=True)
        engines.append(engine)
        worker = Worker(engine, config, build_providers(config))
        run.workers.append(worker)
        worker.run(burst=burst)
        return worker

    run.workers = []
    yield run
    for worker in run.workers:
        worker.stop()
    for engine in engines:
        engine.dispose()


def worker_env(settings, **overrides):
    """Environment for a worker subprocess with ``settings`` (every setting is an env var)."""
    env = {key: value for key, value in os.environ.items() if key != "MAIL_SERVICE_CONFIG"}
    env.update({key: str(value) for key, value in {**settings, **overrides}.items()})
    return env


def start_worker_process(settings, *args, **overrides):
    """Start ``mail_service.py`` as a separate process with ``settings``."""
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "mail_service.py"), *args],
        env=worker_env(settings, **overrides),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
