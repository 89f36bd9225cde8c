"""Which workers are alive: a heartbeat row per worker in ``worker_heartbeat``.

- ``beat``: a worker says it is alive, with its sends in flight and its totals; one upsert,
  stamped with the database's clock (so no host's clock decides who looks dead).
- ``alive``: the workers seen within the last few seconds, for ``/readyz``, the metrics and the
  admin.
- ``forget``: a worker that stops cleanly deletes its row. One that dies leaves it behind, its
  ``last_seen`` frozen; ``alive`` leaves it out and ``forget_stale`` clears it later.

The statements are in ``sql/heartbeats.sql``.
"""

import os
import socket

from mailer.queue.queries import load

SQL = load("heartbeats.sql")
INTERVAL = 5.0  # seconds between a worker's beats
ALIVE_WITHIN = 3 * INTERVAL  # seconds: a worker not seen for this long counts as gone
STALE_AFTER = 3600.0  # seconds: the row of a worker gone this long is deleted by the others


def beat(conn, name, in_flight=0, sent=0, failed=0, host=None, pid=None):
    """Record that worker ``name`` is alive now (the database's ``now()``), with its counts.

    The first beat creates the row (``started_at`` = now); later ones only move ``last_seen``
    and the counts.
    """
    conn.exec_driver_sql(
        SQL.beat,
        {
            "name": name,
            "host": host or socket.gethostname(),
            "pid": pid or os.getpid(),
            "in_flight": in_flight,
            "sent": sent,
            "failed": failed,
        },
    )


def alive(conn, within_seconds=ALIVE_WITHIN):
    """The workers seen in the last ``within_seconds``, by name, as dicts (with ``age``:
    seconds since their last beat)."""
    rows = conn.exec_driver_sql(SQL.alive, {"within": float(within_seconds)})
    return [dict(row) for row in rows.mappings()]


def forget(conn, name):
    """Delete worker ``name``'s row (it stops cleanly)."""
    conn.exec_driver_sql(SQL.forget, {"name": name})


def forget_stale(conn, older_than_seconds):
    """Delete the rows of workers not seen for ``older_than_seconds``; how many went."""
    return conn.exec_driver_sql(
        SQL.forget_stale, {"older_than": float(older_than_seconds)}
    ).rowcount
