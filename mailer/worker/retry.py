"""The retry policy: when a failed delivery is tried again, and when retrying stops.

Exponential backoff with jitter, bounded by a number of attempts and an age. Both bounds are
counted from the mail's creation or, after an operator's retry, from that retry; the database
measures them when the mail is claimed (``budget_used`` and ``age``), so no clock but the
database's is involved.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of ``base`` seconds doubling to ``cap``; at most ``max_attempts``, ``max_age``."""

    max_attempts: int = 8
    max_age: float = 86400.0  # seconds
    base: float = 30.0  # seconds
    cap: float = 3600.0  # seconds

    @classmethod
    def from_config(cls, config):
        """The policy of MAX_ATTEMPTS, MAX_AGE, RETRY_BASE and RETRY_CAP."""
        return cls(
            config["MAX_ATTEMPTS"], config["MAX_AGE"], config["RETRY_BASE"], config["RETRY_CAP"]
        )

    def delay(self, attempts):
        """Seconds to wait after the ``attempts``-th failed delivery ("full jitter" halved)."""
        ceiling = min(self.cap, self.base * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def exhausted(self, attempts, age):
        """Whether a mail that failed ``attempts`` times and is ``age`` seconds old is done."""
        return attempts >= self.max_attempts or age >= self.max_age
