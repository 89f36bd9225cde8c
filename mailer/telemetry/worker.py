"""A worker's Prometheus metrics, served on ``WORKER_METRICS_PORT`` (off while it is 0).

Counted as the worker goes (plain in-process counters: a worker is one process):

- ``mail_worker_sends_total{provider, outcome}``: every provider call, by what came of it
  (``sent``, ``unavailable``, ``rejected``, ... as in the attempt log);
- ``mail_worker_provider_latency_seconds{provider}``: a histogram of those calls' durations;
- ``mail_worker_mails_total{status}``: the mails this worker finished, by the status they got
  (``sent``, ``failed``, ``queued`` again for a retry, ``suppressed``);
- ``mail_worker_claims_total`` and ``mail_worker_claimed_mails_total``: claim statements that
  took mail, and the mails they took.

Read at scrape time (``WorkerStateCollector``), from what the worker already holds:
``mail_worker_in_flight`` (sends under way), ``mail_provider_breaker_state{provider, state}``
(its copy of the shared breakers, by ``circuit.provider_health``), ``mail_provider_weight``,
``mail_provider_rate_limit``, ``mail_provider_current_rate`` (one small query of the shared
buckets), ``mail_provider_steered{provider, domain}`` (its copy of the guard's steering: 1 while
steered, 0 once back) and ``mail_worker_webhook_deliveries_total{outcome}`` (client webhooks
posted).

The server listens on ``WORKER_METRICS_ADDRESS`` (loopback by default). With ``METRICS_TOKEN``
set it asks for that bearer token; an address other machines can reach needs the token.
"""

import collections
import json
import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.serving import WSGIRequestHandler, make_server

from mailer.loopback import is_loopback_host
from mailer.principals import matches_any
from mailer.telemetry.families import breaker_family, gauge, plan_families, steered_family
from mailer.worker import circuit, dispatch, ratecap

log = logging.getLogger("mail_service.metrics")

PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def check_settings(config):
    """Refuse (ValueError) to serve metrics beyond loopback without ``METRICS_TOKEN``."""
    if (
        config["WORKER_METRICS_PORT"]
        and not config["METRICS_TOKEN"]
        and not is_loopback_host(config["WORKER_METRICS_ADDRESS"])
    ):
        raise ValueError(
            f"refusing to serve worker metrics on "
            f"{config['WORKER_METRICS_ADDRESS']} without METRICS_TOKEN: set it, or "
            "set WORKER_METRICS_ADDRESS=127.0.0.1"
        )


class WorkerMetrics:
    """One worker's metrics, in a registry of its own."""

    def __init__(self, worker, config):
        self.port = config["WORKER_METRICS_PORT"]
        self.address = config["WORKER_METRICS_ADDRESS"]
        self.token = config["METRICS_TOKEN"]
        self.registry = CollectorRegistry(auto_describe=False)
        self.sends = Counter(
            "mail_worker_sends_total",
            "Provider calls, by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mail_worker_provider_latency_seconds",
            "Duration of provider calls",
            ["provider"],
            buckets=PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self.mails = Counter(
            "mail_worker_mails_total",
            "Mails this worker finished, by the status they got",
            ["status"],
            registry=self.registry,
        )
        self.claims = Counter(
            "mail_worker_claims_total", "Claims that took mail", registry=self.registry
        )
        self.claimed = Counter(
            "mail_worker_claimed_mails_total", "Mails claimed", registry=self.registry
        )
        self.registry.register(WorkerStateCollector(worker))
        self._children = {}  # (metric, label values) -> its labelled child
        self.server = None

    def observe(self, finished):
        """Finished mails, each (the status it got, its provider calls as attempt-log rows):
        the counts go up once per label for the batch, the latencies one by one."""
        statuses, sends = collections.Counter(), collections.Counter()
        for status, attempts in finished:
            statuses[status] += 1
            for row in attempts:
                provider = row["provider"] or "none"
                sends[provider, row["outcome"]] += 1
                if row["duration_ms"] is not None:
                    self._child(self.latency, provider).observe(row["duration_ms"] / 1000)
        for status, count in statuses.items():
            self._child(self.mails, status).inc(count)
        for labels, count in sends.items():
            self._child(self.sends, *labels).inc(count)

    def _child(self, metric, *labels):
        """``metric.labels(*labels)``, looked up once: ``labels`` checks and joins the values
        on every call, which cost more than the count itself (a few calls per mail)."""
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[metric, labels] = metric.labels(*labels)
        return child

    def observe_claim(self, count):
        """A claim that took ``count`` mails (none: not counted)."""
        if count:
            self.claims.inc()
            self.claimed.inc(count)

    def serve(self):
        """Start serving on ``WORKER_METRICS_PORT``, if set; a port in use is logged, not fatal.

        A worker that cannot show its metrics still sends mail.
        """
        if not self.port:
            return
        try:
            self.server = make_server(
                self.address,
                self.port,
                guarded(self.registry, self.token),
                threaded=True,
                request_handler=QuietHandler,
            )
        except OSError as err:
            log.error("cannot serve worker metrics on %s:%s: %s", self.address, self.port, err)
            return
        threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True).start()
        log.info("worker metrics on http://%s:%s/metrics", self.address, self.server.port)

    def stop(self):
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class QuietHandler(WSGIRequestHandler):
    """No log line per scrape."""

    def log_request(self, *args, **kwargs):
        """Scrapes come every few seconds: not worth a line each."""


def guarded(registry, token):
    """The exposition WSGI app, behind ``Authorization: Bearer <token>`` when a token is set."""
    exposition = make_wsgi_app(registry)

    def app(environ, start_response):
        scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if token and not (scheme.lower() == "bearer" and matches_any(value.strip(), (token,))):
            body = json.dumps(
                {
                    "success": False,
                    "message": "A metrics token is required",
                    "errors": [
                        {
                            "field": "Authorization",
                            "message": "Send 'Authorization: Bearer <METRICS_TOKEN>'",
                        }
                    ],
                }
            ).encode()
            start_response(
                "401 UNAUTHORIZED",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", 'Bearer realm="metrics"'),
                ],
            )
            return [body]
        return exposition(environ, start_response)

    return app


class WorkerStateCollector:
    """What a worker holds now, read at scrape time."""

    def __init__(self, worker):
        self.worker = worker

    def collect(self):
        """In-flight sends, breakers, weights, caps and rates, steering, client webhooks."""
        worker = self.worker
        yield gauge("mail_worker_in_flight", "Sends under way", [], [((), len(worker.inflight))])
        yield self._breakers()
        yield from self._plan()
        steering = worker.steering
        yield steered_family(
            {(row["provider"], row["domain"]) for row in steering.rows}, steering.seen
        )
        if worker.sender is not None:
            posted = CounterMetricFamily(
                "mail_worker_webhook_deliveries",
                "Client webhooks posted, by outcome",
                labels=["outcome"],
            )
            for outcome, count in sorted(dict(worker.sender.outcomes).items()):  # a copy
                posted.add_metric([outcome], count)
            yield posted

    def _breakers(self):
        """Each provider's breaker state, from this worker's copy of the shared rows."""
        breakers = self.worker.breakers
        rows, now = breakers.snapshot(), breakers.clock.now()
        return breaker_family(
            {
                name: circuit.provider_health(rows[name], now)["state"]
                if name in rows
                else circuit.CLOSED
                for name in breakers.names
            }
        )

    def _plan(self):
        """Each provider's weight, cap and current rate (``dispatch.plan``)."""
        dispatcher = self.worker.dispatcher
        rates = {}
        if dispatcher.caps:
            try:
                with dispatcher.engine.connect() as conn:
                    rates = ratecap.current_rates(conn)
            except SQLAlchemyError:
                rates = {}  # the rates are left out of this scrape
        config = {"PROVIDER_WEIGHTS": dispatcher.weights, "PROVIDER_RATE_LIMITS": dispatcher.caps}
        names = [provider.name for provider in dispatcher.providers]
        return plan_families(dispatch.plan(config, names, rates))
