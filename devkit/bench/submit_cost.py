# What storing mail costs in process: the queue's submit.enqueue_many for 1,000 mails and for
# one, POST /mail and POST /mail/batch, each with plain mail (four fields) and rich mail (cc,
# tags, metadata, headers). Medians of this process's CPU per call, and the mean CPU of the
# PostgreSQL backend that ran them (from /proc: a server on this machine). Each stored mail is
# committed, as the API commits it. Makes a throwaway database on --server-url and drops it:
#     .venv/bin/python -m devkit.bench.submit_cost [--rounds 40]
import argparse
import json
import os
import statistics
import time
import uuid

import psycopg2
from flask_migrate import upgrade

from app import create_app
from devkit.bench.harness import ROOT, process_cpu_seconds
from mailer.database import transaction
from mailer.queue import submit
from mailer.validation.mail import validate_mail
from models import db

TABLES = "email, idempotency_key, email_status_count"  # the rest go with email (CASCADE)


def request(index, rich):
    """One mail request as a client sends it."""
    mail = {
        "from": "sender@example.com",
        "to": f"rcpt{index}@example.com",
        "subject": f"Batch mail {index}",
        "text": "Hello there, this is the body. " * 8,
    }
    if rich:
        mail.update(
            cc=[f"cc{index}@example.com", "x@example.org"],
            tags=["receipt", f"t{index % 7}"],
            metadata={"order": str(index), "user": "u42"},
            headers={"X-Campaign": "spring"},
        )
    return mail


def measure(label, call, rounds, empty_every):
    """Print the median CPU of ``call`` here and the mean CPU of its PostgreSQL backend."""
    with db.engine.connect() as conn:  # the pool's one connection, which the calls reuse
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    ours, database = [], []
    for index in range(rounds + 3):
        if index % empty_every == 0:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
        before = process_cpu_seconds(backend)
        started = time.process_time()
        call()
        if index >= 3:  # three to warm up
            ours.append(time.process_time() - started)
            if before is not None:  # a server on this machine
                database.append(process_cpu_seconds(backend) - before)
    shown = f"{sum(database) * 1000 / rounds:7.3f} ms" if database else "(not here)"
    print(f"{label:34s} ours {statistics.median(ours) * 1000:7.3f} ms   PostgreSQL {shown}")


def run(app, rounds):
    """Every measurement, plain mail then rich."""
    client = app.test_client()
    for rich in (False, True):
        kind = "rich" if rich else "plain"
        many = [validate_mail(request(index, rich)) for index in range(1000)]
        one = [validate_mail(request(0, rich))]
        body = json.dumps([request(index, rich) for index in range(1000)])
        measure(
            f"enqueue_many x1000 ({kind})",
            lambda many=many: submit.enqueue_many(transaction, many),
            rounds,
            10,
        )
        measure(
            f"enqueue_many x1 ({kind})",
            lambda one=one: submit.enqueue_many(transaction, one),
            rounds * 30,
            500,
        )
        measure(
            f"POST /mail ({kind})",
            lambda rich=rich: client.post("/mail", json=request(0, rich)),
            rounds * 30,
            500,
        )
        measure(
            f"POST /mail/batch x1000 ({kind})",
            lambda body=body: client.post(
                "/mail/batch", data=body, content_type="application/json"
            ),
            rounds,
            10,
        )


def main():
    """Measure on a throwaway database."""
    parser = argparse.ArgumentParser(description="What storing mail costs")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    name = f"mail_cost_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.server_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        url = args.server_url.rsplit("/", 1)[0] + "/" + name
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "API_KEYS": ""})
        with app.app_context():
            upgrade(directory=os.path.join(ROOT, "migrations"))
            run(app, args.rounds)
            db.engine.dispose()
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
