"""Metric families that both the API's ``/metrics`` and a worker's show, defined once.

The API reads them from the database at scrape time, a worker from what it holds; either way
they carry the same names, help and labels, so one Grafana panel reads both.
"""

from prometheus_client import disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from mailer.worker import circuit

BREAKER_STATES = (*circuit.CIRCUIT_STATES, circuit.PAUSED)

disable_created_metrics()  # no *_created series: a multiprocess scrape has none either


def gauge(name, documentation, labels, samples):
    """A gauge family from ``[(label values, value)]``."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def breaker_family(states):
    """``mail_provider_breaker_state``: 1 for each provider's current state (``states``: name ->
    ``circuit.provider_health``'s ``state``), 0 for the others."""
    return gauge(
        "mail_provider_breaker_state",
        "1 for the provider's current breaker state (closed, open, half_open, or paused by a 429)",
        ["provider", "state"],
        [
            ((name, state), 1 if current == state else 0)
            for name, current in states.items()
            for state in BREAKER_STATES
        ],
    )


def plan_families(plan):
    """Each provider's weight, rate cap and current rate (``dispatch.plan``); the last two only
    for capped providers, the only ones whose rate the database counts."""
    yield gauge(
        "mail_provider_weight",
        "The provider's weight (PROVIDER_WEIGHTS)",
        ["provider"],
        [((name,), row["weight"]) for name, row in plan.items()],
    )
    yield gauge(
        "mail_provider_rate_limit",
        "The provider's shared cap, mails per second (PROVIDER_RATE_LIMITS)",
        ["provider"],
        [
            ((name,), row["rate_limit"])
            for name, row in plan.items()
            if row["rate_limit"] is not None
        ],
    )
    yield gauge(
        "mail_provider_current_rate",
        "Mails sent to a capped provider in the last whole second, all workers together",
        ["provider"],
        [
            ((name,), row["current_rate"])
            for name, row in plan.items()
            if row["current_rate"] is not None
        ],
    )


def steered_family(steered, seen):
    """``mail_provider_steered``: 1 for each (provider, domain) the guard steers away from now
    (``steered``), 0 for the others of ``seen``, those this process saw steered before."""
    return gauge(
        "mail_provider_steered",
        "1 while the guard puts the provider last for the recipient domain",
        ["provider", "domain"],
        [(pair, 1 if pair in steered else 0) for pair in sorted(set(steered) | set(seen))],
    )
