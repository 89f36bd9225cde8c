"""What the admin's dashboard shows, read cheaply enough to poll every few seconds at any size.

``snapshot(conn, config)`` gathers every panel as plain JSON-ready data; the admin renders it
(``/admin/``) and serves it for the page to poll (``/admin/dashboard.json``). Nothing here
counts over the whole ``email`` table:

- counts by status come from the maintained counts (``mailqueue.status_counts``);
- the per-minute series read only the last hour, each through an index (``ix_email_sent_at``,
  ``ix_email_status_updated``);
- the oldest due mail, mail in backoff and expired leases go through the claim's and the
  reaper's partial indexes, and lists stop at ``LISTED``;
- provider latency and recent failures read the last ``RECENT_ATTEMPTS`` attempt rows by their
  primary key.

Every time is the database's (``now()``), as the workers see it.
"""

from datetime import UTC, timedelta

from sqlalchemy import text

from mailer.queue import heartbeats, mailqueue
from mailer.worker import circuit, dispatch, ratecap
from models import SENDING, WAITING

SERIES_MINUTES = 60  # the chart's span
LISTED = 20  # rows in each list of the dashboard
COUNT_CAP = 10_000  # "10000+": lists are counted only this far
RECENT_ATTEMPTS = 5_000  # the attempt rows provider latency and failures are read from
RECENT_FAILURES = 5  # shown per provider
SERIES = ("sent", "failed", "bounced")

# Per minute over the last hour, one indexed range scan each. "sent" is when a provider took
# the mail (it may have been delivered or bounced since); "failed" and "bounced" are mails whose
# status is that now and changed in the minute.
SERIES_SQL = text(f"""
    WITH minutes AS (
        SELECT generate_series(date_trunc('minute', now()) - interval '{SERIES_MINUTES - 1} min',
                               date_trunc('minute', now()), interval '1 minute') AS minute
    ), sent AS (
        SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n FROM email
         WHERE sent_at >= date_trunc('minute', now()) - interval '{SERIES_MINUTES - 1} min'
         GROUP BY 1
    ), changed AS (
        SELECT status, date_trunc('minute', updated_at) AS minute, count(*) AS n FROM email
         WHERE status IN ('failed', 'bounced')
           AND updated_at >= date_trunc('minute', now()) - interval '{SERIES_MINUTES - 1} min'
         GROUP BY 1, 2
    )
    SELECT m.minute,
           coalesce(s.n, 0) AS sent,
           coalesce(f.n, 0) AS failed,
           coalesce(b.n, 0) AS bounced
      FROM minutes AS m
      LEFT JOIN sent AS s ON s.minute = m.minute
      LEFT JOIN changed AS f ON f.minute = m.minute AND f.status = 'failed'
      LEFT JOIN changed AS b ON b.minute = m.minute AND b.status = 'bounced'
     ORDER BY m.minute
""")
WAITING_LIST = ", ".join(f"'{status}'" for status in WAITING)
BACKOFF_SQL = text(f"""
    SELECT id, status, subject, attempts, next_attempt_at, last_error,
           extract(epoch FROM next_attempt_at - now()) AS due_in
      FROM email
     WHERE status IN ({WAITING_LIST}) AND next_attempt_at > now()
     ORDER BY next_attempt_at LIMIT :limit
""")
BACKOFF_COUNT_SQL = text(f"""
    SELECT count(*) FROM (SELECT 1 FROM email
     WHERE status IN ({WAITING_LIST}) AND next_attempt_at > now() LIMIT :cap) AS capped
""")
STUCK_SQL = text(f"""
    SELECT id, subject, locked_by, locked_until, attempts,
           extract(epoch FROM now() - locked_until) AS expired_for
      FROM email
     WHERE status = '{SENDING}' AND locked_until < now()
     ORDER BY locked_until LIMIT :limit
""")
PROVIDER_STATS_SQL = text("""
    WITH recent AS (
        SELECT provider, outcome, status_code, error, duration_ms, created_at,
               row_number() OVER (PARTITION BY provider, outcome = 'sent'
                                  ORDER BY id DESC) AS nth
          FROM delivery_attempt
         WHERE id > (SELECT coalesce(max(id), 0) FROM delivery_attempt) - :window
           AND provider IS NOT NULL
    )
    SELECT provider,
           count(*) AS calls,
           count(*) FILTER (WHERE outcome <> 'sent') AS failures,
           round(avg(duration_ms))::int AS latency_avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS latency_p95_ms,
           coalesce(jsonb_agg(jsonb_build_object(
               'at', created_at, 'outcome', outcome, 'status_code', status_code,
               'error', error) ORDER BY created_at DESC)
               FILTER (WHERE outcome <> 'sent' AND nth <= :failures), '[]') AS recent_failures
      FROM recent GROUP BY provider
""")
NOW_SQL = text("SELECT now()")


def snapshot(conn, config):
    """Every panel of the dashboard, JSON-ready, by the database's clock."""
    now = conn.scalar(NOW_SQL)
    return {
        "now": iso(now),
        "counts": mailqueue.status_counts(conn),
        "series": series(conn),
        "queue": queue_panel(conn),
        "providers": providers_panel(conn, config),
        "workers": workers_panel(conn),
    }


def series(conn):
    """Sent, failed and bounced per minute over the last hour, oldest minute first."""
    rows = conn.execute(SERIES_SQL).mappings().all()
    return {
        "minutes": [iso(row["minute"]) for row in rows],
        **{name: [row[name] for row in rows] for name in SERIES},
    }


def queue_panel(conn):
    """The oldest due mail's age, mail waiting for a later time, and mail with expired leases."""
    waiting = [_mail(row) for row in conn.execute(BACKOFF_SQL, {"limit": LISTED}).mappings()]
    stuck = [_mail(row) for row in conn.execute(STUCK_SQL, {"limit": LISTED}).mappings()]
    return {
        "oldest_due_age": mailqueue.oldest_due_age(conn),
        "waiting_count": conn.scalar(BACKOFF_COUNT_SQL, {"cap": COUNT_CAP}),
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
    stats = {
        row["provider"]: dict(row)
        for row in conn.execute(
            PROVIDER_STATS_SQL, {"window": RECENT_ATTEMPTS, "failures": RECENT_FAILURES}
        ).mappings()
    }
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
