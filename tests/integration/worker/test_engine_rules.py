"""One home for each rule: the database's clock, failures that mean what they say."""

import logging
import sys
from datetime import timedelta

import pytest
from helpers import attempts_of, mail_rows, queue_mails
from sqlalchemy import create_engine, text

import mail_service
from mailer import clock
from mailer.config import load_config
from mailer.database import make_engine
from mailer.queue import lease
from mailer.worker import loop as worker_module
from mailer.worker.loop import Worker
from providers import build_providers
from providers.mailgun import Mailgun

pytestmark = pytest.mark.committed


@pytest.fixture
def skewed_clock(monkeypatch):
    """This process's clock an hour ahead of the database's, wherever the engine reads it."""
    real = clock.utcnow

    def ahead():
        return real() + timedelta(hours=1)

    for name, module in list(sys.modules.items()):
        if (name == "models" or name.startswith("mailer.")) and hasattr(module, "utcnow"):
            monkeypatch.setattr(module, "utcnow", ahead)


def test_a_worker_an_hour_ahead_takes_no_lease_and_no_early_mail(
    settings, app, run_worker, skewed_clock, sandbox
):
    url = settings["DATABASE_URL"]
    [held] = queue_mails(url, 1)
    engine = create_engine(url)
    with engine.begin() as conn:  # another worker holds this one for a minute
        lease.claim(conn, "other-worker", 10, lease_seconds=60)
        conn.execute(
            text(
                "INSERT INTO email (id, status, from_address, to_address, subject, "
                "text, attempts, next_attempt_at) VALUES (gen_random_uuid(), "
                "'queued', 'a@example.com', '{b@example.com}', 'later', 'x', 0, "
                "now() + interval '30 minutes')"
            )
        )
    engine.dispose()
    run_worker()
    rows = mail_rows(url)
    assert rows[held]["status"] == "sending" and rows[held]["locked_by"] == "other-worker"
    [later] = [row for row in rows.values() if row["subject"] == "later"]
    assert later["status"] == "queued" and later["attempts"] == 0
    assert sandbox.messages() == []


class Exploding(Mailgun):
    """Mailgun with a bug of ours in it: every send raises."""

    def send(self, session, message):
        raise RuntimeError("a bad deploy")


def test_an_unexpected_exception_is_retried_not_failed(settings, app, caplog):
    url = settings["DATABASE_URL"]
    [mail_id] = queue_mails(url, 1)
    # A backoff of 1-2 s: the burst run ends before the retry falls due, however busy the machine.
    retry_later = {"RETRY_BASE": 2.0, "RETRY_CAP": 2.0}
    config = load_config(overrides={**settings, **retry_later, "PROVIDERS": "mailgun"}, environ={})
    engine = make_engine(config, pool_size=12, worker=True)
    worker = Worker(engine, config, [Exploding(config)])
    with caplog.at_level(logging.ERROR, logger="mail_service.worker"):
        worker.run(burst=True)
    engine.dispose()
    row = mail_rows(url)[mail_id]
    assert row["status"] == "queued" and row["attempts"] == 1
    assert row["last_error"] == "internal error: RuntimeError: a bad deploy"
    assert any("Traceback" in record.exc_text for record in caplog.records if record.exc_text)


def test_a_send_that_raises_before_any_provider_call_is_retried(
    settings, app, sandbox, monkeypatch
):
    # Not a provider's error: our own code raising on a send thread, outside the provider call.
    # The mail is retried, its thread goes on, and the worker still finishes the others.
    url = settings["DATABASE_URL"]
    ids = queue_mails(url, 3)
    real = worker_module.message_from_row

    def breaks_on_the_first(row):
        if str(row["id"]) == str(ids[0]):
            raise KeyError("a bad deploy")
        return real(row)

    monkeypatch.setattr(worker_module, "message_from_row", breaks_on_the_first)
    # A backoff of 1-2 s: the burst run ends before the retry falls due, however busy the machine.
    overrides = {
        "PROVIDERS": "mailgun",
        "WORKER_CONCURRENCY": 1,
        "RETRY_BASE": 2.0,
        "RETRY_CAP": 2.0,
    }
    config = load_config(overrides={**settings, **overrides}, environ={})
    engine = make_engine(config, pool_size=8, worker=True)
    Worker(engine, config, build_providers(config)).run(burst=True)
    engine.dispose()
    rows = mail_rows(url)
    assert rows[ids[0]]["status"] == "queued" and rows[ids[0]]["attempts"] == 1
    assert rows[ids[0]]["last_error"] == "internal error: KeyError: 'a bad deploy'"
    assert [rows[mail_id]["status"] for mail_id in ids[1:]] == ["sent", "sent"]


def test_attempt_time_is_when_the_provider_was_called(settings, app, run_worker, sandbox):
    url = settings["DATABASE_URL"]
    sandbox.configure("mailgun", latency_ms=400, count=1)
    [mail_id] = queue_mails(url, 1)
    run_worker(PROVIDERS="mailgun")
    [attempt] = attempts_of(url)
    row = mail_rows(url)[mail_id]
    assert row["status"] == "sent"
    # Stamped before the 400 ms call, not when the result was recorded after it.
    assert (row["sent_at"] - attempt["created_at"]).total_seconds() >= 0.35


def test_a_mailgun_domain_with_a_slash_is_refused_at_start(settings):
    with pytest.raises(ValueError, match="MAILGUN_DOMAIN"):
        build_providers(
            load_config(overrides={**settings, "MAILGUN_DOMAIN": "mg.example.com/x"}, environ={})
        )


@pytest.mark.parametrize(
    ("providers", "cleared", "named"),
    [
        ("mailgun,sendgrid", {"SENDGRID_API_KEY": ""}, "SENDGRID_API_KEY is not set"),
        ("sendgrid,mailgun", {"MAILGUN_DOMAIN": ""}, "MAILGUN_DOMAIN is not set"),
        (
            "mailgun,ses",
            {"SES_REGION": "", "SES_SECRET_ACCESS_KEY": ""},
            "SES_REGION, SES_SECRET_ACCESS_KEY are not set",
        ),
    ],
)
def test_a_provider_missing_its_settings_stops_the_worker_naming_them(
    settings, tmp_path, capfd, providers, cleared, named
):
    """The worker refuses to start (exit 2) rather than quietly sending through fewer
    providers than the operator named."""
    config = tmp_path / "settings.cfg"
    values = {**settings, "PROVIDERS": providers, **cleared}
    config.write_text("".join(f"{name} = {value!r}\n" for name, value in values.items()))
    assert mail_service.main(["--config", str(config)]) == 2
    assert named in capfd.readouterr().err
