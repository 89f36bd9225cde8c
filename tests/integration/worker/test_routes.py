"""Issue 20, section 3: ``PROVIDER_ROUTES`` sends mail through its recipient domain's route.

Mail for a routed domain goes through the route's providers only, other mail through
``PROVIDERS``; the strategy, weights and rate caps apply within the route; the mail shows its
route (``GET /mail/<id>``, the admin's mail page, the worker's log line). Two worker processes,
and a worker refusing a route that cannot work, are in tests/system/worker/test_routes.py.
"""

import logging
from collections import Counter

import pytest
from helpers import (
    arrival_times,
    busiest_second,
    is_due,
    mail_rows,
    queue_mails,
    rate_takes,
    wait_for,
)
from sqlalchemy import create_engine

from integration.admin.pages import details
from mailer.validation.addresses import bare_address
from mailer.worker import ratecap
from mailer.worker.circuit import close_by_hand, open_by_hand

pytestmark = [pytest.mark.slow, pytest.mark.committed]

ROUTES = "hotmail.com outlook.com=sendgrid,mailgun"


def submitted(client, mail, to):
    """The id of a mail to ``to`` accepted by ``POST /mail``."""
    answer = client.post("/mail", json={**mail, "to": to})
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def received_by(sandbox, provider):
    """The first ``to`` recipient (bare) of each mail ``provider`` received."""
    return sorted(bare_address(message["to"][0]) for message in sandbox.messages(provider))


def taken(url):
    """How many mails went through each (route, provider)."""
    return Counter((row["route"], row["provider"]) for row in mail_rows(url).values())


def test_routed_mail_takes_its_route_other_mail_providers_and_the_mail_says_which(
    client, mail, sandbox, run_worker, caplog
):
    routed = submitted(client, mail, "Ann <ann@HotMail.com>")
    other = submitted(client, mail, ["bob@example.com", "carl@hotmail.com"])
    copied = submitted(client, {**mail, "cc": "dan@outlook.com"}, "eve@example.org")
    assert client.get(f"/mail/{routed}").get_json()["route"] is None  # not planned yet
    with caplog.at_level(logging.INFO, logger="mail_service.worker"):
        run_worker(PROVIDER_ROUTES=ROUTES)
    # The first to recipient chooses: its domain compared whatever its case.
    assert received_by(sandbox, "sendgrid") == ["ann@hotmail.com"]
    assert received_by(sandbox, "mailgun") == ["bob@example.com", "eve@example.org"]
    shown = {mail_id: client.get(f"/mail/{mail_id}").get_json() for mail_id in (routed, other)}
    assert (shown[routed]["route"], shown[routed]["provider"]) == ("hotmail.com", "sendgrid")
    assert (shown[other]["route"], shown[other]["provider"]) == ("default", "mailgun")
    assert client.get(f"/mail/{copied}").get_json()["route"] == "default"
    assert details(client, routed)["Route"] == "hotmail.com"
    assert f"mail {routed} sent via sendgrid" in caplog.text
    assert "route hotmail.com (sendgrid, mailgun)" in caplog.text
    assert "route default (mailgun, sendgrid)" in caplog.text


def test_a_route_fails_over_along_its_own_providers_only(client, mail, sandbox, run_worker):
    routed = submitted(client, mail, "ann@hotmail.com")
    alone = submitted(client, mail, "bob@gmail.com")
    sandbox.configure("sendgrid", status=503)
    run_worker(PROVIDER_ROUTES=f"{ROUTES}; gmail.com=sendgrid", MAX_ATTEMPTS=1)
    assert client.get(f"/mail/{routed}").get_json()["provider"] == "mailgun"  # its second
    failed = client.get(f"/mail/{alone}").get_json()
    assert (failed["status"], failed["route"]) == ("failed", "gmail.com")
    assert [entry["provider"] for entry in failed["attempt_log"]] == ["sendgrid"]
    assert received_by(sandbox, "mailgun") == ["ann@hotmail.com"]


def test_weighted_sending_follows_the_weights_within_a_route(settings, sandbox, run_worker, app):
    url = settings["DATABASE_URL"]
    queue_mails(url, 400, to_address=["ann@hotmail.com"])
    queue_mails(url, 100, to_address=["bob@gmail.com"])
    run_worker(
        PROVIDER_ROUTES="hotmail.com=sendgrid,mailgun; gmail.com=sendgrid",
        PROVIDER_STRATEGY="weighted",
        PROVIDER_WEIGHTS="mailgun:3,sendgrid:1",
    )
    counts = taken(url)
    assert counts[("gmail.com", "sendgrid")] == 100 and counts[("gmail.com", "mailgun")] == 0
    hotmail = counts[("hotmail.com", "mailgun")] + counts[("hotmail.com", "sendgrid")]
    assert hotmail == 400
    assert abs(counts[("hotmail.com", "mailgun")] / 400 - 0.75) <= 0.05, counts


def test_a_capped_route_holds_its_mail_without_attempts_and_other_mail_goes_on(
    settings, sandbox, run_worker, app
):
    url = settings["DATABASE_URL"]
    # The routed mail is the oldest, and claims are small: held back due now, it would be
    # claimed again first, before the other mail, every time.
    queue_mails(url, 12, to_address=["ann@hotmail.com"])
    queue_mails(url, 40)
    with rate_takes(url) as takes:
        run_worker(
            PROVIDER_ROUTES="hotmail.com=sendgrid",
            PROVIDER_RATE_LIMITS="sendgrid:6",  # two seconds' worth of the routed mail
            WORKER_BATCH_SIZE=4,
        )
        drawn = takes()["sendgrid"]
    rows = mail_rows(url).values()
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}
    assert taken(url) == {("hotmail.com", "sendgrid"): 12, ("default", "mailgun"): 40}
    assert busiest_second(drawn) <= 6 + ratecap.burst(6), drawn
    assert sum(tokens for _, tokens in drawn) >= 12
    # The route waiting for its tokens did not hold up the other mail: it all went while the
    # route had sent half its mail at most (claimed again first, it would go after 10 or more).
    last = max(arrival_times(sandbox, "mailgun"))
    routed = arrival_times(sandbox, "sendgrid")
    assert len([moment for moment in routed if moment < last]) <= 6, routed


def by_hand(url, action, name):
    """An operator opens or closes ``name``'s breaker by hand (``open_by_hand``...)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        action(conn, name, "admin:test")
    engine.dispose()


def test_a_route_whose_providers_are_all_open_waits_without_attempts_and_other_mail_goes(
    settings, sandbox, run_worker, app
):
    url = settings["DATABASE_URL"]
    held = queue_mails(url, 3, to_address=["bob@gmail.com"])
    other = queue_mails(url, 5)
    by_hand(url, open_by_hand, "sendgrid")
    run_worker(PROVIDER_ROUTES="gmail.com=sendgrid")
    rows = mail_rows(url)
    assert {(rows[i]["status"], rows[i]["attempts"], rows[i]["route"]) for i in held} == {
        ("queued", 0, None)
    }
    assert {(rows[i]["status"], rows[i]["route"]) for i in other} == {("sent", "default")}
    assert not sandbox.messages("sendgrid")
    # Closed again: the route's mail goes once it is due again (a few seconds at most).
    by_hand(url, close_by_hand, "sendgrid")
    wait_for(lambda: all(is_due(url, i) for i in held), 10, message="the held mail to be due")
    run_worker(PROVIDER_ROUTES="gmail.com=sendgrid")
    rows = mail_rows(url)
    assert {(rows[i]["status"], rows[i]["attempts"], rows[i]["route"]) for i in held} == {
        ("sent", 1, "gmail.com")
    }
    assert len(sandbox.messages("sendgrid")) == 3
