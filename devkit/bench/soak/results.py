"""What the soak found, read after the run from the database's own timestamps, the receiver's
journal and the sandbox's tally: the end state's invariants, each stage's rate, the latencies,
each stage's lag behind sending over the run, and PostgreSQL's size.

Every stage has its time in a row the service wrote anyway: a mail is accepted at
``email.created_at``, handed to the provider at its ``sent`` attempt's ``created_at`` and sent
at ``email.sent_at``; its event is recorded at ``delivery_event.received_at``; a webhook is
written with the status change (``webhook_outbox.created_at``) and delivered when the receiver
got it (its journal). The journal and the submitted mails are loaded into temporary tables of
the bench's session, after the run, so that reading them costs the run nothing.
"""

import io
import statistics

from devkit.bench.soak.clients import address
from devkit.sandbox.events import outcome_of

FINAL_STATUS = {"deliver": "delivered", "bounce": "bounced", "complain": "complained"}
EVENT_TYPES = ("delivered", "bounced", "complained")  # the events that settle a mail
STAGES = ("accepted", "sent", "event recorded", "webhook delivered")
LAGS = ("queue wait", "event recorded", "final webhook", "sent webhook")
MAX_BINS = 300  # points of the plot's curves


def load(b, submitted, journal_path, event_settings):
    """The temporary tables: ``soak_mail`` (every mail acknowledged: id, way, its status to
    be) and ``soak_hook`` (every webhook the receiver got)."""
    b.sql(
        "CREATE TEMP TABLE soak_mail (id uuid PRIMARY KEY, way text, expected text) "
        "ON COMMIT PRESERVE ROWS"
    )
    b.sql(
        "CREATE TEMP TABLE soak_hook (webhook_id text, mail_id uuid, type text, at float8, "
        "verified boolean)"
    )
    rows = io.StringIO(
        "".join(
            f"{mail_id}\t{way}\t{FINAL_STATUS[outcome_of(address(index), event_settings)]}\n"
            for mail_id, way, index in submitted
        )
    )
    with b.db.cursor() as cursor:
        cursor.copy_expert("COPY soak_mail FROM STDIN", rows)
        with open(journal_path, encoding="utf-8") as journal:
            cursor.copy_expert("COPY soak_hook FROM STDIN", journal)
    b.sql("CREATE INDEX ON soak_hook (mail_id)")
    b.sql("CREATE INDEX ON soak_hook (webhook_id)")
    b.sql("ANALYZE soak_mail")
    b.sql("ANALYZE soak_hook")


def end_state(b, tally, total):
    """The invariants of the end: every mail final as its address said, none lost, none sent
    twice, every webhook delivered once and verified. ``ok`` says all hold."""
    mails = dict(
        zip(
            ("submitted", "stored", "final", "unexpected", "in_table", "sent_twice_by_attempts"),
            b.sql(MAILS_SQL)[0],
            strict=True,
        )
    )
    statuses = dict(
        b.sql(
            "SELECT coalesce(e.status, 'missing'), count(*) FROM soak_mail s "
            "LEFT JOIN email e ON e.id = s.id GROUP BY 1"
        )
    )
    hooks = dict(
        zip(
            (
                "written",
                "delivered",
                "received",
                "distinct",
                "unverified",
                "missing",
                "unknown",
                "mails_without_both",
            ),
            b.sql(HOOKS_SQL)[0],
            strict=True,
        )
    )
    hooks["duplicates"] = hooks["received"] - hooks["distinct"]
    found = {
        "total": total,
        **mails,
        "statuses": statuses,
        "ways": dict(b.sql("SELECT way, count(*) FROM soak_mail GROUP BY way")),
        "sources": dict(b.sql("SELECT source, count(*) FROM email GROUP BY source")),
        "lost": mails["submitted"] - mails["final"],
        "taken_by_provider": tally.get("mail_ids"),
        "sent_twice": len(tally.get("repeats") or {}),
        "webhooks": hooks,
    }
    found["ok"] = (
        mails["submitted"] == total
        and mails["stored"] == mails["final"] == mails["in_table"] == total
        and mails["unexpected"] == 0
        and mails["sent_twice_by_attempts"] == 0
        and found["taken_by_provider"] == total
        and found["sent_twice"] == 0
        and hooks["written"] == hooks["delivered"] == hooks["distinct"] == hooks["received"]
        and not any(hooks[key] for key in ("unverified", "missing", "unknown"))
        and hooks["mails_without_both"] == 0
    )
    return found


MAILS_SQL = """
SELECT (SELECT count(*) FROM soak_mail),
       (SELECT count(*) FROM soak_mail s JOIN email e ON e.id = s.id),
       (SELECT count(*) FROM soak_mail s JOIN email e ON e.id = s.id
         WHERE e.status IN ('delivered', 'bounced', 'complained')),
       (SELECT count(*) FROM soak_mail s JOIN email e ON e.id = s.id
         WHERE e.status <> s.expected),
       (SELECT count(*) FROM email),
       (SELECT count(*) FROM (SELECT email_id FROM delivery_attempt WHERE outcome = 'sent'
                               GROUP BY email_id HAVING count(*) > 1) AS twice)
"""
HOOKS_SQL = """
SELECT (SELECT count(*) FROM webhook_outbox),
       (SELECT count(*) FROM webhook_outbox WHERE status = 'delivered'),
       (SELECT count(*) FROM soak_hook),
       (SELECT count(DISTINCT webhook_id) FROM soak_hook),
       (SELECT count(*) FROM soak_hook WHERE NOT verified),
       (SELECT count(*) FROM webhook_outbox o
         WHERE NOT EXISTS (SELECT FROM soak_hook h WHERE h.webhook_id = o.message_id)),
       (SELECT count(*) FROM soak_hook h
         WHERE NOT EXISTS (SELECT FROM webhook_outbox o WHERE o.message_id = h.webhook_id)),
       (SELECT count(*) FROM soak_mail s
         WHERE NOT EXISTS (SELECT FROM soak_hook h
                            WHERE h.mail_id = s.id AND h.type = 'mail.sent')
            OR NOT EXISTS (SELECT FROM soak_hook h
                            WHERE h.mail_id = s.id AND h.type = 'mail.' || s.expected))
"""


def stage_rates(b, tally, started_at):
    """Each stage's count, first and last time (unix seconds) and rate; with the status
    changes (webhooks written), the events the sandbox posted (by when they were due: a
    provider posts as it goes, however slowly the service takes them), and the whole run's
    rate from the first submission (``started_at``) to the last webhook."""
    windows = {}
    for name, statement in STAGE_WINDOWS:
        count, first, last = b.sql(statement)[0]
        windows[name] = window(count, first, last)
    events = tally.get("events") or {}
    posted = (events.get(key) for key in ("events", "first_due_at", "last_due_at"))
    windows["events posted"] = window(*posted)  # when the provider meant to post them
    last_hook = windows["webhook delivered"]["last"]
    mails = windows["accepted"]["count"]
    windows["whole run"] = window(mails, started_at, last_hook)
    return windows


def window(count, first, last):
    """``{count, first, last, seconds, rate}`` (rate None for an empty or instant window)."""
    first = None if first is None else float(first)
    last = None if last is None else float(last)
    seconds = None if first is None or last is None else last - first
    rate = count / seconds if count and seconds else None
    return {"count": count, "first": first, "last": last, "seconds": seconds, "rate": rate}


def _span(column, table, where="TRUE"):
    """The statement of a stage's count, first and last time."""
    return (
        f"SELECT count({column}), extract(epoch FROM min({column})), "
        f"extract(epoch FROM max({column})) FROM {table} WHERE {where}"
    )


STAGE_WINDOWS = (
    ("accepted", _span("created_at", "email")),
    ("sent", _span("sent_at", "email")),
    ("event recorded", _span("received_at", "delivery_event")),
    ("status changes", _span("created_at", "webhook_outbox")),
    ("webhook delivered", "SELECT count(*), min(at), max(at) FROM soak_hook"),
)


def latencies(b):
    """p50 and p99 (ms) from submission to the provider (the sent attempt's call), from the
    provider's event reaching the service to the client's webhook of it, and from the send to
    its ``mail.sent`` webhook."""
    found = {}
    for name, statement in LATENCIES:
        p50, p99 = b.sql(statement)[0][0] or (None, None)
        found[name] = {"p50_ms": _ms(p50), "p99_ms": _ms(p99)}
    return found


def _ms(seconds):
    """Seconds as milliseconds, or None."""
    return None if seconds is None else seconds * 1000


LATENCIES = (
    (
        "submission to provider",
        "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
        "(ORDER BY extract(epoch FROM a.created_at - e.created_at)) "
        "FROM delivery_attempt a JOIN email e ON e.id = a.email_id WHERE a.outcome = 'sent'",
    ),
    (
        "provider event to webhook",
        "WITH first_event AS (SELECT email_id, type, min(received_at) AS at "
        "FROM delivery_event WHERE type IN ('delivered', 'bounced', 'complained') "
        "GROUP BY 1, 2) "
        "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
        "(ORDER BY h.at - extract(epoch FROM f.at)) "
        "FROM soak_hook h JOIN first_event f ON f.email_id = h.mail_id "
        "AND h.type = 'mail.' || f.type",
    ),
    (
        "sent to its webhook",
        "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
        "(ORDER BY h.at - extract(epoch FROM e.sent_at)) "
        "FROM soak_hook h JOIN email e ON e.id = h.mail_id WHERE h.type = 'mail.sent'",
    ),
)


# Each mail's time at each stage (unix seconds): accepted, sent, its settling event recorded,
# its last webhook received; and its mail.sent webhook.
MAIL_TIMES = """
CREATE TEMP TABLE soak_times AS
WITH event AS (
    SELECT email_id, extract(epoch FROM min(received_at)) AS at
      FROM delivery_event WHERE type IN ('delivered', 'bounced', 'complained')
     GROUP BY email_id
), hook AS (
    SELECT mail_id, min(at) FILTER (WHERE type = 'mail.sent') AS sent_hook,
           max(at) FILTER (WHERE type <> 'mail.sent') AS final_hook
      FROM soak_hook GROUP BY mail_id
), mail AS (
    SELECT extract(epoch FROM e.created_at) AS accepted, extract(epoch FROM e.sent_at) AS sent,
           event.at AS recorded, hook.final_hook, hook.sent_hook
      FROM soak_mail s JOIN email e ON e.id = s.id
      LEFT JOIN event ON event.email_id = s.id
      LEFT JOIN hook ON hook.mail_id = s.id
)
SELECT * FROM mail
"""


def over_time(b, started_at, ended_at):
    """Each stage's mails per bin of time since the start (cumulative, for the plot), and each
    stage's lag behind sending (p50 and p99, seconds) by when the mails were sent; the bin's
    width in seconds."""
    width = max(1.0, float(int((ended_at - started_at) / MAX_BINS) + 1))
    params = {"t0": started_at, "width": width}
    b.sql(MAIL_TIMES)
    counts = {stage: {} for stage in STAGES}
    for stage, column in zip(STAGES, ("accepted", "sent", "recorded", "final_hook"), strict=True):
        for bin_number, count in b.sql(
            f"SELECT floor(({column} - %(t0)s) / %(width)s)::int, count(*) "
            f"FROM soak_times WHERE {column} IS NOT NULL GROUP BY 1",
            params,
        ):
            counts[stage][bin_number] = count
    lags = b.sql(
        """
        SELECT floor((sent - %(t0)s) / %(width)s)::int, count(*),
               percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY sent - accepted),
               percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY recorded - sent),
               percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY final_hook - sent),
               percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY sent_hook - sent)
          FROM soak_times WHERE sent IS NOT NULL GROUP BY 1 ORDER BY 1
        """,
        params,
    )
    return {
        "width": width,
        "cumulative": {stage: cumulative(found) for stage, found in counts.items()},
        "lags": [lag_row(bin_number * width, count, pairs) for bin_number, count, *pairs in lags],
    }


def lag_row(start, mails, pairs):
    """One bin of the lags: its start (seconds since the first submission), its mails, and
    [p50, p99] of each of ``LAGS``."""
    row = {"t": start, "mails": mails}
    for name, pair in zip(LAGS, pairs, strict=True):
        row[name] = list(pair or (None, None))
    return row


def cumulative(per_bin):
    """[(bin start offset, mails so far)] from {bin number: mails in it} (bins with none left
    out)."""
    total, points = 0, []
    for bin_number in sorted(per_bin):
        total += per_bin[bin_number]
        points.append((bin_number, total))
    return points


def growth(lags):
    """For each stage: its median p50 lag over the second quarter of the sending time (the
    first is warm-up) and over the last, and whether it grew: the last more than 1.5 times the
    second and more than a second longer."""
    found = {}
    quarter = len(lags) // 4
    for name in LAGS:
        early = [row[name][0] for row in lags[quarter : 2 * quarter] if row[name][0] is not None]
        late = [row[name][0] for row in lags[3 * quarter :] if row[name][0] is not None]
        if not early or not late:
            found[name] = {"early_s": None, "late_s": None, "grows": None}
            continue
        early_s, late_s = statistics.median(early), statistics.median(late)
        found[name] = {
            "early_s": early_s,
            "late_s": late_s,
            "grows": late_s > 1.5 * early_s and late_s > early_s + 1.0,
        }
    return found


def sizes(b):
    """PostgreSQL's bytes of the bench database's tables (with TOAST) and indexes, in all and
    for each table that holds any."""
    rows = b.sql(
        "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 2 DESC"
    )
    return {
        "tables": sum(table for _, table, _ in rows),
        "indexes": sum(indexes for _, _, indexes in rows),
        "by_table": {name: [table, indexes] for name, table, indexes in rows if table + indexes},
    }


def wal_position(b):
    """The server's WAL position now (every database's WAL: the server writes one)."""
    return b.sql("SELECT pg_current_wal_lsn()::text")[0][0]


def wal_bytes(b, since, until):
    """Bytes of WAL written between two positions."""
    return int(b.sql("SELECT pg_wal_lsn_diff(%s, %s)", (until, since))[0][0])
