"""psycopg2 that waits for PostgreSQL cooperatively, for gunicorn's gevent workers.

gevent's monkey-patching makes sockets yield to other greenlets while they wait, but psycopg2
waits inside libpq, which gevent cannot patch: one greenlet's query would stop every other
request of its process. psycopg2's wait callback (the "green" mode psycogreen sets up) hands
the waiting to us: libpq's socket is polled without blocking, and gevent waits on it.

One thing libpq no longer does then: a non-blocking connect ignores ``connect_timeout``
(``DB_CONNECT_TIMEOUT``), so ``wait`` bounds a connection attempt by it, and an unreachable
database still answers 503 in seconds rather than after the kernel gives up on TCP.
"""

import time

import psycopg2
from gevent.socket import wait_read, wait_write
from psycopg2 import extensions

# What to wait for on libpq's socket in each state that ``conn.poll()`` answers.
WAITS = {extensions.POLL_READ: wait_read, extensions.POLL_WRITE: wait_write}


def make_psycopg2_green():
    """Have every psycopg2 connection of this process wait through ``wait`` (call it in each
    gevent worker, after gevent's monkey-patching and before the first connection)."""
    extensions.set_wait_callback(wait)


def wait(conn):
    """Drive ``conn``'s pending operation (a connect or a query) to its end, letting other
    greenlets run while PostgreSQL has not answered; a connect gives up after its
    ``connect_timeout``, with libpq's own message."""
    deadline = connect_deadline(conn)
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state not in WAITS:
            raise psycopg2.OperationalError(f"Bad result from poll: {state!r}")
        if deadline is None:
            WAITS[state](conn.fileno())
        else:
            remaining = max(0.0, deadline - time.monotonic())
            WAITS[state](conn.fileno(), remaining, psycopg2.OperationalError("timeout expired"))


def connect_deadline(conn):
    """When a connection attempt must give up (monotonic), or None: not connecting, or no
    ``connect_timeout`` (libpq's 0 or unset: wait for ever)."""
    if conn.status != extensions.STATUS_SETUP:
        return None
    seconds = conn.get_dsn_parameters().get("connect_timeout")
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return None
    return time.monotonic() + seconds if seconds > 0 else None


class ActiveLimit:
    """WSGI middleware: at most ``limit`` requests of this process run the app at once; the
    others wait their turn in the event loop.

    A gevent worker takes every connection at once (slow clients park for free), but requests
    that all run together share one core: each waits for the others' Python, and the tail of
    the latencies grows with their number. A few at a time, as a few threads were, keeps a
    core busy while some wait on PostgreSQL, and no more.
    """

    def __init__(self, app, limit):
        from gevent.lock import BoundedSemaphore

        self.app = app
        self.slots = BoundedSemaphore(limit)

    def __call__(self, environ, start_response):
        with self.slots:
            return self.app(environ, start_response)
