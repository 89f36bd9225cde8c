"""Retention: scripts/purge deletes old finished mail and its attempts, nothing else."""

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from conftest import ROOT, worker_env
from helpers import attempts_of, mail_rows, queue_mails
from sqlalchemy import create_engine, insert, text

from models import DeliveryAttempt, utcnow

# Rows are read back through connections of their own, so they must be committed.
pytestmark = pytest.mark.committed


def test_purge_deletes_old_finished_mail_in_batches(app, settings):
    url = settings["DATABASE_URL"]
    old = utcnow() - timedelta(days=40)
    old_sent = queue_mails(url, 7, status="sent", updated_at=old)
    old_failed = queue_mails(url, 2, status="failed", updated_at=old)
    old_failed += queue_mails(url, 1, status="cancelled", updated_at=old)
    recent_sent = queue_mails(url, 2, status="sent")
    old_queued = queue_mails(url, 2, updated_at=old)  # never purged, however old
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(DeliveryAttempt.__table__),
            [
                {"email_id": uuid.UUID(mail_id), "number": 1, "outcome": "sent", "created_at": old}
                for mail_id in old_sent + recent_sent
            ],
        )
        conn.execute(
            text(
                "INSERT INTO attachment (email_id, position, filename, content_type, "
                "size, content) VALUES (:id, 0, 'a.txt', 'text/plain', 1, 'x')"
            ),
            {"id": uuid.UUID(old_sent[0])},
        )
        conn.execute(
            text(
                "INSERT INTO idempotency_key (scope, key, fingerprint, status_code, "
                "response, created_at) VALUES ('s', 'old', 'f', 202, '{}', "
                "now() - interval '2 days'), ('s', 'new', 'f', 202, '{}', now())"
            )
        )
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "mailer.queue.purge", "--batch-size", "4"],
        env=worker_env(settings, RETENTION_DAYS=30),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "purged 10 finished mails" in result.stderr
    assert set(mail_rows(url)) == set(recent_sent + old_queued)
    assert {str(row["email_id"]) for row in attempts_of(url)} == set(recent_sent)
    assert not set(old_failed) & set(mail_rows(url))
    assert "purged 1 idempotency keys" in result.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM attachment")) == 0
        assert conn.scalar(text("SELECT string_agg(key, ',') FROM idempotency_key")) == "new"
    engine.dispose()


def test_purge_deletes_received_mail_past_retention(app, settings):
    url = settings["DATABASE_URL"]
    engine = create_engine(url)
    with engine.begin() as conn:
        ids = conn.execute(
            text(
                "INSERT INTO inbound (source, subject, received_at) VALUES "
                "('smtp', 'old', now() - interval '31 days'), ('smtp', 'new', now()) "
                "RETURNING id, subject"
            )
        ).all()
        conn.execute(
            text(
                "INSERT INTO inbound_attachment (inbound_id, position, filename, content_type, "
                "size, content) SELECT id, 0, 'a.txt', 'text/plain', 1, 'x' FROM inbound"
            )
        )
    result = subprocess.run(
        [sys.executable, "-m", "mailer.queue.purge", "--batch-size", "4"],
        env=worker_env(settings, RETENTION_DAYS=30),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "purged 1 received mails older than 30 days" in result.stderr
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT subject FROM inbound")).scalars().all()
        files = conn.execute(text("SELECT inbound_id FROM inbound_attachment")).scalars().all()
    engine.dispose()
    assert kept == ["new"]
    assert files == [id_ for id_, subject in ids if subject == "new"]
