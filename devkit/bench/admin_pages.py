"""How long each admin page takes with a million mails in the table (BENCHMARKS.md).

    .venv/bin/python -m devkit.bench.admin_pages --rows 1000000 [--server URL] [--repeat 20]
    .venv/bin/python -m devkit.bench.admin_pages --database-url URL   # keep the filled table
    .venv/bin/python -m devkit.bench.admin_pages --skip search,CSV     # not the slow pages

Creates a scratch database on the PostgreSQL server (``--server``, by default the local one
that lets user ``postgres`` in), migrates it, fills it with ``generate_series`` (mail in every
status, a day of sends, an hour of failures and bounces, backoff, expired leases, one attempt
row per mail that went out), ANALYZEs it, then times each page through the admin's real routes
(a Flask test client, logged in) and prints the median and the slowest of ``--repeat`` loads.
The scratch database is dropped at the end. ``--database-url`` uses that database instead and
keeps it: it is migrated, filled only if it holds no mail, and timed again as it is (so a change
of a query or an index is timed on the same million mails, and ``psql`` can EXPLAIN them).
"""

import argparse
import base64
import os
import statistics
import time
import uuid

import psycopg2
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

# One INSERT of ``rows`` mails: 90 % delivered over the last day, the rest spread over failed,
# bounced, queued (some in backoff), scheduled, sending (some with an expired lease), cancelled.
FILL_SQL = """
INSERT INTO email (id, status, from_address, to_address, recipients, subject, text, attempts,
                   last_error, next_attempt_at, locked_by, locked_until, created_at,
                   updated_at, sent_at, provider)
SELECT gen_random_uuid(), s.status, 'sender@example.com', ARRAY['rcpt' || n || '@example.com'],
       ARRAY['rcpt' || n || '@example.com'], 'Mail ' || n, 'Hello', s.attempts, s.error,
       s.next_attempt_at, s.locked_by, s.locked_until, s.created_at, s.updated_at, s.sent_at,
       s.provider
  FROM generate_series(1, %(rows)s) AS n
  CROSS JOIN LATERAL (
    SELECT CASE WHEN n %% 100 < 90 THEN 'delivered' WHEN n %% 100 < 93 THEN 'failed'
                WHEN n %% 100 < 95 THEN 'bounced' WHEN n %% 100 < 97 THEN 'queued'
                WHEN n %% 100 < 98 THEN 'scheduled' WHEN n %% 100 < 99 THEN 'sending'
                ELSE 'cancelled' END AS status,
           now() - (n %% 86400) * interval '1 second' AS created_at
  ) AS k
  CROSS JOIN LATERAL (
    SELECT k.status,
           CASE WHEN k.status IN ('failed', 'queued') THEN 1 + n %% 3 ELSE 1 END AS attempts,
           CASE WHEN k.status = 'failed' THEN 'HTTP 550 mailbox unknown'
                WHEN k.status = 'queued' AND n %% 2 = 0 THEN 'HTTP 503 from mailgun' END AS error,
           CASE WHEN k.status = 'queued' AND n %% 2 = 0
                    THEN now() + (n %% 600) * interval '1 second'
                WHEN k.status = 'scheduled' THEN now() + interval '1 day'
                ELSE k.created_at END AS next_attempt_at,
           CASE WHEN k.status = 'sending' THEN 'bench-worker' END AS locked_by,
           CASE WHEN k.status = 'sending' THEN now() + (n %% 7 - 3) * interval '1 minute'
                END AS locked_until,
           k.created_at,
           CASE WHEN k.status IN ('failed', 'bounced')
                    THEN now() - (n %% 3600) * interval '1 second'
                ELSE k.created_at END AS updated_at,
           CASE WHEN k.status IN ('delivered', 'bounced') THEN k.created_at END AS sent_at,
           CASE WHEN k.status IN ('delivered', 'bounced', 'failed') THEN
                CASE WHEN n %% 4 = 0 THEN 'sendgrid' ELSE 'mailgun' END END AS provider
  ) AS s
"""
ATTEMPTS_SQL = """
INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, duration_ms,
                              error, created_at)
SELECT id, 1, provider, CASE WHEN status = 'failed' THEN 'rejected' ELSE 'sent' END,
       CASE WHEN status = 'failed' THEN 400 ELSE 200 END, 40 + (random() * 200)::int,
       last_error, coalesce(sent_at, updated_at)
  FROM email WHERE provider IS NOT NULL ORDER BY coalesce(sent_at, updated_at)
"""
PAGES = [
    ("dashboard page", "/admin/"),
    ("dashboard.json", "/admin/dashboard.json"),
    ("chart.svg", "/admin/dashboard/chart.svg"),
    ("mail list", "/admin/email/"),
    ("mail list, failed", "/admin/email/?flt0_status_equals=failed"),
    ("mail list, search", "/admin/email/?search=rcpt424242@example.com"),
    ("mail page", "/admin/email/details/?id={mail_id}"),
]


def fill(url, rows):
    """Insert ``rows`` mails and their attempts and ANALYZE, unless the table holds mail already;
    the id of a delivered mail."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM email WHERE status = 'delivered' LIMIT 1")
        found = cursor.fetchone()
        if found is not None:
            print("the table holds mail already: timed as it is")
            connection.close()
            return found[0]
        started = time.monotonic()
        cursor.execute(FILL_SQL, {"rows": rows})
        cursor.execute(ATTEMPTS_SQL)
        cursor.execute(
            "INSERT INTO provider_state (name, state, consecutive_failures, cooldown,"
            " updated_at) VALUES ('mailgun', 'closed', 0, 0, now()), "
            "('sendgrid', 'closed', 0, 0, now())"
        )
        cursor.execute("VACUUM ANALYZE")
        print(f"filled {rows:,} mails in {time.monotonic() - started:.0f} s")
        cursor.execute("SELECT id FROM email WHERE status = 'delivered' LIMIT 1")
        mail_id = cursor.fetchone()[0]
    connection.close()
    return mail_id


def time_pages(app, mail_id, repeat, skip=()):
    """(label, median ms, slowest ms, bytes) of each page, loaded ``repeat`` times; not the
    pages whose label has a word of ``skip``."""
    client = app.test_client()
    token = base64.b64encode(b"admin:bench").decode()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Basic {token}"
    results = []
    for label, path in [
        *PAGES,
        ("CSV export, failed (30,000 rows)", "/admin/email/export.csv?flt0_status_equals=failed"),
    ]:
        if any(word in label for word in skip):
            continue
        path = path.format(mail_id=mail_id)
        times = []
        for _ in range(repeat if "export" not in path else max(1, repeat // 5)):
            started = time.perf_counter()
            response = client.get(path)
            size = len(response.get_data())
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        results.append((label, statistics.median(times), max(times), size))
    return results


def main():
    """Create, fill and time; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--server", default=LOCAL_SERVER)
    parser.add_argument("--database-url", help="use and keep this database (filled if empty)")
    parser.add_argument("--skip", default="", help="comma-separated words: pages not timed")
    args = parser.parse_args()
    skip = [word for word in args.skip.split(",") if word]
    if args.database_url:
        bench(args.database_url, args.rows, args.repeat, skip)
        return
    from pytest_postgresql.janitor import DatabaseJanitor  # a dev requirement

    server = make_url(args.server)
    name = f"mail_bench_admin_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=server.username or "postgres",
        host=server.host,
        port=server.port or 5432,
        dbname=name,
        password=server.password,
    )
    janitor.init()
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        bench(url, args.rows, args.repeat, skip)
    finally:
        janitor.drop()


def bench(url, rows, repeat, skip=()):
    """Migrate the database at ``url``, fill it and print each page's times."""
    from app import create_app

    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "ADMIN_PASSWORD": "bench",
            "API_KEYS": "bench-key",
            "PROVIDERS": "mailgun,sendgrid",
            "PROVIDER_RATE_LIMITS": "mailgun:50,sendgrid:20",
            "DB_STATEMENT_TIMEOUT": 60_000,
        }
    )
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
    mail_id = fill(url, rows)
    print(f"| page ({rows:,} mails) | median ms | slowest ms | bytes |")
    print("|---|---:|---:|---:|")
    for label, median, slowest, size in time_pages(app, mail_id, repeat, skip):
        print(f"| {label} | {median:.1f} | {slowest:.1f} | {size:,} |")
    with app.app_context():
        from models import db

        db.engine.dispose()


if __name__ == "__main__":
    main()
