"""The counts of mail by status (a ledger kept by triggers) and the workers' heartbeats.

Each count is compared with a real ``COUNT(*) ... GROUP BY status`` over ``email`` after every
kind of change: inserts, claims, sends and failures, cancels, retries, purges, and inserts and
claims from several connections at once.
"""

import threading
import uuid
from datetime import timedelta

import pytest
from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from helpers import queue_mails, statuses, wait_for
from sqlalchemy import create_engine, text

from mailer.queue import counts, heartbeats, lease
from mailer.queue.purge import purge
from models import utcnow

pytestmark = pytest.mark.committed  # other connections and a worker read the rows


def ledger(url):
    """``counts.counts`` read on a connection of its own."""
    engine = create_engine(url)
    with engine.connect() as conn:
        counted = counts.counts(conn)
    engine.dispose()
    return counted


def fold(url):
    """Fold the ledger once, in a transaction of its own."""
    engine = create_engine(url)
    with engine.begin() as conn:
        counts.fold_status_counts(conn)
    engine.dispose()


def ledger_rows(url):
    """How many rows the ledger holds."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.scalar(text("SELECT count(*) FROM email_status_count"))
    engine.dispose()
    return rows


def assert_exact(url):
    """The ledger says what COUNT(*) says, before and after a fold."""
    assert ledger(url) == statuses(url)
    fold(url)
    assert ledger(url) == statuses(url)


def test_counts_follow_a_mail_through_its_life(app, client, mail, run_worker, sandbox, settings):
    url = settings["DATABASE_URL"]
    assert ledger(url) == {}
    ids = [client.post("/mail", json=mail).get_json()["id"] for _ in range(4)]
    client.post("/mail", json={**mail, "send_at": (utcnow() + timedelta(days=1)).isoformat()})
    client.post("/mail/batch", json=[mail] * 3)
    assert ledger(url) == {"queued": 7, "scheduled": 1} == statuses(url)
    assert client.post(f"/mail/{ids[0]}/cancel").status_code == 200
    assert_exact(url)
    sandbox.configure("mailgun", reject_to="refused")  # a bad message: failed for good
    client.post("/mail", json={**mail, "to": "refused@example.com"})
    run_worker()
    assert ledger(url) == {"sent": 6, "failed": 1, "cancelled": 1, "scheduled": 1}
    assert_exact(url)
    client.post(f"/mail/{ids[0]}/retry")
    assert_exact(url)
    engine = create_engine(url)
    with engine.begin() as conn:  # everything finished is old enough to purge
        conn.execute(
            text(
                "UPDATE email SET updated_at = now() - interval '40 days' WHERE status <> 'queued'"
            )
        )
    assert purge(engine, 30, batch_size=2)[0] == 7
    engine.dispose()
    assert ledger(url) == {"queued": 1, "scheduled": 1} == statuses(url)
    assert_exact(url)


def test_concurrent_inserts_claims_and_folds_stay_exact(app, settings):
    url = settings["DATABASE_URL"]
    engine = create_engine(url, pool_size=8)
    errors = []

    def insert_many(batches):
        try:
            for _ in range(batches):
                queue_mails(url, 5)
        except Exception as err:  # reported below: a thread cannot fail the test itself
            errors.append(err)

    def claim_and_fold(turns):
        try:
            for turn in range(turns):
                with engine.begin() as conn:
                    lease.claim(conn, f"w{turn}", 7, 60)
                with engine.begin() as conn:
                    counts.fold_status_counts(conn)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=insert_many, args=(20,)) for _ in range(4)]
    threads += [threading.Thread(target=claim_and_fold, args=(30,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine.dispose()
    assert not errors
    counted = statuses(url)
    assert sum(counted.values()) == 400 and counted.get("sending")
    assert ledger(url) == counted
    assert_exact(url)
    assert ledger_rows(url) <= 2  # folded: one row per status


def test_inserts_never_wait_for_each_other_on_the_counts(app, settings):
    """Two uncommitted transactions both insert mail: neither waits on a counter row."""
    engine = create_engine(settings["DATABASE_URL"])
    first, second = engine.connect(), engine.connect()
    try:
        for conn in (first, second):
            conn.begin()
            conn.execute(text("SET LOCAL lock_timeout = '1s'"))
            conn.execute(
                text(
                    "INSERT INTO email (id, status, from_address, subject, attempts) "
                    "VALUES (:id, 'queued', 'a@example.com', 's', 0)"
                ),
                {"id": uuid.uuid4()},
            )
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
        engine.dispose()
    assert ledger(settings["DATABASE_URL"]) == {"queued": 2}


def test_reading_the_counts_never_reads_the_mail_table(app, settings):
    """With ``email`` locked against everything, the counts and their fold still answer."""
    url = settings["DATABASE_URL"]
    queue_mails(url, 3)
    engine = create_engine(url)
    with engine.connect() as locker, engine.connect() as reader:
        locker.begin()
        locker.execute(text("LOCK TABLE email IN ACCESS EXCLUSIVE MODE"))
        reader.execute(text("SET lock_timeout = '1s'"))
        assert counts.counts(reader) == {"queued": 3}
        counts.fold_status_counts(reader)
        reader.commit()
        locker.rollback()
    engine.dispose()


def test_oldest_due_age_is_the_wait_of_the_oldest_due_mail(app, settings):
    url = settings["DATABASE_URL"]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert counts.oldest_due_age(conn) == 0.0
    queue_mails(url, 1, next_attempt_at=utcnow() - timedelta(seconds=90))
    queue_mails(url, 1, next_attempt_at=utcnow() + timedelta(hours=1))  # not due
    queue_mails(url, 1, status="sent", next_attempt_at=utcnow() - timedelta(hours=5))
    with engine.connect() as conn:
        assert 90 <= counts.oldest_due_age(conn) < 120
    engine.dispose()


def test_the_migration_counts_the_mail_already_there(postgres_server):
    with migrated_to(postgres_server, "0006") as (url, migrations):
        queue_mails(url, 4)
        queue_mails(url, 2, status="sent")
        upgrade(directory=migrations)
        assert ledger(url) == {"queued": 4, "sent": 2} == statuses(url)
        downgrade(directory=migrations, revision="0006")
        upgrade(directory=migrations)
        assert ledger(url) == {"queued": 4, "sent": 2}


def test_a_running_worker_beats_and_forgets_its_row_when_it_stops(app, settings, run_worker):
    url = settings["DATABASE_URL"]
    engine = create_engine(url)

    def alive():
        with engine.connect() as conn:
            return heartbeats.alive(conn, within_seconds=15)

    thread = threading.Thread(target=run_worker, kwargs={"burst": False}, daemon=True)
    thread.start()
    worker = wait_for(lambda: run_worker.workers and run_worker.workers[-1], 30, message="worker")
    rows = wait_for(alive, 10, message="a heartbeat")
    assert [row["name"] for row in rows] == [worker.name]
    assert rows[0]["pid"] > 0 and rows[0]["host"] and rows[0]["age"] < 15
    assert rows[0]["started_at"] <= rows[0]["last_seen"]
    queue_mails(url, 3)
    wait_for(lambda: statuses(url) == {"sent": 3}, 10, message="the mail sent")
    worker.last_beat = 0.0  # beat again now rather than in INTERVAL seconds
    wait_for(lambda: [row["sent"] for row in alive()] == [3], 10, message="sent counted")
    worker.stop()
    thread.join(timeout=10)
    assert alive() == []
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM worker_heartbeat")) == 0
    engine.dispose()


def test_a_worker_not_seen_lately_is_not_alive(app, settings):
    engine = create_engine(settings["DATABASE_URL"])
    with engine.begin() as conn:
        heartbeats.beat(conn, "gone:1:abc", in_flight=2, sent=5, host="h", pid=1)
        heartbeats.beat(conn, "here:2:def", host="h", pid=2)
        conn.execute(
            text(
                "UPDATE worker_heartbeat SET last_seen = now() - interval '1 hour' "
                "WHERE name = 'gone:1:abc'"
            )
        )
    with engine.begin() as conn:
        assert [row["name"] for row in heartbeats.alive(conn, 60)] == ["here:2:def"]
        assert heartbeats.forget_stale(conn, 600) == 1
        heartbeats.forget(conn, "here:2:def")
        assert heartbeats.alive(conn, 60) == []
    engine.dispose()
