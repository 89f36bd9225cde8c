"""psycopg2 in gunicorn's gevent workers (mailer/green.py): it waits cooperatively, and a
connection attempt still gives up after ``connect_timeout`` as libpq's blocking connect does.
A gevent worker serves more requests at once than its pool has connections: one that gets
none in time is a 503, as when the database is down.

Each green case runs in a process of its own: the wait callback is global to psycopg2, and
gevent's monkey-patching to the process."""

import socket
import subprocess
import sys
import time

from conftest import ROOT
from sqlalchemy.engine import make_url

from app import create_app
from mailer.database import engine_options
from models import db

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import sys, time
import gevent, psycopg2
from mailer.green import make_psycopg2_green
make_psycopg2_green()
"""


def run(script, timeout=60):
    """Run ``script`` after PRELUDE in a new Python; its output (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def libpq_url(database_url):
    """The test database's URL as libpq takes it."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def test_a_connect_to_a_silent_server_gives_up_after_connect_timeout():
    # A loopback port that accepts TCP (the kernel does) but never answers: PostgreSQL hung,
    # or a host that swallows packets. libpq's non-blocking connect would wait for ever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        output = run(
            f"""
try:
    psycopg2.connect(host="127.0.0.1", port={port}, dbname="x", connect_timeout=1)
except psycopg2.OperationalError as err:
    print("refused:", err)
""",
            timeout=30,
        )
    assert output.startswith("refused: timeout expired")
    assert time.monotonic() - started < 15  # 1 s, and a new Python's start on a busy machine


def test_queries_wait_cooperatively_and_are_not_cut_by_connect_timeout(database_url):
    # Two sessions sleep 1.5 s each in PostgreSQL at once: together about 1.5 s, not 3 s (each
    # greenlet waits while the other runs), and longer than connect_timeout without harm.
    output = run(
        f"""
def nap():
    conn = psycopg2.connect({libpq_url(database_url)!r}, connect_timeout=1)
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1.5)")
    conn.close()

started = time.monotonic()
gevent.joinall([gevent.spawn(nap), gevent.spawn(nap)], raise_error=True)
print(round(time.monotonic() - started, 2))
"""
    )
    assert 1.5 <= float(output) < 2.8, output


def test_a_request_that_gets_no_pooled_connection_in_time_is_a_503(settings):
    app = create_app({**settings, "API_KEYS": "key", "DB_CONNECT_TIMEOUT": 1})
    with app.app_context():
        options = engine_options(app.config)
        held = [
            db.engine.raw_connection()
            for _ in range(options["pool_size"] + options["max_overflow"])
        ]
        try:
            started = time.monotonic()
            response = app.test_client().get(
                "/mail/00000000-0000-4000-8000-000000000000",
                headers={"Authorization": "Bearer key"},
            )
            assert time.monotonic() - started >= 2  # the pool's timeout: DB_CONNECT_TIMEOUT + 2
        finally:
            for connection in held:
                connection.close()
        db.engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["errors"] == [{"field": "database", "message": "Unavailable"}]
