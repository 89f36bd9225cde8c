"""Helpers for tests: sample requests, queue many mails at once, read rows, wait."""

import bisect
import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, func, insert, select, text
from werkzeug.serving import make_server

from mailer.queue.notify import CHANNEL
from mailer.worker.circuit import mode_of
from models import QUEUED, SENDING, DeliveryAttempt, Email, ProviderState, utcnow


def sample_mail(**fields):
    """A valid mail request as the API takes it (a fresh dict), with ``fields`` replaced."""
    return {
        "from": "sender@example.com",
        "to": "rcpt@example.com",
        "subject": "Hello",
        "text": "Plain body",
        **fields,
    }


def sg_payload(**overrides):
    """A valid SendGrid v3 payload."""
    payload = {
        "personalizations": [{"to": [{"email": "bob@example.com", "name": "Bob"}]}],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "subject": "Hello",
        "content": [
            {"type": "text/plain", "value": "Hi Bob"},
            {"type": "text/html", "value": "<p>Hi Bob</p>"},
        ],
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def later(seconds):
    """An ISO 8601 time ``seconds`` from now, with its zone."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def queue_mails(database_url, count, **fields):
    """Insert ``count`` queued mails directly (faster than the API for thousands); their ids."""
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "status": QUEUED,
            "from_address": "sender@example.com",
            "to_address": [f"rcpt{index}@example.com"],
            "subject": f"Mail {index}",
            "text": "Hello",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        for index in range(count)
    ]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(Email.__table__), rows)
    engine.dispose()
    return [str(row["id"]) for row in rows]


def statuses(database_url):
    """How many mails are in each status."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        table = Email.__table__
        query = select(table.c.status, func.count()).group_by(table.c.status)
        counts = {status: count for status, count in conn.execute(query)}
    engine.dispose()
    return counts


def mail_rows(database_url):
    """Every mail row, as dicts keyed by id string."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = {
            str(row["id"]): dict(row) for row in conn.execute(select(Email.__table__)).mappings()
        }
    engine.dispose()
    return rows


def attempts_of(database_url):
    """Every attempt row, oldest first."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        table = DeliveryAttempt.__table__
        rows = [dict(row) for row in conn.execute(select(table).order_by(table.c.id)).mappings()]
    engine.dispose()
    return rows


def provider_state(database_url, name):
    """The breaker row of provider ``name``, or None."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        table = ProviderState.__table__
        row = conn.execute(select(table).where(table.c.name == name)).mappings().first()
    engine.dispose()
    return dict(row) if row else None


def listening_and_quiet(database_url, quiet=0.5):
    """Whether a session LISTENs for new mail and no session has run a statement for ``quiet`` s.

    A worker acts on a wake-up within milliseconds, so a quiet database means that it has made
    the claims of its start-up, including the one that follows its LISTEN, and now waits.
    """
    engine = create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT coalesce(bool_or(state = 'idle' AND query = :listen), false) AS listening,"
                "       extract(epoch FROM min(clock_timestamp() - state_change)) AS quiet_for"
                "  FROM pg_stat_activity"
                " WHERE datname = current_database() AND backend_type = 'client backend'"
                "   AND pid <> pg_backend_pid()"
            ),
            {"listen": f"LISTEN {CHANNEL}"},
        ).one()
    engine.dispose()
    return row.listening and row.quiet_for >= quiet


def circuit_mode(database_url, name):
    """What a worker may do with provider ``name`` now, by its breaker: use, probe or skip."""
    return mode_of(provider_state(database_url, name), utcnow())


def is_due(database_url, mail_id):
    """Whether mail ``mail_id`` is queued and due, so that the next claim takes it."""
    row = mail_rows(database_url)[mail_id]
    return row["status"] == QUEUED and row["next_attempt_at"] <= utcnow()


def leases_expired(database_url):
    """Whether every mail still marked sending has a lease that ran out (the reaper's test)."""
    now = utcnow()
    return all(
        row["locked_until"] < now
        for row in mail_rows(database_url).values()
        if row["status"] == SENDING
    )


def arrival_times(sandbox, provider):
    """When the sandbox received each of ``provider``'s mails, in seconds, sorted."""
    return sorted(
        datetime.fromisoformat(m["received_at"]).timestamp() for m in sandbox.messages(provider)
    )


def busiest_second(moments):
    """The most counted in any one-second window (sliding) of ``moments``: (seconds, count)s."""
    moments = sorted(moments)
    times = [seconds for seconds, _ in moments]
    totals = list(itertools.accumulate((count for _, count in moments), initial=0))
    return max(
        (
            totals[bisect.bisect_left(times, start + 1.0)] - totals[index]
            for index, start in enumerate(times)
        ),
        default=0,
    )


TAKES_LOGGED = """
    CREATE TABLE test_rate_take (name text, at timestamptz, tokens integer);
    CREATE FUNCTION test_log_rate_take() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO test_rate_take VALUES (NEW.name, NEW.refilled_at, NEW.granted
            - CASE WHEN NEW."window" = OLD."window" THEN OLD.granted ELSE 0 END);
        RETURN NEW;
    END $$;
    CREATE TRIGGER test_log_rate_take AFTER UPDATE ON provider_rate
        FOR EACH ROW EXECUTE FUNCTION test_log_rate_take();
"""
TAKES_UNLOGGED = """
    DROP TRIGGER test_log_rate_take ON provider_rate;
    DROP FUNCTION test_log_rate_take();
    DROP TABLE test_rate_take;
"""


@contextlib.contextmanager
def rate_takes(database_url):
    """Log each draw from the rate caps' buckets (``ratecap.take``) during the block.

    Yields a function that reads the log: each provider's draws as (seconds, tokens), stamped
    by the database's clock when they were taken. A trigger of the test's own on
    ``provider_rate`` writes the log; it and its table are dropped after the block.
    """
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(TAKES_LOGGED)

    def read():
        draws = {}
        with engine.connect() as conn:
            for row in conn.execute(text("SELECT name, at, tokens FROM test_rate_take")):
                draws.setdefault(row.name, []).append((row.at.timestamp(), row.tokens))
        return draws

    try:
        yield read
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(TAKES_UNLOGGED)
        engine.dispose()


def received_counts(sandbox, provider=None):
    """How many times the sandbox received each mail id (from the ``mail_id`` custom var)."""
    return Counter(message["custom"].get("mail_id") for message in sandbox.messages(provider))


@contextlib.contextmanager
def serving(application, **options):
    """``application`` on a threaded HTTP server on a free loopback port, for the block: its URL.

    The server looks for the request to stop every 50 ms, so that stopping it takes no longer.
    """
    httpd = make_server("127.0.0.1", 0, application, threaded=True, **options)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def wait_for(condition, timeout, interval=0.05, message="condition"):
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def alive(pid):
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Output:
    """A child process's output, read by a thread as it comes, so a test can wait for a line."""

    def __init__(self, process):
        self.lines = []
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream):
        """Keep every line until the process closes its output."""
        with stream:
            for line in stream:
                self.lines.append(line)

    def __contains__(self, text):
        return any(text in line for line in list(self.lines))

    def text(self, timeout=10):
        """All of the output, once the process has closed it (or ``timeout`` seconds passed)."""
        self._reader.join(timeout)
        return "".join(self.lines)
