"""Client webhooks out: a thread of the worker posts the outbox's due rows to their endpoints.

Each row goes to one endpoint: the settings' ``WEBHOOK_URL``, signed with ``WEBHOOK_SECRET``,
or a tenant's endpoint, signed with that endpoint's own secret; as JSON, signed by the Standard
Webhooks specification (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). A 2xx
delivers it; anything else (an error status, a timeout, a refused connection) is retried with
exponential backoff (``RETRY_BASE`` doubling up to ``RETRY_CAP``, with jitter) until the row is
older than ``WEBHOOK_MAX_AGE``, then given up. Every attempt is recorded (``webhook_attempt``).

A tenant's endpoint URL is checked again before each post (``destinations.target``: https,
public addresses only, unless ``WEBHOOK_ALLOW_HTTP`` or ``WEBHOOK_ALLOW_PRIVATE``), and the
post connects to the address that was checked; a refused one is a failed attempt that says
why. Once one of a tenant's endpoints fails in a batch, its other rows of that batch wait for
the same backoff instead of each waiting for the same timeout.

The settings' receiver, when it keeps failing, is paused the way a failing provider is: it has
a circuit breaker (``circuit.Breakers``, the row ``webhook`` of ``provider_state``, shared by
every worker) that opens after ``CIRCUIT_FAILURE_THRESHOLD`` failures in a row; while it is
open nothing is posted to it, and after the cool-down one probe decides. This thread has its
own HTTP connections and its own database connections, and the send loop never waits for it:
a receiver that is down or slow never delays a mail.
"""

import json
import logging
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
        self.url = config["WEBHOOK_URL"]  # the settings' endpoint; empty: none
        self.key = webhook_key(config["WEBHOOK_SECRET"]) if self.url else None
        self.allow_http = config["WEBHOOK_ALLOW_HTTP"]
        self.allow_private = config["WEBHOOK_ALLOW_PRIVATE"]
        self.timeout = config["WEBHOOK_TIMEOUT"]
        self.max_age = config["WEBHOOK_MAX_AGE"]
        self.poll_interval = config["POLL_INTERVAL"]
        self.lease = BATCH * 2 * self.timeout + 30  # every post of a batch may time out
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
        self.session = requests.Session()
        self.pinned = destinations.PinnedPoster(self.timeout)
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
        self.pinned.close()

    def stop(self):
        """Stop after the post in flight (bounded by WEBHOOK_TIMEOUT)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=2 * self.timeout + 5)

    def step(self):
        """Claim due webhooks their endpoints may take now, post them, record; how many
        posted."""
        mode = self._settings_mode()
        with self.engine.begin() as conn:
            if mode == PROBE:  # one webhook to the settings' receiver decides, the rest wait
                rows = webhooks.claim(conn, 1, self.lease, settings=True, endpoints=False)
                rows += webhooks.claim(conn, BATCH, self.lease, settings=False)
            else:
                rows = webhooks.claim(conn, BATCH, self.lease, settings=mode == USE)
        results, unposted = self._post_all(rows)
        with self.engine.begin() as conn:
            webhooks.record(conn, results, self.max_age)
            webhooks.release(conn, unposted)
        self.outcomes.update("delivered" if result["ok"] else "failed" for result in results)
        return len(results)

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

    def _post_all(self, rows):
        """Post ``rows`` in turn: ``(results, {id: delay} of those not posted)``. Once the
        settings' receiver is paused (its breaker opened on a failure), or an endpoint failed,
        their other rows wait."""
        results, unposted, failed = [], {}, {}  # failed: endpoint id (None: settings) -> delay
        for row in rows:
            endpoint = row["endpoint_id"]
            if self.stopping.is_set():
                unposted[row["id"]] = 0.0
            elif endpoint in failed:
                unposted[row["id"]] = failed[endpoint]
            else:
                result = self.post(row)
                results.append(result)
                if result["ok"]:
                    continue
                if endpoint is not None:
                    failed[endpoint] = result["retry_in"]
                elif self._paused():
                    failed[None] = 0.0  # due again at once: the breaker holds them back
        return results, unposted

    def _paused(self):
        """Whether the settings' receiver's breaker is open (it just opened, after a failure)."""
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

    def _post_settings(self, body, headers):
        """Post to ``WEBHOOK_URL``: ``(status code, error or None)``."""
        try:
            response = self.session.post(
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


def _error_of(status_code, text):
    """The error of an answer: None for a 2xx, else its status and the start of its text."""
    if 200 <= status_code < 300:
        return None
    return f"HTTP {status_code}: {text[:MAX_ERROR]}".strip()
