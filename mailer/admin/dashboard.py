"""What the admin's dashboard shows, read cheaply enough to poll every few seconds at any size.

``snapshot(conn, config)`` gathers every panel as plain JSON-ready data; the admin renders it
(``/admin/``) and serves it for the page to poll (``/admin/dashboard.json``). Nothing here
counts over the whole ``email`` table:

- counts by status come from the maintained counts (``counts.status_counts``);
- the per-minute series read the last hour once, each through an index (``ix_email_sent_at``,
  ``ix_email_status_updated``); after that a refresh counts the last two minutes, and the
  minutes that are over are kept (``MinuteCounts``, one per app and process);
- the oldest due mail, mail in backoff (``ix_email_backoff``, counted from the index alone),
  scheduled mail, expired leases and the mail of workers gone go through partial indexes, and
  lists stop at ``LISTED``;
- provider latency and the failures, grouped by provider, outcome and reason, read the last
  ``RECENT_ATTEMPTS`` attempt rows by their primary key;
- the providers the guard steers away from are the workers' few shared ``steering`` rows.

Every time is the database's (``now()``), as the workers see it. The statements are the queue's
(``mailer/queue/sql/dashboard.sql``).
"""

import threading
from datetime import UTC, timedelta

from mailer.queue import breakers, counts, heartbeats, reads, steering
from mailer.queue import dashboard as panels
from mailer.worker import circuit, dispatch, ratecap

SERIES_MINUTES = 60  # the chart's span
# The current minute and the one before are counted at every refresh: a change made in a minute
# may commit a moment after it ends. Older minutes are counted once and kept.
LIVE_MINUTES = 2
RATE_MINUTES = 5  # the rates per minute are the mean of the last whole minutes
LISTED = 10  # rows in each list of the dashboard (each links to the whole list)
HELD_LISTED = 10  # mails listed per worker gone
FAILURE_GROUPS = 10  # groups of recent failures listed
COUNT_CAP = 10_000  # "10000+": lists are counted only this far
RECENT_ATTEMPTS = 5_000  # the attempt rows provider latency and failures are read from
RECENT_FAILURES = 5  # shown per provider
SERIES = ("sent", "failed", "bounced")


def snapshot(conn, config, minutes):
    """Every panel of the dashboard, JSON-ready, by the database's clock, with ``alerts``: what
    is wrong now, in words, for the banner and the page's title. ``minutes`` is the app's
    ``MinuteCounts``."""
    now = reads.database_now(conn)
    data = {
        "now": iso(now),
        "counts": counts.status_counts(conn),
        "series": series(conn, minutes, now),
        "queue": queue_panel(conn),
        "providers": providers_panel(conn, config),
        "workers": workers_panel(conn),
        "gone_workers": gone_workers_panel(conn),
    }
    data["rates"] = rates(data["series"])
    data["alerts"] = alerts(data)
    return data


def series(conn, minutes, now=None):
    """Sent, failed and bounced per minute over the last hour, oldest minute first."""
    rows = minutes.hour(conn, now or reads.database_now(conn))
    return {
        "minutes": [iso(row["minute"]) for row in rows],
        **{name: [row[name] for row in rows] for name in SERIES},
    }


class MinuteCounts:
    """The chart's minutes, each counted once it is over: a refresh counts only the minutes from
    the first one not kept (the last ``LIVE_MINUTES``, once the hour has been read), not the
    hour's mail again.

    A minute is kept as it was counted ``LIVE_MINUTES`` minutes after it began; a mail whose
    status changes later (a failed mail retried) leaves it as it was. Each process keeps its
    own, for the last hour only; the dashboard says so under its chart.
    """

    def __init__(self):
        self.kept = {}  # the start of a minute that is over: its row (minute, sent, ...)
        self.lock = threading.Lock()

    def hour(self, conn, now):
        """The last ``SERIES_MINUTES`` minutes up to ``now``'s, oldest first, as dicts."""
        until = now.replace(second=0, microsecond=0)
        first = until - timedelta(minutes=SERIES_MINUTES - 1)
        settled = until - timedelta(minutes=LIVE_MINUTES - 1)  # this one and later are live
        with self.lock:
            kept = {minute: row for minute, row in self.kept.items() if minute >= first}
        since = first
        while since in kept:
            since += timedelta(minutes=1)
        counted = panels.minute_series(conn, since, until)
        kept.update((row["minute"], row) for row in counted if row["minute"] < settled)
        with self.lock:
            self.kept = kept
        return [kept[minute] for minute in sorted(kept) if minute < since] + counted


def rates(minute_series):
    """Sent, failed and bounced per minute: the mean of the last ``RATE_MINUTES`` whole
    minutes (the current minute is not over)."""
    return {
        name: round(sum(minute_series[name][-RATE_MINUTES - 1 : -1]) / RATE_MINUTES, 1)
        for name in SERIES
    }


def queue_panel(conn):
    """The oldest due mail's age; mail in backoff after a failure (trouble) apart from mail
    scheduled by its client (normal), each with how many; and mail with expired leases."""
    return {
        "oldest_due_age": counts.oldest_due_age(conn),
        "backoff_count": panels.backoff_count(conn, COUNT_CAP),
        "backoff": [_mail(row) for row in panels.backoff(conn, LISTED)],
        "scheduled": [_mail(row) for row in panels.scheduled(conn, LISTED)],
        "count_cap": COUNT_CAP,
        "expired_leases": [_mail(row) for row in panels.expired_leases(conn, LISTED)],
    }


def alerts(data):
    """What an operator must see first, in words: a meltdown, each provider open, held open,
    half open or paused, each pair the guard steers away from, each worker gone with mail."""
    found = []
    providers = data["providers"]
    if providers["status"] == "meltdown":
        found.append("Meltdown: no provider can take mail")
    for p in providers["providers"]:
        if p["opened_by_hand"]:
            found.append(f"{p['name']} is held open by {p['opened_by_hand']['by']}")
        elif p["state"] != "closed":
            found.append(f"{p['name']} is {p['state'].replace('_', ' ')}")
    for s in providers["steered"]:
        found.append(f"the guard steers away from {s['provider']} for {s['domain']}")
    for w in data["gone_workers"]:
        found.append(f"worker {w['name']} is gone holding {w['held']} mail")
    return found


def providers_panel(conn, config):
    """Each configured provider: its breaker (``circuit.health``); weight, rate limit and current
    rate (``dispatch.plan``); calls, failures and latency over the recent attempts and its latest
    failures. And the breakers' actions by hand."""
    names = config["PROVIDERS"]
    health = circuit.health(conn, names)
    by_name = {p["name"]: p for p in health["providers"]}
    # When each breaker last changed: the time of its last error while it has not recovered.
    changed = {row["name"]: row["updated_at"] for row in breakers.breakers(conn, names)}
    stats = panels.provider_stats(conn, RECENT_ATTEMPTS, RECENT_FAILURES)
    plan = dispatch.plan(config, names, ratecap.current_rates(conn))  # as /readyz shows it
    providers = []
    groups = [
        _failure_group(row) for row in panels.failure_groups(conn, RECENT_ATTEMPTS, FAILURE_GROUPS)
    ]
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
                **_last_error(breaker, changed.get(name)),
            }
        )
    # As circuit.is_meltdown, over every configured provider (one no worker wrote yet is usable).
    melted = bool(providers) and not any(p["usable"] for p in providers)
    return {
        "status": "meltdown" if melted else "ok",
        "strategy": config["PROVIDER_STRATEGY"],
        "recent_attempts": RECENT_ATTEMPTS,
        "providers": providers,
        "failure_groups": groups,
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


def gone_workers_panel(conn):
    """The workers that stopped beating (their heartbeat row left behind) while holding mail in
    ``sending``, with that mail:
    shown as soon as their heartbeat is missed, long before their leases expire."""
    return [
        {
            "name": row["name"],
            "last_seen": iso(row["last_seen"]),
            "silent_for": None if row["silent_for"] is None else round(float(row["silent_for"])),
            "held": row["held"],
            "lease_until": iso(row["lease_until"]),
            "mail": row["mail"] or [],
        }
        for row in panels.gone_workers(conn, heartbeats.ALIVE_WITHIN, HELD_LISTED)
    ]


def held_by(conn, name):
    """The ids of the mails in ``sending`` worker ``name`` holds."""
    return panels.held_by(conn, name)


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


def _last_error(breaker, changed_at):
    """A breaker's last error and its time (when its row last changed) while it has not
    recovered (open, half open, paused, or failing still); after a recovery, none, also once
    an operator holds it open by hand (the error is older than that)."""
    closed = breaker["state"] == "closed" or breaker.get("opened_by_hand")
    if (closed and not breaker["consecutive_failures"]) or not breaker.get("last_error"):
        return {"last_error": None, "last_error_at": None}
    return {"last_error": breaker["last_error"], "last_error_at": iso(changed_at)}


def _failure_group(row):
    """Failures of one provider, outcome and reason, JSON-ready."""
    return {
        "provider": row["provider"],
        "outcome": row["outcome"],
        "status_code": row["status_code"],
        "error": row["error"],
        "count": row["count"],
        "latest": iso(row["latest"]),
    }


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
