"""Client webhooks out: a thread of the worker posts the outbox's due rows to ``WEBHOOK_URL``.

Each row is posted as JSON, signed by the Standard Webhooks specification (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) with ``WEBHOOK_SECRET``. A 2xx delivers it;
anything else (an error status, a timeout, a refused connection) is retried with exponential
backoff (``RETRY_BASE`` doubling up to ``RETRY_CAP``, with jitter) until the row is older than
``WEBHOOK_MAX_AGE``, then given up. Every attempt is recorded (``webhook_attempt``).

A receiver that keeps failing is paused the way a failing provider is: it has a circuit breaker
(``circuit.Breakers``, the row ``webhook`` of ``provider_state``, shared by every worker) that
opens after ``CIRCUIT_FAILURE_THRESHOLD`` failures in a row; while it is open nothing is posted,
and after the cool-down one probe decides. This thread has its own HTTP session and its own
database connections, and the send loop never waits for it: a receiver that is down or slow
never delays a mail.
"""

import json
import logging
import threading
import time
from collections import Counter

import requests
from sqlalchemy.exc import SQLAlchemyError

from mailer.database import describe
from mailer.events.signatures import webhook_headers, webhook_key
from mailer.queue import webhooks
from mailer.telemetry.logs import origin
from mailer.worker.circuit import PROBE, SKIP, Breakers, safely
from mailer.worker.retry import RetryPolicy

log = logging.getLogger("mail_service.webhooks")

BREAKER = "webhook"  # its row in provider_state
BATCH = 50  # webhooks claimed at a time
MAX_ERROR = 300  # characters of a receiver's answer kept with a failed attempt
USER_AGENT = "mail-service-webhooks/1"


class WebhookSender(threading.Thread):
    """Posts due client webhooks until stopped; a daemon thread of the worker."""

    def __init__(self, engine, config):
        super().__init__(name="webhooks", daemon=True)
        self.engine = engine
        self.url = config["WEBHOOK_URL"]
        self.key = webhook_key(config["WEBHOOK_SECRET"])
        self.timeout = config["WEBHOOK_TIMEOUT"]
        self.max_age = config["WEBHOOK_MAX_AGE"]
        self.poll_interval = config["POLL_INTERVAL"]
        self.lease = BATCH * 2 * self.timeout + 30  # every post of a batch may time out
        self.policy = RetryPolicy.from_config(config)
        self.breakers = Breakers(
            engine,
            [BREAKER],
            threshold=config["CIRCUIT_FAILURE_THRESHOLD"],
            cooldown=config["CIRCUIT_COOLDOWN"],
            cooldown_cap=config["CIRCUIT_COOLDOWN_CAP"],
            probe_window=2 * self.timeout + 5,
        )
        self.session = requests.Session()
        self.stopping = threading.Event()
        self.outcomes = Counter()  # posts by outcome (delivered, failed), for the metrics

    def run(self):
        """Post what is due; when nothing is, wait a poll interval; retry the database."""
        failures = 0
        while not self.stopping.is_set():
            try:
                posted = self.step()
                failures = 0
            except SQLAlchemyError as err:
                failures += 1
                posted = 0
                log.error("webhooks: database unavailable (%s)", describe(err))
                self.stopping.wait(min(10.0, 0.2 * 2**failures))
            if not posted:
                self.stopping.wait(self.poll_interval)
        self.session.close()

    def stop(self):
        """Stop after the post in flight (bounded by WEBHOOK_TIMEOUT)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=2 * self.timeout + 5)

    def step(self):
        """Claim due webhooks the receiver may take now, post them, record; how many posted."""
        if self.breakers.snapshot():
            self.breakers.refresh()
        else:
            self.breakers.ensure_rows()  # the first step (or the database was down for it)
        mode = self.breakers.mode(BREAKER)
        if mode == SKIP or (mode == PROBE and not safely(self.breakers.try_probe, BREAKER)):
            return 0
        with self.engine.begin() as conn:
            rows = webhooks.claim(conn, 1 if mode == PROBE else BATCH, self.lease)
        results = []
        for row in rows:
            if self.stopping.is_set():
                break
            results.append(self.post(row))
            if not results[-1]["ok"] and self._paused():
                break  # the receiver failed too often: its breaker opened, leave the rest
        unposted = [row["id"] for row in rows[len(results) :]]
        with self.engine.begin() as conn:
            webhooks.record(conn, results, self.max_age)
            webhooks.release(conn, unposted)
        self.outcomes.update("delivered" if result["ok"] else "failed" for result in results)
        return len(results)

    def _paused(self):
        """Whether the receiver's breaker is open (it just opened, after a failure)."""
        return self.breakers.mode(BREAKER) == SKIP

    def post(self, row):
        """Post one webhook; the result ``webhooks.record`` keeps (never raises)."""
        body = json.dumps(row["payload"], separators=(",", ":")).encode()
        headers = {
            **webhook_headers(self.key, row["message_id"], int(time.time()), body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        started = time.monotonic()
        status_code, error = None, None
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:MAX_ERROR]}".strip()
        except requests.RequestException as err:
            error = f"{err.__class__.__name__}: {err}"[:MAX_ERROR]
        ok = error is None
        if ok:
            safely(self.breakers.record_success, BREAKER)
        else:
            safely(self.breakers.record_failure, BREAKER, error)
            log.info(
                "webhook %s to %s failed: %s",
                row["message_id"],
                origin(self.url),
                error,
                extra={"mail_id": row["payload"].get("data", {}).get("mail_id")},
            )
        return {
            "id": row["id"],
            "ok": ok,
            "status_code": status_code,
            "error": error,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "retry_in": None if ok else self.policy.delay(row["attempts"] + 1),
        }
