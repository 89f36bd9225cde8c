"""Circuit breakers, one per provider, kept in the database and shared by every worker.

A breaker is *closed* while its provider works. After ``threshold`` consecutive transient
failures it *opens*: the provider is skipped until its cool-down ends. Then exactly one worker
wins the right to send one probe (*half open*); if the probe succeeds the breaker closes and
traffic returns to the provider, if it fails the breaker opens again with a longer cool-down
(doubled each time, capped). A 429 is not an outage: it only pauses the provider until the time
it gave. An operator may also open a breaker by hand (planned maintenance): it stays open,
with no probe, until an operator closes it by hand (``open_by_hand``, ``close_by_hand``).

Because the state lives in the ``provider_state`` table, a restarted worker, or one on another
host, skips a dead provider at once instead of relearning it with failed sends. Symfony's and
Laravel's failover transports, by contrast, mark a transport dead for a fixed 60 s per process
after one error and never fail back while the secondary works.
"""

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from mailer.clock import DbClock
from mailer.database import describe
from mailer.queue import breakers
from models import utcnow

log = logging.getLogger("mail_service.circuit")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CIRCUIT_STATES = (CLOSED, OPEN, HALF_OPEN)
PAUSED = "paused"  # shown instead of the circuit's state while a 429 pause lasts
# What a worker may do with a provider right now.
USE, PROBE, SKIP = "use", "probe", "skip"
# What an operator may do to a breaker by hand (the ``provider_action`` log's ``action``).
OPEN_BY_HAND, CLOSE_BY_HAND = "open", "close"


class Breakers:
    """The shared breakers of a list of providers, with a short-lived local copy of their state."""

    def __init__(
        self,
        engine,
        names,
        threshold=5,
        cooldown=30.0,
        cooldown_cap=600.0,
        probe_window=60.0,
        refresh_interval=0.5,
    ):
        self.engine = engine
        self.names = list(names)
        self.threshold = threshold
        self.cooldown = cooldown
        self.cooldown_cap = cooldown_cap
        self.probe_window = probe_window  # seconds a probe may take before another may start
        self.refresh_interval = refresh_interval  # seconds the local copy is trusted
        self.clock = DbClock()  # synced at every refresh
        self._rows = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def ensure_rows(self):
        """Create a closed breaker row for every provider that has none yet."""
        with self.engine.begin() as conn:
            breakers.ensure(conn, self.names)
        self.refresh(force=True)

    def refresh(self, force=False):
        """Reload every breaker, and the database's time, if the local copy is getting old."""
        if not force and time.monotonic() - self._loaded_at < self.refresh_interval:
            return
        asked_at = utcnow()
        with self.engine.connect() as conn:
            db_now = breakers.clock(conn)
            fresh = {row["name"]: row for row in breakers.breakers(conn, self.names)}
        self.clock.sync(db_now, asked_at, utcnow())
        with self._lock:
            self._rows = fresh
            self._loaded_at = time.monotonic()

    def snapshot(self):
        """The local copy of every breaker's row, by provider name."""
        with self._lock:
            return {name: dict(row) for name, row in self._rows.items()}

    def mode(self, name):
        """USE, PROBE or SKIP for the provider ``name``, from the local copy."""
        row = self._rows.get(name)
        if row is None:
            return USE
        return mode_of(row, self.clock.now())

    def seconds_to_next_change(self, names=None):
        """Seconds until some skipped provider (of ``names``, default all) may be tried again,
        or None."""
        now = self.clock.now()
        moments = [
            moment
            for name, row in self.snapshot().items()
            if names is None or name in names
            for moment in _change_times(row)
            if moment > now
        ]
        return (min(moments) - now).total_seconds() if moments else None

    def try_probe(self, name):
        """Claim the single probe of an open breaker; True if this caller won it."""
        with self.engine.begin() as conn:
            probe_until = breakers.try_probe(conn, name, self.probe_window)
        if probe_until is None:
            return False
        log.info("probing %s after its cool-down", name, extra={"provider": name})
        self._update_local(name, {"state": HALF_OPEN, "probe_until": probe_until})
        return True

    def record_success(self, name):
        """Close the breaker after a success, writing only if it was not already clean."""
        row = self._rows.get(name)
        if row is not None and row["state"] == CLOSED and not row["consecutive_failures"]:
            return
        if row is not None and row.get("held_by"):
            return  # held open by hand: only an operator closes it
        values = {
            "state": CLOSED,
            "consecutive_failures": 0,
            "cooldown": 0.0,
            "open_until": None,
            "probe_until": None,
        }
        with self.engine.begin() as conn:
            closed = breakers.close(conn, name)
        if not closed:
            return
        self._update_local(name, values)
        if row is not None and row["state"] != CLOSED:
            log.warning(
                "%s is back: circuit closed, traffic returns to it", name, extra={"provider": name}
            )

    def record_failure(self, name, reason):
        """Count a transient failure; open the breaker at the threshold or after a failed probe."""
        with self.engine.begin() as conn:
            row = breakers.lock(conn, name)
            if row is None:
                return
            values = failure_transition(
                row, row["db_now"], self.threshold, self.cooldown, self.cooldown_cap
            )
            values["last_error"] = reason[:500]
            breakers.fail(conn, {**row, **values})
        if values.get("state") == OPEN and row["state"] != OPEN:
            log.error(
                "%s failing (%s): circuit open for %.0fs after %d consecutive failures",
                name,
                reason,
                values["cooldown"],
                values["consecutive_failures"],
                extra={"provider": name},
            )
        self._update_local(name, values)

    def pause(self, name, seconds, reason):
        """Skip ``name`` for ``seconds`` from now (a 429), without counting an outage."""
        with self.engine.begin() as conn:
            paused_until = breakers.pause(conn, name, seconds, reason[:500])
        log.warning("%s rate-limits us: paused for %.0fs", name, seconds, extra={"provider": name})
        if paused_until is not None:
            self._update_local(name, {"paused_until": paused_until})

    def _update_local(self, name, values):
        """Apply a change we made to the local copy, so this worker sees it before a refresh."""
        with self._lock:
            if name in self._rows:
                self._rows[name].update(values)


def _change_times(row):
    """The moments at which a breaker row's mode may change."""
    return [
        row[key]
        for key in ("paused_until", "open_until", "probe_until")
        if row.get(key) is not None
    ]


def mode_of(row, now):
    """What a worker may do with a provider whose breaker row is ``row``, at ``now``.

    The one definition of a usable provider: the worker, ``/health`` and the admin all ask it.
    A breaker held open by hand is skipped, whatever its times say.
    """
    if row.get("held_by"):
        return SKIP
    paused_until = row.get("paused_until")
    if paused_until is not None and paused_until > now:
        return SKIP
    if row["state"] == CLOSED:
        return USE
    if row["state"] == OPEN:
        open_until = row.get("open_until")
        return PROBE if open_until is None or open_until <= now else SKIP
    probe_until = row.get("probe_until")
    return PROBE if probe_until is None or probe_until <= now else SKIP


def is_meltdown(modes):
    """Whether no provider can take mail now (a probe is not a provider that takes mail)."""
    modes = list(modes)
    return bool(modes) and USE not in modes


def never_reported(name):
    """The health of a provider no worker has written a breaker row for yet: closed, usable."""
    return {
        "name": name,
        "state": CLOSED,
        "circuit": CLOSED,
        "usable": True,
        "consecutive_failures": 0,
        "open_until": None,
        "paused_until": None,
        "last_error": None,
        "opened_by_hand": None,
    }


def provider_health(row, now):
    """A provider's health as ``/health`` and the admin show it, at the database's ``now``."""
    paused_until = row.get("paused_until")
    paused = paused_until is not None and paused_until > now
    return {
        "name": row["name"],
        "state": PAUSED if paused else row["state"],
        "circuit": row["state"],
        "usable": mode_of(row, now) == USE,
        "consecutive_failures": row["consecutive_failures"],
        "open_until": _iso(row.get("open_until")) if row["state"] == OPEN else None,
        "paused_until": _iso(paused_until) if paused else None,
        "last_error": row.get("last_error"),
        "opened_by_hand": _held(row),
    }


def _held(row):
    """Who opened a breaker by hand, when and why; None if no one holds it open."""
    if not row.get("held_by"):
        return None
    return {"by": row["held_by"], "at": _iso(row.get("held_at")), "reason": row.get("held_reason")}


def health(conn, names=None):
    """Every provider's health and whether the service is in a meltdown, by the database's clock.

    ``names`` limits it to the providers this process is configured with.
    """
    rows = breakers.breakers(conn, names)
    now = rows[0]["db_now"] if rows else None
    providers = [provider_health(row, now) for row in rows]
    melted = is_meltdown(mode_of(row, now) for row in rows)
    return {"status": "meltdown" if melted else "ok", "providers": providers}


def open_by_hand(conn, name, actor, reason=None):
    """An operator opens ``name``'s breaker (planned maintenance); logged with who and why.

    Workers skip the provider from their next refresh (half a second) until an operator closes
    it: no cool-down ends it, no probe is sent, a send still in flight cannot close it.
    """
    breakers.open_by_hand(conn, name, actor, reason)
    breakers.log_hand_action(conn, name, OPEN_BY_HAND, actor, reason)
    log.warning("%s opened by hand by %s%s", name, actor, f" ({reason})" if reason else "")


def close_by_hand(conn, name, actor, reason=None):
    """An operator closes ``name``'s breaker (held open by hand or opened by failures); logged.

    Traffic returns to it at once. A 429 pause stays: that is the provider's own word.
    Returns whether a breaker row was there to close.
    """
    closed = breakers.close_by_hand(conn, name)
    if closed:
        breakers.log_hand_action(conn, name, CLOSE_BY_HAND, actor, reason)
        log.warning("%s closed by hand by %s", name, actor)
    return closed


def hand_actions(conn, limit=20):
    """The latest breaker actions by hand, newest first, as dicts."""
    return breakers.hand_actions(conn, limit)


def _iso(moment):
    """ISO 8601, or None."""
    return moment.isoformat() if moment is not None else None


def failure_transition(row, now, threshold, cooldown, cooldown_cap):
    """The new values of a breaker row after one more transient failure."""
    failures = row["consecutive_failures"] + 1
    values = {"consecutive_failures": failures, "updated_at": now}
    if row["state"] == HALF_OPEN:
        # The probe failed: stay away for longer, up to the cap.
        next_cooldown = min(max(row["cooldown"], cooldown) * 2, cooldown_cap)
    elif row["state"] == CLOSED and failures >= threshold:
        next_cooldown = cooldown
    else:
        return values  # still under the threshold, or already open
    values.update(
        state=OPEN,
        cooldown=next_cooldown,
        probe_until=None,
        open_until=now + timedelta(seconds=next_cooldown),
    )
    return values


def safely(call, *args):
    """Run a breaker update, logging a database error instead of failing the send.

    The breaker is advice: a send that succeeded must still be recorded as sent even if the
    breaker's row could not be written.
    """
    try:
        return call(*args)
    except SQLAlchemyError as err:
        log.warning("could not update provider health: %s", describe(err))
        return None
