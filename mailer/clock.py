"""The database's clock, as seen from a worker.

Claims, leases, schedules and ``updated_at`` are decided in SQL with ``now()``. What a worker
must time itself (when it called a provider, when a breaker's pause ends) it reads from this
clock: its own clock plus the offset to the database's measured at the last sync, so that a
host whose clock is off by an hour still agrees with every other worker.
"""

import threading
from datetime import timedelta

from models import utcnow


class DbClock:
    """This process's UTC clock corrected by the offset to the database's clock."""

    def __init__(self):
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def sync(self, db_now, asked_at, answered_at):
        """Learn the offset from a ``db_now`` read between ``asked_at`` and ``answered_at``."""
        midpoint = asked_at + (answered_at - asked_at) / 2
        with self._lock:
            self._offset = db_now - midpoint

    def now(self):
        """The database's time now, to within the round trip of the last sync."""
        return utcnow() + self._offset
