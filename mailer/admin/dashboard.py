"""What the admin's dashboard shows, read cheaply enough to poll every few seconds at any size.

``snapshot(conn, config)`` gathers every panel as plain JSON-ready data; the admin renders it
(``/admin/``) and serves it for the page to poll (``/admin/dashboard.json``). Nothing here
counts over the whole ``email`` table:

- counts by status come from the maintained counts (``counts.status_counts``);
- the per-minute series read only the last hour, each through an index (``ix_email_sent_at``,
  ``ix_email_status_updated``);
- the oldest due mail, mail in backoff and expired leases go through the claim's and the
  reaper's partial indexes, and lists stop at ``LISTED``;
- provider latency and recent failures read the last ``RECENT_ATTEMPTS`` attempt rows by their
  primary key;
- the providers the guard steers away from are the workers' few shared ``steering`` rows.

Every time is the database's (``now()``), as the workers see it. The statements are the queue's
(``mailer/queue/sql/dashboard.sql``).
"""

from datetime import UTC, timedelta

from mailer.queue import counts, heartbeats, reads, steering
from mailer.queue import dashboard as panels
from mailer.worker import circuit, dispatch, ratecap

SERIES_MINUTES = 60  # the chart's span
LISTED = 20  # rows in each list of the dashboard
COUNT_CAP = 10_000  # "10000+": lists are counted only this far
RECENT_ATTEMPTS = 5_000  # the attempt rows provider latency and failures are read from
RECENT_FAILURES = 5  # shown per provider
SERIES = ("sent", "failed", "bounced")


def snapshot(conn, config):
    """Every panel of the dashboard, JSON-ready, by the database's clock."""
    now = reads.database_now(conn)
    return {
        "now": iso(now),
        "counts": counts.status_counts(conn),
        "series": series(conn),
        "queue": queue_panel(conn),
        "providers": providers_panel(conn, config),
        "workers": workers_panel(conn),
    }


def series(conn):
    """Sent, failed and bounced per minute over the last hour, oldest minute first."""
    rows = panels.minute_series(conn, SERIES_MINUTES)
    return {
        "minutes": [iso(row["minute"]) for row in rows],
        **{name: [row[name] for row in rows] for name in SERIES},
    }


def queue_panel(conn):
    """The oldest due mail's age, mail waiting for a later time, and mail with expired leases."""
    waiting = [_mail(row) for row in panels.waiting(conn, LISTED)]
    stuck = [_mail(row) for row in panels.expired_leases(conn, LISTED)]
    return {
        "oldest_due_age": counts.oldest_due_age(conn),
        "waiting_count": panels.waiting_count(conn, COUNT_CAP),
        "waiting_count_capped": COUNT_CAP,
        "waiting": waiting,
        "expired_leases": stuck,
    }


def providers_panel(conn, config):
    """Each configured provider: its breaker (``circuit.health``); weight, rate limit and current
    rate (``dispatch.plan``); calls, failures and latency over the recent attempts and its latest
    failures. And the breakers' actions by hand."""
    names = config["PROVIDERS"]
    health = circuit.health(conn, names)
    by_name = {p["name"]: p for p in health["providers"]}
    stats = panels.provider_stats(conn, RECENT_ATTEMPTS, RECENT_FAILURES)
    plan = dispatch.plan(config, names, ratecap.current_rates(conn))  # as /readyz shows it
    providers = []
    for name in names:
        breaker = by_name.get(name) or circuit.never_reported(name)
        stat = stats.get(name, {})
        providers.append(
            {
                **breaker,
                **plan[name],  # weight, rate_limit, current_rate
                "calls": stat.get("calls", 0),
                "failures": stat.get("failures", 0),
                "latency_avg_ms": stat.get("latency_avg_ms"),
                "latency_p95_ms": stat.get("latency_p95_ms"),
                "recent_failures": stat.get("recent_failures", []),
            }
        )
    # As circuit.is_meltdown, over every configured provider (one no worker wrote yet is usable).
    melted = bool(providers) and not any(p["usable"] for p in providers)
    return {
        "status": "meltdown" if melted else "ok",
        "strategy": config["PROVIDER_STRATEGY"],
        "recent_attempts": RECENT_ATTEMPTS,
        "providers": providers,
        "hand_actions": [_hand_action(row) for row in circuit.hand_actions(conn, 10)],
        "steered": [_steered(row) for row in steering.steered(conn)],
    }


def workers_panel(conn):
    """The workers alive now, by their heartbeat rows."""
    return [
        {
            "name": row["name"],
            "host": row["host"],
            "pid": row["pid"],
            "started_at": iso(row["started_at"]),
            "last_seen": iso(row["last_seen"]),
            "seconds_since_seen": round(float(row["age"]), 1),
            "in_flight": row["in_flight"],
            "sent": row["sent"],
            "failed": row["failed"],
        }
        for row in alive_workers(conn)
    ]


def alive_workers(conn):
    """The heartbeat rows of the workers alive now (``heartbeats.alive``)."""
    return heartbeats.alive(conn)


def _mail(row):
    """A mail of a dashboard list, JSON-ready."""
    data = {
        key: (iso(value) if hasattr(value, "isoformat") else value)
        for key, value in dict(row).items()
    }
    data["id"] = str(row["id"])
    for key in ("due_in", "expired_for"):
        if data.get(key) is not None:
            data[key] = round(float(data[key]), 1)
    return data


def _steered(row):
    """A provider the guard puts last for a recipient domain, JSON-ready."""
    return {
        "provider": row["provider"],
        "domain": row["domain"],
        "failure_rate": row["failure_rate"],
        "failed_of": f"{row['failed']} of {row['events']} ({100 * row['failure_rate']:.1f}%)",
        "since": iso(row["since"]),
    }


def _hand_action(row):
    """A breaker action by hand, JSON-ready."""
    return {
        "provider": row["provider"],
        "action": row["action"],
        "actor": row["actor"],
        "reason": row["reason"],
        "at": iso(row["created_at"]),
    }


def iso(moment):
    """ISO 8601 in UTC, to the second, or None."""
    if moment is None:
        return None
    return (moment - timedelta(microseconds=moment.microsecond)).astimezone(UTC).isoformat()
