"""The guard that steers away from a blocked path: a provider whose mail to a recipient domain
keeps failing goes last for that domain, for every worker.

Recipients' servers block one provider's IPs while accepting another's. The providers' events
are counted per provider, recipient domain and minute as they are recorded
(``mailer.queue.events``). Every ``REFRESH_INTERVAL`` seconds a worker looks at the last
``DELIVERABILITY_WINDOW`` seconds of those counts and decides each pair (``steers``): a pair
with at least ``DELIVERABILITY_MIN_EVENTS`` outcomes, more than
``DELIVERABILITY_MAX_FAILURE_RATE`` of them bounced, deferred or complained, is steered away
from; it comes back once that share falls back to the threshold or under it (or its outcomes
leave the window). The pairs steered away from are rows of ``steering``, shared by every
worker; one worker at a time changes them, and only the worker whose statement changed a row
logs the change, so each change is logged once.

A worker then puts the steered providers last in the order of each mail to that domain
(``demoted``, the dispatcher's hook). With one provider there is nowhere else to go: the guard
is off. ``DELIVERABILITY_MAX_FAILURE_RATE=1`` turns it off too: then the pairs still steered
come back at the next look, and none is put last.
"""

import logging
import time

from mailer.queue import steering as rows

log = logging.getLogger("mail_service.worker")

REFRESH_INTERVAL = 5.0  # seconds between a worker's looks at the shared steering


def steers(failed, events, already, min_events, max_rate):
    """Whether a pair with ``failed`` of ``events`` outcomes in the window is steered away from.

    A pair not steered (``already`` false) needs ``min_events`` outcomes and a failed share over
    ``max_rate``; a steered one stays while its share is over ``max_rate``, however few its
    outcomes: put last, it gets little mail, and it comes back as its failures leave the
    window. A ``max_rate`` of 1 or more steers nothing.
    """
    if max_rate >= 1 or events <= 0:
        return False
    over = failed > max_rate * events
    return over if already else over and events >= min_events


class Steering:
    """This worker's copy of the shared steering, refreshed every ``REFRESH_INTERVAL``."""

    def __init__(self, engine, config, names):
        self.engine = engine
        self.window = config["DELIVERABILITY_WINDOW"]
        self.min_events = config["DELIVERABILITY_MIN_EVENTS"]
        self.max_rate = config["DELIVERABILITY_MAX_FAILURE_RATE"]
        self.alone = len(names) < 2  # one provider: nowhere else to go
        self.rows = []  # the steering rows at the last refresh
        self.seen = frozenset()  # every (provider, domain) steered since this worker started
        self._by_domain = {}  # domain -> names of the providers steered away from for it
        self._last = None  # time.monotonic() of the last refresh

    def demoted(self, domain):
        """The providers to put last for mail to ``domain`` (lower case)."""
        return self._by_domain.get(domain, frozenset())

    def refresh_if_due(self):
        """Refresh once ``REFRESH_INTERVAL`` went by since the last time."""
        if self._last is None or time.monotonic() - self._last >= REFRESH_INTERVAL:
            self.refresh()

    def refresh(self):
        """Decide the pairs, if no other worker is deciding them now, and read them.

        With the guard off (a ``max_rate`` of 1) the pairs still steered come back, and none is
        put last meanwhile.
        """
        if self.alone:
            return
        with self.engine.begin() as conn:
            changes = self._decide(conn) if rows.try_lock(conn) else []
            current = rows.steered(conn)
        self._last = time.monotonic()
        for change in changes:  # once committed
            log_change(*change, self.window)
        self.rows = current
        self.seen = self.seen | {(row["provider"], row["domain"]) for row in current}
        by_domain = {}
        for row in current if self.max_rate < 1 else ():
            by_domain.setdefault(row["domain"], set()).add(row["provider"])
        self._by_domain = {domain: frozenset(names) for domain, names in by_domain.items()}

    def _decide(self, conn):
        """Steer and release by the window's counts; the changes, with their figures."""
        counts = rows.window_counts(conn, self.window)
        already = {(row["provider"], row["domain"]) for row in rows.steered(conn)}
        steer, release = {}, []
        for pair in set(counts) | already:
            failed, events = counts.get(pair, (0, 0))
            if steers(failed, events, pair in already, self.min_events, self.max_rate):
                steer[pair] = (failed, events)
            elif pair in already:
                release.append(pair)
        return [
            (provider, domain, steered, *counts.get((provider, domain), (0, 0)))
            for provider, domain, steered in rows.apply(conn, steer, sorted(release))
        ]


def log_change(provider, domain, steered, failed, events, window):
    """The one line of a pair steered away from, or back."""
    share = 100.0 * failed / events if events else 0.0
    said = "steered away from" if steered else "no longer steered away from"
    (log.warning if steered else log.info)(
        "provider %s %s %s: %d of %d events failed (%.1f%%) in the last %gs",
        provider,
        said,
        domain,
        failed,
        events,
        share,
        window,
        extra={"provider": provider},
    )
