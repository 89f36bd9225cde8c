"""Circuit breakers, one per provider, kept in the database and shared by every worker.

A breaker is *closed* while its provider works. After ``threshold`` consecutive transient
failures it *opens*: the provider is skipped until its cool-down ends. Then exactly one worker
wins the right to send one probe (*half open*); if the probe succeeds the breaker closes and
traffic returns to the provider, if it fails the breaker opens again with a longer cool-down
(doubled each time, capped). A 429 is not an outage: it only pauses the provider until the time
it gave.

Because the state lives in the ``provider_state`` table, a restarted worker, or one on another
host, skips a dead provider at once instead of relearning it with failed sends. Symfony's and
Laravel's failover transports, by contrast, mark a transport dead for a fixed 60 s per process
after one error and never fail back while the secondary works.
"""

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import ProviderState, utcnow

log = logging.getLogger("mail_service.circuit")
table = ProviderState.__table__

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# What a worker may do with a provider right now.
USE, PROBE, SKIP = "use", "probe", "skip"


class Breakers:
    """The shared breakers of a list of providers, with a short-lived local copy of their state."""

    def __init__(self, engine, names, threshold=5, cooldown=30.0, cooldown_cap=600.0,
                 probe_window=60.0, refresh_interval=0.5):
        self.engine = engine
        self.names = list(names)
        self.threshold = threshold
        self.cooldown = cooldown
        self.cooldown_cap = cooldown_cap
        self.probe_window = probe_window  # seconds a probe may take before another may start
        self.refresh_interval = refresh_interval  # seconds the local copy is trusted
        self._rows = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def ensure_rows(self):
        """Create a closed breaker row for every provider that has none yet."""
        with self.engine.begin() as conn:
            existing = set(conn.scalars(select(table.c.name)))
        for name in self.names:
            if name in existing:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values(name=name, state=CLOSED, updated_at=utcnow()))
            except IntegrityError:
                pass  # another worker created it first
        self.refresh(force=True)

    def refresh(self, force=False):
        """Reload the state of every breaker if the local copy is older than the interval."""
        if not force and time.monotonic() - self._loaded_at < self.refresh_interval:
            return
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.name.in_(self.names))).mappings()
            fresh = {row["name"]: dict(row) for row in rows}
        with self._lock:
            self._rows = fresh
            self._loaded_at = time.monotonic()

    def snapshot(self):
        """The local copy of every breaker's row, by provider name."""
        with self._lock:
            return {name: dict(row) for name, row in self._rows.items()}

    def mode(self, name, now=None):
        """USE, PROBE or SKIP for the provider ``name``, from the local copy."""
        row = self._rows.get(name)
        if row is None:
            return USE
        return mode_of(row, now or utcnow())

    def next_change(self, now=None):
        """The earliest future moment at which some skipped provider may be tried again."""
        now = now or utcnow()
        moments = []
        for row in self.snapshot().values():
            for key in ("paused_until", "open_until", "probe_until"):
                moment = row.get(key)
                if moment is not None and moment > now:
                    moments.append(moment)
        return min(moments) if moments else None

    def try_probe(self, name):
        """Claim the single probe of an open breaker; True if this caller won it."""
        now = utcnow()
        due = or_(
            (table.c.state == OPEN) & (table.c.open_until <= now),
            (table.c.state == HALF_OPEN) & (table.c.probe_until <= now),
        )
        values = {"state": HALF_OPEN, "probe_until": now + timedelta(seconds=self.probe_window),
                  "updated_at": now}
        with self.engine.begin() as conn:
            won = conn.execute(update(table).where(table.c.name == name, due).values(**values))
        if won.rowcount == 1:
            log.info("probing %s after its cool-down", name)
            self._update_local(name, values)
            return True
        return False

    def record_success(self, name):
        """Close the breaker after a success, writing only if it was not already clean."""
        row = self._rows.get(name)
        if row is not None and row["state"] == CLOSED and not row["consecutive_failures"]:
            return
        values = {"state": CLOSED, "consecutive_failures": 0, "cooldown": 0.0,
                  "open_until": None, "probe_until": None, "updated_at": utcnow()}
        self._write(name, values)
        if row is not None and row["state"] != CLOSED:
            log.warning("%s is back: circuit closed, traffic returns to it", name)

    def record_failure(self, name, reason):
        """Count a transient failure; open the breaker at the threshold or after a failed probe."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(table).where(table.c.name == name).with_for_update()
            ).mappings().first()
            if row is None:
                return
            values = failure_transition(dict(row), now, self.threshold, self.cooldown,
                                        self.cooldown_cap)
            values["last_error"] = reason[:500]
            conn.execute(update(table).where(table.c.name == name).values(**values))
        if values.get("state") == OPEN and row["state"] != OPEN:
            log.error("%s failing (%s): circuit open for %.0fs after %d consecutive failures",
                      name, reason, values["cooldown"], values["consecutive_failures"])
        self._update_local(name, values)

    def pause(self, name, seconds, reason):
        """Skip ``name`` until ``seconds`` from now (a 429), without counting an outage."""
        until = utcnow() + timedelta(seconds=seconds)
        later = or_(table.c.paused_until.is_(None), table.c.paused_until < until)
        values = {"paused_until": until, "last_error": reason[:500], "updated_at": utcnow()}
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.name == name, later).values(**values))
        log.warning("%s rate-limits us: paused for %.0fs", name, seconds)
        self._update_local(name, {"paused_until": until})

    def _write(self, name, values):
        """Write ``values`` to the breaker row and the local copy."""
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.name == name).values(**values))
        self._update_local(name, values)

    def _update_local(self, name, values):
        """Apply a change we made to the local copy, so this worker sees it before a refresh."""
        with self._lock:
            if name in self._rows:
                self._rows[name].update(values)


def mode_of(row, now):
    """What a worker may do with a provider whose breaker row is ``row``, at ``now``."""
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
    values.update(state=OPEN, cooldown=next_cooldown, probe_until=None,
                  open_until=now + timedelta(seconds=next_cooldown))
    return values


def safely(call, *args):
    """Run a breaker update, logging a database error instead of failing the send.

    The breaker is advice: a send that succeeded must still be recorded as sent even if the
    breaker's row could not be written.
    """
    try:
        return call(*args)
    except SQLAlchemyError as err:
        log.warning("could not update provider health: %s", err.__class__.__name__)
        return None
