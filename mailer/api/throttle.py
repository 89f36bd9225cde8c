"""A brake on guessing: too many wrong API keys or admin passwords from one client is a 429.

After ``AUTH_FAILURE_LIMIT`` failures from one address within ``AUTH_FAILURE_WINDOW`` seconds,
that address gets 429 with ``Retry-After`` for ``AUTH_BLOCK_SECONDS``, whatever it sends, and
the block is logged once. The counts live in this process's memory: with several gunicorn
workers an address may try up to the limit in each before every one blocks it.
"""

import logging
import threading
import time
from collections import deque

log = logging.getLogger("mail_service.auth")

MAX_TRACKED = 100_000  # addresses remembered at most; the oldest are forgotten first


class FailureThrottle:
    """Failed authentications per client address, and the addresses blocked for a while."""

    def __init__(self, limit, window, block):
        self.limit = limit
        self.window = window  # seconds
        self.block = block  # seconds
        self._failures = {}  # address -> deque of monotonic times
        self._blocked = {}  # address -> monotonic time the block ends
        self._lock = threading.Lock()

    def retry_after(self, address):
        """Seconds until ``address`` may try again, or 0 if it is not blocked."""
        with self._lock:
            until = self._blocked.get(address)
            if until is None:
                return 0
            remaining = until - time.monotonic()
            if remaining <= 0:
                del self._blocked[address]
                return 0
            return max(1, int(remaining + 0.999))

    def failed(self, address):
        """Count one failure of ``address``; block it (and log once) past the limit."""
        now = time.monotonic()
        with self._lock:
            recent = self._failures.setdefault(address, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) < self.limit:
                self._forget_oldest()
                return
            del self._failures[address]
            self._blocked[address] = now + self.block
        log.warning(
            "%d failed authentications from %s within %gs: refusing it for %gs",
            self.limit,
            address,
            self.window,
            self.block,
        )

    def _forget_oldest(self):
        """Keep memory bounded under a flood of addresses (dicts keep insertion order)."""
        while len(self._failures) > MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))
