"""Test mode: a ``mk_test_`` key's mail goes to the simulator, never to a provider. Each
outcome the first recipient's local part asks for (bounce, complaint, reject, defer, anything
else) comes with its status, its events, its client webhooks and its suppression entries (in
the tenant's test view only), marked ``test``; the sandbox receives nothing, and test mail
counts nowhere live and lists apart from live mail."""

import threading
import uuid

import pytest
from helpers import wait_for
from standardwebhooks import Webhook

from integration.keyring import make_key
from integration.receiver import SECRET, Receiver
from mailer import database
from mailer.queue import webhook_endpoints

pytestmark = pytest.mark.committed

OUTCOMES = {  # first recipient -> (status, event types in order, the webhook of its status)
    "ann@example.com": ("delivered", ["delivered"], "mail.delivered"),
    "bounce@example.com": ("bounced", ["bounced"], "mail.bounced"),
    "complaint+1@example.com": ("complained", ["delivered", "complained"], "mail.complained"),
    "reject@example.com": ("failed", [], "mail.failed"),
    "defer@example.com": ("delivered", ["deferred", "delivered"], "mail.delivered"),
}
FINAL = ("delivered", "bounced", "complained", "failed")


@pytest.fixture
def receiver():
    """A client's webhook endpoint for the test."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def settings(settings):
    """Tenants' webhook endpoints may be the test's receiver, on loopback over http."""
    return {**settings, "WEBHOOK_ALLOW_HTTP": True, "WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def keys(app, receiver):
    """A test key and a live key of tenant ``shop``, whose webhook endpoint is ``receiver``
    (signing with the receiver's secret)."""
    scopes = ["mail:send", "mail:read", "suppressions:read"]
    test, _ = make_key(app, "shop", scopes, name="checkout-test", test=True)
    live, _ = make_key(app, "shop", scopes, name="checkout")
    endpoint = {"id": uuid.uuid4(), "tenant": "shop", "url": receiver.url, "events": []}
    with app.app_context(), database.transaction() as conn:
        webhook_endpoints.create(conn, {**endpoint, "secret": SECRET, "created_by": "tests"})
    return {"test": test, "live": live}


def start_worker(run_worker):
    """A worker on a thread (its webhook sender runs while it does)."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def submit(client, headers, to):
    """Post a mail to ``to`` with ``headers``; its id."""
    body = {"from": "shop@example.com", "to": to, "subject": "Hi", "text": "Hello"}
    answer = client.post("/mail", json=body, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def test_every_outcome_with_its_events_and_webhooks_and_nothing_sent(
    client, keys, run_worker, receiver, sandbox, sql
):
    ids = {to: submit(client, keys["test"], to) for to in OUTCOMES}
    start_worker(run_worker)

    def shown(mail_id):
        return client.get(f"/mail/{mail_id}", headers=keys["test"]).get_json()

    def settled():
        mails = {to: shown(mail_id) for to, mail_id in ids.items()}
        done = all(
            mail["status"] in FINAL and [e["type"] for e in mail["events"]] == OUTCOMES[to][1]
            for to, mail in mails.items()
        )
        return mails if done else None

    mails = wait_for(settled, timeout=30, message="every test mail settled")
    for to, (status, _, _) in OUTCOMES.items():
        mail = mails[to]
        assert (mail["status"], mail["test"], mail["tenant"]) == (status, True, "shop"), to
        assert mail["provider"] == "simulator"
        assert {e["provider"] for e in mail["events"]} <= {"simulator"}
    assert mails["reject@example.com"]["last_error"] == "simulated rejection"

    expected = {(ids[to], webhook) for to, (_, _, webhook) in OUTCOMES.items()}

    def heard():
        got = [Webhook(SECRET).verify(body, headers) for headers, body in receiver.received]
        return {(p["data"]["mail_id"], p["type"]) for p in got} >= expected and got

    webhooks = wait_for(heard, timeout=30, message="the client webhooks")
    assert all(payload["data"]["test"] is True for payload in webhooks)
    assert sandbox.requests() == []  # no provider was called
    assert sql("SELECT * FROM deliverability") == []  # the guard counts nothing
    assert (
        sql("SELECT status, sum(n) AS n FROM email_status_count GROUP BY status HAVING sum(n) <> 0")
        == []
    )  # the live counts hold no test mail
    entries = sql("SELECT tenant, address, reason FROM suppression ORDER BY address")
    assert [tuple(row.values()) for row in entries] == [
        ("shop:test", "bounce@example.com", "bounce"),
        ("shop:test", "complaint+1@example.com", "complaint"),
    ]


def test_test_suppressions_never_hold_back_live_mail(client, keys, run_worker, sandbox):
    submit(client, keys["test"], "bounce@example.com")
    run_worker()
    listed = client.get("/suppressions", headers=keys["test"]).get_json()["suppressions"]
    assert [entry["address"] for entry in listed] == ["bounce@example.com"]
    assert client.get("/suppressions", headers=keys["live"]).get_json()["suppressions"] == []
    again = submit(client, keys["test"], "bounce@example.com")
    live = submit(client, keys["live"], "bounce@example.com")
    run_worker()
    statuses = {
        mail_id: client.get(f"/mail/{mail_id}", headers=keys["live"]).get_json()["status"]
        for mail_id in (again, live)
    }
    assert statuses[again] == "suppressed"  # the test view holds test mail back
    assert statuses[live] != "suppressed" and len(sandbox.requests()) == 1


def test_test_mail_lists_apart_from_live_mail(client, keys):
    test_mail = submit(client, keys["test"], "ann@example.com")
    live_mail = submit(client, keys["live"], "ann@example.com")

    def listed(headers, query=""):
        page = client.get(f"/mail{query}", headers=headers).get_json()
        return [(mail["id"], mail["test"]) for mail in page["mails"]]

    assert listed(keys["test"]) == [(test_mail, True)]
    assert listed(keys["live"]) == [(live_mail, False)]
    assert listed(keys["live"], "?test=true") == [(test_mail, True)]
    assert listed(keys["test"], "?test=false") == [(live_mail, False)]
    bad = client.get("/mail?test=yes", headers=keys["live"])
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "test"
