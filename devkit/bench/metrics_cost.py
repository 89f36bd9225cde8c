# What health and metrics cost (BENCHMARKS.md, "Health and metrics"): the per-request hooks, the
# status-count triggers inside PostgreSQL, and the reads at 1,000,000 mails against a COUNT(*).
# Makes a throwaway database on --server-url and drops it:
#     .venv/bin/python -m devkit.bench.metrics_cost [--rows N]
#     PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python -m devkit.bench.metrics_cost
import argparse
import os
import statistics
import time
import timeit
import uuid

import psycopg2
from flask import Response
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from devkit.bench.harness import ROOT
from mailer.queue import counts
from mailer.telemetry import metrics
from models import db

INSERT = (
    "INSERT INTO email (id, status, from_address, subject, attempts, next_attempt_at) "
    "SELECT gen_random_uuid(), (ARRAY['sent','sent','sent','delivered','failed','queued',"
    "'scheduled','cancelled'])[1 + i % 8], 'a@example.com', 's', 0, "
    "now() - (i % 1000) * interval '1 second' FROM generate_series(1, {n}) AS i"
)
FLIP = (
    "UPDATE email SET status = CASE status WHEN 'queued' THEN 'sending' ELSE 'queued' END "
    "WHERE id IN (SELECT id FROM email WHERE status IN ('queued', 'sending') LIMIT {n})"
)


def hooks(app):
    """CPU of the two request hooks of mailer/telemetry/metrics.py for a POST /mail answered 202."""
    response = Response("{}", status=202, mimetype="application/json")
    with app.test_request_context("/mail", method="POST") as ctx:
        ctx.match_request()

        def both():
            metrics.start_timer()
            metrics.count_response(response)

        best = min(timeit.repeat(both, number=20_000, repeat=5)) / 20_000
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "one process"
    print(f"request hooks ({mode}): {best * 1e6:.1f} us per request")


def triggers(conn):
    """The status-count triggers' own time per statement, as EXPLAIN ANALYZE reports it."""
    for label, sql, trigger in (
        ("INSERT of 1 mail", INSERT.format(n=1), "email_status_count_insert"),
        ("INSERT of 100 mails", INSERT.format(n=100), "email_status_count_insert"),
        ("UPDATE of 1 status", FLIP.format(n=1), "email_status_count_update"),
        ("UPDATE of 100 statuses", FLIP.format(n=100), "email_status_count_update"),
    ):
        times, totals = [], []
        for _ in range(100):
            plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar()[0]
            conn.commit()
            times.append({t["Trigger Name"]: t["Time"] for t in plan["Triggers"]}[trigger])
            totals.append(plan["Execution Time"])
        median, p90 = statistics.median(times) * 1000, sorted(times)[90] * 1000
        print(
            f"{label:24s} trigger median {median:.0f} us, p90 {p90:.0f} us; the statement "
            f"{statistics.median(totals) * 1000:.0f} us"
        )


def timed(call, repeat=20):
    """Median and max milliseconds of ``call``."""
    values = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        values.append((time.perf_counter() - started) * 1000)
    return f"median {statistics.median(values):.2f} ms, max {max(values):.2f} ms"


def reads(app, conn, rows):
    """The operators' reads with ``rows`` mails in the table."""
    started = time.perf_counter()
    for offset in range(0, rows, 100_000):
        conn.execute(text(INSERT.format(n=min(100_000, rows - offset))))
    conn.commit()
    conn.execute(text("ANALYZE email"))
    counts.fold_status_counts(conn)
    conn.commit()
    print(f"{rows:,} mails inserted in {time.perf_counter() - started:.0f} s")
    print("status_counts (the ledger):", timed(lambda: counts.status_counts(conn)))
    print(
        "COUNT(*) GROUP BY status:  ",
        timed(
            lambda: conn.execute(text("SELECT status, count(*) FROM email GROUP BY status")).all(),
            3,
        ),
    )
    print("oldest_due_age:            ", timed(lambda: counts.oldest_due_age(conn)))
    client = app.test_client()
    print("GET /metrics:              ", timed(lambda: client.get("/metrics")))
    print("GET /readyz:               ", timed(lambda: client.get("/readyz")))


def main():
    """Measure on a throwaway database."""
    parser = argparse.ArgumentParser(description="What health and metrics cost")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    name = f"mail_cost_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.server_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        url = args.server_url.rsplit("/", 1)[0] + "/" + name
        app = create_app(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": "x",
                "API_KEYS": "",
                "ADMIN_PASSWORD": "",
                "DB_STATEMENT_TIMEOUT": 600_000,
            }
        )
        with app.app_context():
            upgrade(directory=os.path.join(ROOT, "migrations"))
            hooks(app)
            with db.engine.connect() as conn:
                triggers(conn)
                reads(app, conn, args.rows)
            db.engine.dispose()
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
