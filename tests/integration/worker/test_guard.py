"""The guard end to end: mail to a recipient domain whose outcomes through Mailgun fail too
often goes through SendGrid first, for that domain only, for every worker, and comes back
once the failures leave the window; each change logged once, shown by /readyz and /metrics."""

import logging
import threading

import pytest
from helpers import queue_mails, sample_mail, serving, wait_for
from prometheus_client import generate_latest
from scrape import parse, value
from signed import MAILGUN_SIGNING_KEY, SENDGRID_PRIVATE_KEY

from app import create_app
from mailer.config import load_config
from mailer.database import make_engine
from mailer.worker.steering import Steering

pytestmark = pytest.mark.committed  # workers and the API read what the other committed

GUARD = {"DELIVERABILITY_MIN_EVENTS": 4}
OUTLOOK = [f"u{n}@outlook.example" for n in range(4)]
STEERED = (
    "provider mailgun steered away from outlook.example: 4 of 4 events failed (100.0%) "
    "in the last 3600s"
)


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, the sandbox posting its events to it."""
    application = create_app(settings)
    with serving(application) as url:
        sandbox.configure_events(
            url=url, mailgun_key=MAILGUN_SIGNING_KEY, sendgrid_key=SENDGRID_PRIVATE_KEY, delay=0.0
        )
        yield application.test_client()


def send(client, address):
    """Queue a mail to ``address`` through the API; its id."""
    answer = client.post("/mail", json=sample_mail(to=address))
    assert answer.status_code == 202
    return answer.get_json()["id"]


def provider_of(sandbox, address):
    """The provider the sandbox took the (only) mail to ``address`` through."""
    [taken] = [m["provider"] for m in sandbox.messages() if address in m["to"]]
    return taken


def outcomes(sql, provider, domain):
    """(failed, all) outcomes counted for ``provider`` and ``domain``."""
    [row] = sql(
        "SELECT coalesce(sum(bounced + deferred + complained), 0) AS failed,"
        " coalesce(sum(delivered + bounced + deferred + complained), 0) AS events"
        " FROM deliverability WHERE provider = :provider AND domain = :domain",
        provider=provider,
        domain=domain,
    )
    return row["failed"], row["events"]


def said(caplog, text):
    """How many log lines say ``text``."""
    return sum(record.getMessage() == text for record in caplog.records)


def test_a_domain_blocked_through_mailgun_goes_through_sendgrid_and_comes_back(
    live, run_worker, sandbox, sql, caplog
):
    caplog.set_level(logging.INFO, logger="mail_service.worker")
    sandbox.configure_events(outcomes={address: "defer" for address in OUTLOOK})
    for address in [*OUTLOOK, "ann@gmail.example"]:
        send(live, address)
    run_worker(**GUARD)
    assert {provider_of(sandbox, a) for a in [*OUTLOOK, "ann@gmail.example"]} == {"mailgun"}
    wait_for(lambda: outcomes(sql, "mailgun", "outlook.example") == (4, 4), 10, message="counts")

    # Outlook now defers Mailgun's mail: its next mail goes through SendGrid; Gmail's does not.
    sandbox.configure_events(outcomes={})
    send(live, "new@outlook.example")
    send(live, "bob@gmail.example")
    worker = run_worker(**GUARD)
    assert provider_of(sandbox, "new@outlook.example") == "sendgrid"
    assert provider_of(sandbox, "bob@gmail.example") == "mailgun"
    assert said(caplog, STEERED) == 1
    [shown] = live.get("/readyz").get_json()["steered"]
    assert (shown["provider"], shown["domain"], shown["failure_rate"]) == (
        "mailgun",
        "outlook.example",
        1.0,
    )
    assert shown["since"]
    api = parse(live.get("/metrics").get_data(as_text=True))
    mine = parse(generate_latest(worker.metrics.registry).decode())
    for samples in (api, mine):
        assert (
            value(samples, "mail_provider_steered", provider="mailgun", domain="outlook.example")
            == 1
        )

    # An hour on, the deferrals have left the window: Outlook's mail goes through Mailgun again.
    sql("UPDATE deliverability SET minute = minute - interval '2 hours'")
    send(live, "back@outlook.example")
    run_worker(**GUARD)
    assert provider_of(sandbox, "back@outlook.example") == "mailgun"
    assert said(caplog, STEERED) == 1
    assert (
        said(
            caplog,
            "provider mailgun no longer steered away from outlook.example: 0 of 0 events "
            "failed (0.0%) in the last 3600s",
        )
        == 1
    )
    assert live.get("/readyz").get_json()["steered"] == []
    api = parse(live.get("/metrics").get_data(as_text=True))
    assert (
        "mail_provider_steered",
        frozenset({"provider": "mailgun", "domain": "outlook.example"}.items()),
    ) in api
    assert value(api, "mail_provider_steered", provider="mailgun", domain="outlook.example") == 0


def count_outcomes(sql, provider, domain, delivered=0, deferred=0):
    """Add outcomes to this minute's counts, as recorded events would."""
    sql(
        "INSERT INTO deliverability AS d (minute, provider, domain, delivered, deferred)"
        " VALUES (date_trunc('minute', now()), :provider, :domain, :delivered, :deferred)"
        " ON CONFLICT (minute, provider, domain) DO UPDATE"
        " SET delivered = d.delivered + excluded.delivered,"
        " deferred = d.deferred + excluded.deferred",
        provider=provider,
        domain=domain,
        delivered=delivered,
        deferred=deferred,
    )


@pytest.fixture
def refreshers(settings, app):
    """Make ``Steering`` copies as two workers hold them, with setting overrides."""
    engines = []

    def make(count=2, **overrides):
        config = load_config(overrides={**settings, **GUARD, **overrides}, environ={})
        engines.append(make_engine(config))
        names = list(config["PROVIDERS"])
        return [Steering(engines[-1], config, names) for _ in range(count)]

    yield make
    for engine in engines:
        engine.dispose()


def refresh_together(copies):
    """Refresh every copy at once, each on a thread of its own."""
    start = threading.Barrier(len(copies))

    def refresh(copy):
        start.wait()
        copy.refresh()

    threads = [threading.Thread(target=refresh, args=(copy,)) for copy in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_each_change_is_logged_once_however_many_workers_look(refreshers, sql, caplog, client):
    caplog.set_level(logging.INFO, logger="mail_service.worker")
    first, second = refreshers()
    count_outcomes(sql, "mailgun", "outlook.example", delivered=9, deferred=3)
    count_outcomes(sql, "mailgun", "gmail.example", delivered=40, deferred=1)
    for _ in range(3):
        refresh_together([first, second])
    first.refresh(), second.refresh()  # each has now read what the other decided
    assert (
        said(
            caplog,
            "provider mailgun steered away from outlook.example: 3 of 12 events failed (25.0%) "
            "in the last 3600s",
        )
        == 1
    )
    assert [r.getMessage() for r in caplog.records if "steered" in r.getMessage()] == [
        "provider mailgun steered away from outlook.example: 3 of 12 events failed (25.0%) "
        "in the last 3600s"
    ]
    for copy in (first, second):
        assert copy.demoted("outlook.example") == {"mailgun"}
        assert copy.demoted("gmail.example") == frozenset()
    [shown] = client.get("/admin/dashboard.json").get_json()["providers"]["steered"]
    assert (shown["provider"], shown["domain"], shown["failed_of"]) == (
        "mailgun",
        "outlook.example",
        "3 of 12 (25.0%)",
    )
    page = client.get("/admin/").get_data(as_text=True)
    assert (
        '<td data-label="domain">outlook.example</td><td data-label="failed">3 of 12 (25.0%)</td>'
        in page
    )

    # Good outcomes come in: the share falls to the threshold, and mailgun comes back.
    count_outcomes(sql, "mailgun", "outlook.example", delivered=3)
    for _ in range(3):
        refresh_together([first, second])
    first.refresh(), second.refresh()
    assert (
        said(
            caplog,
            "provider mailgun no longer steered away from outlook.example: 3 of 15 events failed "
            "(20.0%) in the last 3600s",
        )
        == 1
    )
    assert first.demoted("outlook.example") == second.demoted("outlook.example") == frozenset()


def test_a_max_failure_rate_of_1_turns_the_guard_off(
    refreshers, sql, caplog, run_worker, sandbox, settings
):
    caplog.set_level(logging.INFO, logger="mail_service.worker")
    count_outcomes(sql, "mailgun", "outlook.example", deferred=10)
    [on] = refreshers(count=1)
    on.refresh()
    assert on.demoted("outlook.example") == {"mailgun"}
    [off] = refreshers(count=1, DELIVERABILITY_MAX_FAILURE_RATE=1)
    off.refresh()  # the pair still steered comes back
    assert off.demoted("outlook.example") == frozenset()
    assert sql("SELECT * FROM steering") == []
    assert (
        said(
            caplog,
            "provider mailgun no longer steered away from outlook.example: 10 of 10 events failed "
            "(100.0%) in the last 3600s",
        )
        == 1
    )
    queue_mails(settings["DATABASE_URL"], 1, to_address=["a@outlook.example"])
    run_worker(**GUARD, DELIVERABILITY_MAX_FAILURE_RATE=1)
    assert provider_of(sandbox, "a@outlook.example") == "mailgun"
    assert sql("SELECT * FROM steering") == []


def test_with_one_provider_nothing_is_steered(refreshers, sql, caplog):
    caplog.set_level(logging.INFO, logger="mail_service.worker")
    count_outcomes(sql, "mailgun", "outlook.example", deferred=10)
    [alone] = refreshers(count=1, PROVIDERS="mailgun")
    alone.refresh()
    assert alone.demoted("outlook.example") == frozenset()
    assert sql("SELECT * FROM steering") == []
    assert not [r for r in caplog.records if "steered" in r.getMessage()]
