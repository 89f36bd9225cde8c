"""Wake an idle worker the moment mail is queued, with PostgreSQL's LISTEN/NOTIFY.

The ``email`` table's trigger (migration 0002) sends a NOTIFY on ``mail_queued`` when a
transaction that inserted mail commits. A worker's listener thread holds one extra connection
that LISTENs and sets the worker's wake event, so a new mail is claimed within milliseconds
instead of at the next poll. Polling stays as the fallback: a lost connection only costs
latency.

LISTEN belongs to a session, so behind PgBouncer in transaction mode it would hear nothing (the
worker would only poll): ``LISTEN_DATABASE_URL`` then points the listener, one connection per
worker, straight at PostgreSQL (``listen_engine``). The statements are in ``sql/notify.sql``.
"""

import logging
import select
import threading

from sqlalchemy import create_engine

from mailer.database import engine_options, normalize_url
from mailer.queue.queries import load

SQL = load("notify.sql")
log = logging.getLogger("mail_service.notify")

CHANNEL = "mail_queued"  # as sql/notify.sql names it
RECONNECT_MAX = 10.0  # seconds between attempts to listen again


def listen_engine(engine, config):
    """The listener's engine: one of its own for ``LISTEN_DATABASE_URL``, else the worker's."""
    url = config["LISTEN_DATABASE_URL"]
    if not url:
        return engine
    return create_engine(normalize_url(url), **engine_options(config, pool_size=1))


class QueueListener(threading.Thread):
    """A daemon thread that sets ``wake`` whenever mail is queued, until ``stopping``."""

    def __init__(self, engine, wake, stopping):
        super().__init__(name="listen", daemon=True)
        self.engine = engine
        self.wake = wake
        self.stopping = stopping

    @staticmethod
    def supported(engine):
        """Whether the engine's driver is psycopg2, whose notifies this thread reads."""
        return engine.dialect.driver == "psycopg2"

    def run(self):
        """Listen, and after any failure listen again with backoff."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self._listen()
                delay = 0.5
            except Exception as err:  # any failure: reconnect, never die
                log.warning(
                    "LISTEN %s lost (%s); polling until it is back", CHANNEL, err.__class__.__name__
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    def _listen(self):
        """Hold a dedicated connection on LISTEN and turn notifications into wake-ups.

        The notifications arrive on psycopg2's connection, which is waited on and read
        directly (SQLAlchemy has no API for them); the connection is this thread's for good,
        detached from the pool, and closed with it.
        """
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.detach()
            conn.exec_driver_sql(SQL.listen)
            connection = conn.connection.dbapi_connection
            self.wake.set()  # mail may have arrived while we were not listening
            while not self.stopping.is_set():
                if select.select([connection], [], [], 1.0)[0]:
                    connection.poll()
                    if connection.notifies:
                        connection.notifies.clear()
                        self.wake.set()


def wake_workers(conn):
    """Wake the idle workers when ``conn``'s transaction commits (mail made due now)."""
    conn.exec_driver_sql(SQL.wake_workers)
