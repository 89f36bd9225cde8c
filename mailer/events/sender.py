"""Client webhooks out: a thread of the worker claims the outbox's due rows and
``WEBHOOK_CONCURRENCY`` post threads post them to their endpoints, several at once.

Each row goes to one endpoint: the settings' ``WEBHOOK_URL``, signed with ``WEBHOOK_SECRET``,
or a tenant's endpoint, signed with that endpoint's own secret; as JSON, each signed on its own
by the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). A 2xx delivers it; anything else (an error status, a timeout, a refused
connection) is retried with exponential backoff (``RETRY_BASE`` doubling up to ``RETRY_CAP``,
with jitter) until the row is older than ``WEBHOOK_MAX_AGE``, then given up. Every attempt is
recorded (``webhook_attempt``).

Read ``WebhookSender.run`` top to bottom: the sender thread records what the post threads
finished and claims what they have room for, in one transaction (``step``), puts the claimed
rows on ``todo`` and waits until a post finishes (``ready``); each post thread takes a row from
``todo``, posts it and puts what came of it on ``done``. It keeps up to two rows per post
thread claimed, so a post thread never waits for a claim. The claim takes only the oldest
pending webhook of each mail and endpoint (``webhooks.claim``), and the next one only once that
one is recorded: one mail's webhooks to one endpoint are never in flight together and arrive in
order, whichever worker posts them.

Connections are kept alive: each post thread has its own ``requests.Session`` for the settings'
receiver, and the tenants' endpoints share pools of kept-alive connections, one per checked
address (``destinations.PinnedPoster``). TLS certificates are always verified and redirects
never followed.

A tenant's endpoint URL is checked again before each post (``destinations.target``: https,
public addresses only, unless ``WEBHOOK_ALLOW_HTTP`` or ``WEBHOOK_ALLOW_PRIVATE``), and the
post connects to the address that was checked; a refused one is a failed attempt that says
why. Once one of a tenant's endpoints fails, its rows claimed meanwhile wait for the same
backoff instead of each waiting for the same timeout (``Holds``).

The settings' receiver, when it keeps failing, is paused the way a failing provider is: it has
a circuit breaker (``circuit.Breakers``, the row ``webhook`` of ``provider_state``, shared by
every worker) that opens after ``CIRCUIT_FAILURE_THRESHOLD`` failures in a row; while it is
open nothing is posted to it, and after the cool-down one probe decides. These threads have
their own HTTP connections and their own database connections, and the send loop never waits
for them: a receiver that is down or slow never delays a mail.
"""

import json
import logging
import queue
import threading
import time
from collections import Counter

import requests
import urllib3
from sqlalchemy.exc import SQLAlchemyError

from mailer.database import describe
from mailer.events import destinations
from mailer.events.signatures import BadKey, webhook_headers, webhook_key
from mailer.queue import webhooks
from mailer.telemetry.logs import origin
from mailer.worker.circuit import PROBE, SKIP, USE, Breakers, safely
from mailer.worker.retry import RetryPolicy
from mailer.worker.sessions import new_session

log = logging.getLogger("mail_service.webhooks")

BREAKER = "webhook"  # its row in provider_state
AHEAD = 2  # rows claimed per post thread: one being posted, one waiting for it
MAX_ERROR = 300  # characters of a receiver's answer kept with a failed attempt
USER_AGENT = "mail-service-webhooks/1"


class WebhookSender(threading.Thread):
    """Posts due client webhooks until stopped; a daemon thread of the worker, with
    ``WEBHOOK_CONCURRENCY`` post threads of its own."""

    def __init__(self, engine, config):
        super().__init__(name="webhooks", daemon=True)
        self.engine = engine
        self.url = config["WEBHOOK_URL"]  # the settings' endpoint; empty: none
        self.key = webhook_key(config["WEBHOOK_SECRET"]) if self.url else None
        self.allow_http = config["WEBHOOK_ALLOW_HTTP"]
        self.allow_private = config["WEBHOOK_ALLOW_PRIVATE"]
        self.timeout = config["WEBHOOK_TIMEOUT"]
        self.max_age = config["WEBHOOK_MAX_AGE"]
        self.poll_interval = config["POLL_INTERVAL"]
        self.concurrency = max(1, config["WEBHOOK_CONCURRENCY"])
        self.ahead = AHEAD * self.concurrency  # rows claimed and not recorded, at most
        self.claim_at = max(1, self.concurrency // 4)  # free places worth a claim
        # A claimed row waits for the posts ahead of it, then is posted; each post may take
        # the timeout twice (to connect, then for the answer).
        self.lease = (AHEAD + 2) * 2 * self.timeout + 30
        self.policy = RetryPolicy.from_config(config)
        self.breakers = (
            Breakers(
                engine,
                [BREAKER],
                threshold=config["CIRCUIT_FAILURE_THRESHOLD"],
                cooldown=config["CIRCUIT_COOLDOWN"],
                cooldown_cap=config["CIRCUIT_COOLDOWN_CAP"],
                probe_window=2 * self.timeout + 5,
            )
            if self.url
            else None
        )
        self.pinned = destinations.PinnedPoster(self.timeout, connections=self.concurrency)
        self.holds = Holds()
        self.local = threading.local()  # a post thread's session for WEBHOOK_URL
        self.todo = queue.SimpleQueue()  # claimed rows for the post threads; None: stop
        self.done = queue.SimpleQueue()  # (row, result or None, delay if not posted)
        self.ready = threading.Event()  # set when a post thread put something on done
        self.claimed = 0  # rows claimed and not yet recorded or handed back
        self.results, self.unposted = [], {}  # finished, waiting for the next transaction
        self.stopping = threading.Event()
        self.outcomes = Counter()  # posts by outcome (delivered, failed), for the metrics

    def run(self):
        """Record what was posted and claim what is due; when nothing is, wait a poll
        interval; retry the database. On stop, hand back what was not posted."""
        threads = self._start_post_threads()
        failures = 0
        while not self.stopping.is_set():
            try:
                busy = self.step()
                failures = 0
            except SQLAlchemyError as err:
                failures += 1
                busy = False
                log.error("webhooks: database unavailable (%s)", describe(err))
                self.stopping.wait(min(10.0, 0.2 * 2**failures))
            if not busy:
                self.stopping.wait(self.poll_interval)
            elif self.claimed:
                self.ready.wait(self.poll_interval)
        self._stop_post_threads(threads)
        self._last_step()
        self.pinned.close()

    def stop(self):
        """Stop after the posts in flight (each bounded by WEBHOOK_TIMEOUT)."""
        self.stopping.set()
        self.ready.set()
        if self.is_alive():
            self.join(timeout=2 * self.timeout + 5)

    def step(self):
        """Record the posts that finished and claim what the post threads have room for, in
        one transaction; hand the claimed rows to the post threads. Whether any row is in
        hand (claimed and not recorded)."""
        self.ready.clear()  # before collecting: a post that finishes after wakes the next wait
        self._collect()
        room = self.ahead - self.claimed + len(self.results) + len(self.unposted)
        mode = self._settings_mode() if room >= self.claim_at else None
        if mode is None and not self.results and not self.unposted:
            return bool(self.claimed)
        with self.engine.begin() as conn:
            webhooks.by_index(conn)
            webhooks.record(conn, self.results, self.max_age)
            webhooks.release(conn, self.unposted)
            rows = [] if mode is None else self._claim(conn, mode, room)
        self._recorded()
        self.claimed += len(rows)
        for row in rows:
            self.todo.put(row)
        return bool(self.claimed)

    def _claim(self, conn, mode, limit):
        """Claim up to ``limit`` due webhooks of the endpoints that take them now (``mode``:
        the settings' receiver's)."""
        if mode == PROBE:  # one webhook to the settings' receiver decides, the rest wait
            probes = webhooks.claim(conn, 1, self.lease, settings=True, endpoints=False)
            for row in probes:
                row["probe"] = True  # posted while the breaker is half open: it decides
            return probes + webhooks.claim(conn, limit - len(probes), self.lease, settings=False)
        return webhooks.claim(conn, limit, self.lease, settings=mode == USE)

    def _collect(self):
        """Take what the post threads finished off ``done``, to be recorded."""
        while True:
            try:
                row, result, delay = self.done.get_nowait()
            except queue.Empty:
                return
            if result is None:
                self.unposted[row["id"]] = delay
            else:
                self.results.append(result)

    def _recorded(self):
        """Forget the results and hand-backs the transaction just committed."""
        self.outcomes.update("delivered" if result["ok"] else "failed" for result in self.results)
        self.claimed -= len(self.results) + len(self.unposted)
        self.results, self.unposted = [], {}

    def _last_step(self):
        """Once the post threads ended: record their last posts and hand back what they did
        not post, so another worker takes it at once rather than after the lease."""
        self._collect()
        if not self.results and not self.unposted:
            return
        try:
            with self.engine.begin() as conn:
                webhooks.by_index(conn)
                webhooks.record(conn, self.results, self.max_age)
                webhooks.release(conn, self.unposted)
            self._recorded()
        except SQLAlchemyError as err:  # their leases hand them back
            log.error("webhooks: cannot record the last posts (%s)", describe(err))

    def _settings_mode(self):
        """Whether the settings' receiver takes webhooks now: ``USE``, ``PROBE`` (one, this
        worker's probe), or ``SKIP`` (paused, or no ``WEBHOOK_URL``)."""
        if self.breakers is None:
            return SKIP
        if self.breakers.snapshot():
            self.breakers.refresh()
        else:
            self.breakers.ensure_rows()  # the first step (or the database was down for it)
        mode = self.breakers.mode(BREAKER)
        if mode == PROBE and not safely(self.breakers.try_probe, BREAKER):
            return SKIP
        return mode

    # The post threads -------------------------------------------------------------------------

    def _start_post_threads(self):
        """Start the ``WEBHOOK_CONCURRENCY`` post threads; they wait for rows on ``todo``."""
        threads = [
            threading.Thread(target=self._post_loop, name=f"webhook_{number}", daemon=True)
            for number in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _stop_post_threads(self, threads):
        """Let each post thread hand back what ``todo`` still holds, then end; wait for them
        (each post in flight is bounded by the timeout)."""
        for _ in threads:
            self.todo.put(None)
        for thread in threads:
            thread.join(timeout=2 * self.timeout + 1)

    def _post_loop(self):
        """A post thread: post each row taken from ``todo`` and put what came of it on
        ``done``, until a None says stop."""
        try:
            while (row := self.todo.get()) is not None:
                self.done.put(self._attempt(row))
                self.ready.set()
        finally:
            session = getattr(self.local, "session", None)
            if session is not None:
                session.close()

    def _attempt(self, row):
        """Post ``row`` unless its endpoint is held back, paused or we are stopping:
        ``(row, result, None)``, or ``(row, None, seconds until it is due again)``."""
        try:
            delay = self._held_back(row)
            if delay is not None:
                return row, None, delay
            result = self.post(row)
            if not result["ok"] and row["endpoint_id"] is not None:
                self.holds.hold(row["endpoint_id"], result["retry_in"])
            return row, result, None
        except Exception:  # a bug of ours: the row waits a backoff, the thread goes on
            log.exception("webhook %s: cannot post it", row["message_id"])
            return row, None, self.policy.delay(row["attempts"] + 1)

    def _held_back(self, row):
        """Seconds until ``row`` may be posted if it must not be now (0: as soon as the
        breaker lets it), else None."""
        if self.stopping.is_set():
            return 0.0
        if row["endpoint_id"] is None:
            return 0.0 if self._paused() and not row.get("probe") else None
        return self.holds.remaining(row["endpoint_id"])

    def _paused(self):
        """Whether the settings' receiver is paused: its breaker opened after a failure, or
        is half open while a probe decides."""
        return self.breakers.mode(BREAKER) == SKIP

    def post(self, row):
        """Post one webhook to its endpoint; the result ``webhooks.record`` keeps (never
        raises)."""
        endpoint = row["endpoint_id"]
        url = self.url if endpoint is None else row["url"]
        started = time.monotonic()
        try:
            key = self.key if endpoint is None else webhook_key(row["secret"])
            body = json.dumps(row["payload"], separators=(",", ":")).encode()
            headers = {
                **webhook_headers(key, row["message_id"], int(time.time()), body),
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
            if endpoint is None:
                status_code, error = self._post_settings(body, headers)
            else:
                status_code, error = self._post_endpoint(url, body, headers)
        except BadKey as err:
            status_code, error = None, f"the endpoint's secret is unusable: {err}"
        ok = error is None
        self._note(row, url, ok, error)
        return {
            "id": row["id"],
            "ok": ok,
            "status_code": status_code,
            "error": error,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "retry_in": None if ok else self.policy.delay(row["attempts"] + 1),
        }

    def _session(self):
        """This post thread's session for ``WEBHOOK_URL`` (its connections kept alive)."""
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = new_session(self.url)
        return session

    def _post_settings(self, body, headers):
        """Post to ``WEBHOOK_URL``: ``(status code, error or None)``."""
        try:
            response = self._session().post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as err:
            return None, f"{err.__class__.__name__}: {err}"[:MAX_ERROR]
        return response.status_code, _error_of(response.status_code, response.text)

    def _post_endpoint(self, url, body, headers):
        """Post to a tenant's endpoint, checked now and pinned to the checked address:
        ``(status code, error or None)``."""
        try:
            where = destinations.target(url, self.allow_http, self.allow_private)
        except destinations.Refused as err:
            return None, f"refused: {err}"[:MAX_ERROR]
        try:
            status_code, text = self.pinned.post(where, body, headers)
        except urllib3.exceptions.HTTPError as err:
            return None, f"{err.__class__.__name__}: {err}"[:MAX_ERROR]
        return status_code, _error_of(status_code, text)

    def _note(self, row, url, ok, error):
        """Tell the settings' breaker how its post went; log a failure (the URL's origin
        only: a path may hold the client's token)."""
        if row["endpoint_id"] is None:
            if ok:
                safely(self.breakers.record_success, BREAKER)
            else:
                safely(self.breakers.record_failure, BREAKER, error)
        if not ok:
            log.info(
                "webhook %s to %s failed: %s",
                row["message_id"],
                origin(url),
                error,
                extra={"mail_id": row["payload"].get("data", {}).get("mail_id")},
            )


class Holds:
    """Tenants' endpoints that just failed, each held back until its backoff ends: their rows
    claimed meanwhile are handed back rather than each waiting for the same timeout."""

    def __init__(self):
        self._until = {}  # endpoint id -> time.monotonic() its hold ends
        self._lock = threading.Lock()

    def hold(self, endpoint, seconds):
        """Hold ``endpoint`` back for ``seconds`` from now (longer if it already was)."""
        until = time.monotonic() + seconds
        with self._lock:
            self._until[endpoint] = max(until, self._until.get(endpoint, until))

    def remaining(self, endpoint):
        """Seconds ``endpoint`` is still held back, or None if it is not."""
        with self._lock:
            until = self._until.get(endpoint)
            if until is None:
                return None
            left = until - time.monotonic()
            if left <= 0:
                del self._until[endpoint]
                return None
            return left


def _error_of(status_code, text):
    """The error of an answer: None for a 2xx, else its status and the start of its text."""
    if 200 <= status_code < 300:
        return None
    return f"HTTP {status_code}: {text[:MAX_ERROR]}".strip()
