"""The API's Prometheus metrics at ``GET /metrics``: its requests, and the queue from the database.

What the API counts itself, per request (its cost: docs/monitoring.md):

- ``mail_api_requests_total{endpoint, method, code}``: every answer, by URL rule (``/mail``,
  ``/mail/<mail_id:mail_id>``, ...; ``unmatched`` for an unknown URL), so the label values stay
  few whatever clients send;
- ``mail_api_request_duration_seconds{endpoint, method}``: a histogram of the time in the app;
- ``mail_api_mails_accepted_total``: mails stored by ``POST /mail`` and ``POST /mail/batch``
  (an idempotent replay stores nothing and is not counted);
- ``mail_api_mails_rejected_total{reason}``: submissions refused, by the reason their status
  code stands for (``REJECTION_REASONS``).

Under gunicorn each worker process counts on its own, in prometheus-client's multiprocess mode:
``gunicorn.conf.py`` gives them a fresh ``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them all.

What is read from the database at each scrape (``database_metrics``), a few small indexed
queries and no COUNT over the mail table: mail by status (the ledger of
``counts.status_counts``), the age of the oldest due mail, each provider's breaker state,
weight, cap and current rate, meltdown, the workers alive by their heartbeats, and the pairs
the guard steers away from (``mail_provider_steered{provider, domain}``: 1 while steered, 0
once back, for the pairs this process saw steered).

``/metrics`` is protected like the API: with ``METRICS_TOKEN`` set it takes that bearer token
(or an API key), with ``API_KEYS`` set an API key, and with neither it serves local clients only
(protected mode, ``auth.require_api_key``).
"""

import os
import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from sqlalchemy.exc import SQLAlchemyError

from mailer.api.auth import count_failure, presented_api_key, require_api_key
from mailer.api.errors import ApiError
from mailer.api.idempotency import REPLAYED
from mailer.principals import matches_any
from mailer.queue import counts, heartbeats, steering
from mailer.telemetry.families import breaker_family, gauge, plan_families, steered_family
from mailer.worker import circuit, dispatch, ratecap
from models import db

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBMIT_PATHS = ("/mail", "/mail/batch")
# What a refused submission's status code means, as the label of mail_api_mails_rejected_total.
REJECTION_REASONS = {
    400: "invalid",
    401: "unauthorized",
    413: "too_large",
    415: "unsupported_media_type",
    422: "idempotency_conflict",
    429: "throttled",
    500: "internal_error",
    503: "database_unavailable",
}
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The API's own metrics. In multiprocess mode their values live in the directory's files and
# this registry is not read (``scrape_registry``).
REGISTRY = CollectorRegistry(auto_describe=False)
REQUESTS = Counter(
    "mail_api_requests_total",
    "HTTP requests answered, by URL rule, method and status code",
    ["endpoint", "method", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "mail_api_request_duration_seconds",
    "Time to answer a request in the app, by URL rule and method",
    ["endpoint", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ACCEPTED = Counter(
    "mail_api_mails_accepted_total",
    "Mails stored by POST /mail and POST /mail/batch",
    registry=REGISTRY,
)
SUBMITTED = Counter(
    "mail_submitted_total",
    "Mails stored by POST /mail and POST /mail/batch, by tenant (tenants are made by "
    "operators, with their keys: a bounded set)",
    ["tenant"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "mail_api_mails_rejected_total",
    "Mail submissions refused, by reason",
    ["reason"],
    registry=REGISTRY,
)

blueprint = Blueprint("metrics", __name__)
_steered_seen = set()  # (provider, domain) this process saw steered: shown as 0 once back
_children = {}  # (endpoint, method, code) -> (request counter, latency histogram): no lookups
_submitted = {}  # tenant -> its mail_submitted_total child


def start_timer():
    """Before each request: note when it started."""
    g.metrics_started = time.perf_counter()


def count_response(response):
    """After each request: count it by URL rule, method and code, and time it."""
    started = g.pop("metrics_started", None)
    rule = request.url_rule
    key = (rule.rule if rule is not None else "unmatched", request.method, response.status_code)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (REQUESTS.labels(*key), LATENCY.labels(*key[:2]))
    children[0].inc()
    if started is not None:
        children[1].observe(time.perf_counter() - started)
    if request.method == "POST" and request.path in SUBMIT_PATHS:
        count_submission(response)
    return response


def count_submission(response):
    """Count the mails a submission stored, or why it was refused."""
    code = response.status_code
    if code == 202 and not is_replay(response):
        if request.path == "/mail":
            stored = 1
        else:  # a batch's answer says how many it stored
            stored = (response.get_json(silent=True) or {}).get("count", 0)
        ACCEPTED.inc(stored)
        principal = g.get("principal")
        if principal is not None:
            submitted(principal.tenant).inc(stored)
    elif code >= 400:
        REJECTED.labels(REJECTION_REASONS.get(code, f"http_{code}")).inc()


def is_replay(response):
    """Whether ``response`` replays an earlier answer (``Idempotent-Replayed``). Read from the
    header list: werkzeug's ``in`` raises and catches an exception for every header a
    response lacks, and nearly every answer lacks this one."""
    return any(name == REPLAYED for name, _ in response.headers)


def submitted(tenant):
    """``mail_submitted_total``'s child for ``tenant``, looked up once per process."""
    child = _submitted.get(tenant)
    if child is None:
        child = _submitted[tenant] = SUBMITTED.labels(tenant)
    return child


def require_metrics_access():
    """``METRICS_TOKEN`` (or an API key) when set; else the API's own rule (``auth``)."""
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        require_api_key()
        return
    presented = presented_api_key()
    if presented is not None and (
        matches_any(presented, (token,)) or matches_any(presented, current_app.config["API_KEYS"])
    ):
        return
    if presented is not None:
        count_failure()
    raise ApiError(
        401,
        "A metrics token is required",
        [{"field": "Authorization", "message": "Send 'Authorization: Bearer <METRICS_TOKEN>'"}],
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


@blueprint.get("/metrics")
def metrics():
    """The Prometheus text format: the API's metrics, summed over processes, and the queue's."""
    require_metrics_access()
    registry = scrape_registry()
    registry.register(DatabaseCollector(current_app.config))
    # Prometheus' text format, or OpenMetrics when the scraper asks for it.
    encode, content_type = choose_encoder(request.headers.get("Accept"))
    return Response(encode(registry), content_type=content_type)


def scrape_registry():
    """A registry for one scrape: every process's files in multiprocess mode, else ours."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    return registry


class _Forward:
    """A collector that yields another registry's metrics."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        """The other registry's metrics."""
        return self.registry.collect()


class DatabaseCollector:
    """The queue and the providers as the database says at scrape time (one connection)."""

    def __init__(self, config):
        self.config = config

    def collect(self):
        """``mail_database_up``, and the rest only when the database answered.

        The ledger of status counts is folded first, so that it stays short even while no
        worker runs to fold it (the API alone appends a row per INSERT).
        """
        try:
            with db.engine.begin() as conn:
                counts.fold_status_counts(conn)
                families = list(database_metrics(conn, self.config))
        except SQLAlchemyError:
            families = []
        yield gauge(
            "mail_database_up",
            "1 if the database answered this scrape's queries",
            [],
            [((), 1 if families else 0)],
        )
        yield from families


def database_metrics(conn, config):
    """The metric families read from the database on ``conn``."""
    names = list(config["PROVIDERS"])
    by_status = counts.status_counts(conn)
    health = circuit.health(conn, names)
    plan = dispatch.plan(config, names, ratecap.current_rates(conn))
    yield gauge(
        "mail_queue_mails",
        "Mails in each status (a ledger kept by the database)",
        ["status"],
        [((status,), count) for status, count in by_status.items()],
    )
    yield gauge(
        "mail_queue_oldest_due_age_seconds",
        "Seconds the oldest due mail has waited",
        [],
        [((), counts.oldest_due_age(conn))],
    )
    yield gauge(
        "mail_workers_alive",
        "Workers whose heartbeat is recent",
        [],
        [((), len(heartbeats.alive(conn)))],
    )
    yield gauge(
        "mail_meltdown",
        "1 while no provider can take mail",
        [],
        [((), 1 if health["status"] == "meltdown" else 0)],
    )
    yield from provider_families(health["providers"], plan)
    steered = {(row["provider"], row["domain"]) for row in steering.steered(conn)}
    _steered_seen.update(steered)
    yield steered_family(steered, _steered_seen)


def provider_families(providers, plan):
    """Breaker state by ``circuit.provider_health`` (closed for a provider without a row yet),
    weight, cap and current rate."""
    states = {row["name"]: row["state"] for row in providers}
    yield breaker_family({name: states.get(name, circuit.CLOSED) for name in plan})
    yield from plan_families(plan)


def init_app(app):
    """Count every request, and serve ``/metrics``."""
    app.before_request(start_timer)
    app.after_request(count_response)
    app.register_blueprint(blueprint)
