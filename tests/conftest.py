"""Shared fixtures: a real PostgreSQL database, the app, the provider sandbox, a worker.

The test database is created once per session on ``TEST_DATABASE_URL`` (default: a fresh
database on 127.0.0.1:5432, dropped at the end) and migrated to head once. Worker tests need
committed rows that other processes can see, so instead of rolling back a transaction each test
empties the tables afterwards.
"""

import os
import subprocess
import sys
import uuid

import pytest
from flask_migrate import upgrade
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from mail_service import load_config
from mailer.database import make_engine
from mailer.sandbox import Sandbox
from mailer.worker import Worker
from models import db
from providers import build_providers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MAILGUN_KEY = "key-test-mailgun"
SENDGRID_KEY = "SG.test-sendgrid"
TABLES = "delivery_attempt, email, provider_state"


def _server_url():
    """The PostgreSQL server to test against, and whether we create the database ourselves."""
    url = os.environ.get("TEST_DATABASE_URL")
    return (make_url(url), False) if url else (make_url(DEFAULT_SERVER), True)


@pytest.fixture(scope="session")
def database_url():
    """A migrated, empty PostgreSQL database for the whole session."""
    server, create = _server_url()
    if not create:
        _migrate(server.render_as_string(hide_password=False))
        yield server.render_as_string(hide_password=False)
        return
    name = f"mail_test_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(user=server.username or "postgres", host=server.host or "127.0.0.1",
                              port=server.port or 5432, dbname=name, password=server.password)
    janitor.init()
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        janitor.drop()


def _migrate(url):
    """Run the migrations to head on ``url``."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
        db.engine.dispose()


@pytest.fixture(scope="session")
def sandbox():
    """The Mailgun/SendGrid sandbox on a free loopback port, for the whole session."""
    with Sandbox(mailgun_key=MAILGUN_KEY, sendgrid_key=SENDGRID_KEY).start() as server:
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
        "PROVIDER_TIMEOUT": 2.0,
        "WORKER_CONCURRENCY": 8,
        "POLL_INTERVAL": 0.1,
        "RETRY_BASE": 0.2,
        "RETRY_CAP": 1.0,
        "CIRCUIT_COOLDOWN": 1.0,
        "CIRCUIT_COOLDOWN_CAP": 4.0,
    }


@pytest.fixture
def app(settings):
    """The Flask app on the test database; the tables are emptied after the test."""
    application = create_app(settings)
    yield application
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES}"))
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client of the app, calling from loopback like a local client."""
    return app.test_client()


@pytest.fixture
def run_worker(settings):
    """Run a worker in this process; by default until nothing is due (``--burst``).

    ``run_worker.workers`` lists the workers started, so a test can stop one that runs on a
    thread; any still running at the end of the test are stopped.
    """
    engines = []

    def run(burst=True, **overrides):
        config = load_config(None)
        config.update(settings)
        config.update(overrides)
        engine = make_engine(config, pool_size=int(config["WORKER_CONCURRENCY"]) + 4,
                             worker=True)
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
        env=worker_env(settings, **overrides), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
