"""Client webhooks several at once: many in flight, each verified with the Standard Webhooks
library, on kept-alive connections; one mail's webhooks never in flight together and never out
of order, through retries and across two senders; a receiver that fails and recovers gets each
webhook exactly once."""

import random
import threading
from collections import Counter, defaultdict

import pytest
from helpers import queue_mails, wait_for
from signed import mailgun_body

from integration.receiver import SECRET, Receiver
from mailer.config import load_config
from mailer.database import make_engine
from mailer.events import outbox
from mailer.events.sender import WebhookSender
from mailer.queue import webhooks

pytestmark = pytest.mark.committed

RECIPIENTS = ["ann@example.com", "bob@example.com", "cat@example.com"]


@pytest.fixture
def receiver():
    """A receiver on kept-alive connections that answers each webhook after 0 to 20 ms."""
    server = Receiver(delay=lambda: random.uniform(0, 0.02), keep_alive=True)
    yield server
    server.stop()


@pytest.fixture
def settings(settings, receiver):
    """The test settings with client webhooks on, to ``receiver``."""
    return {**settings, "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}


def in_background(run_worker, **overrides):
    """Start a worker on a thread; return it once it exists."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def by_mail(payloads):
    """``(type, recipient)`` of each payload, in the order received, per mail id."""
    seen = defaultdict(list)
    for payload in payloads:
        seen[payload["data"]["mail_id"]].append((payload["type"], payload["data"]["recipient"]))
    return dict(seen)


def outbox_ids(sql):
    """The webhook-id of every row of the outbox."""
    return {row["message_id"] for row in sql("SELECT message_id FROM webhook_outbox")}


def sent_count(sql):
    """How many mails are sent."""
    return sql("SELECT count(*) AS n FROM email WHERE status = 'sent'")[0]["n"]


def test_many_webhooks_go_out_at_once_on_kept_alive_connections(
    run_worker, receiver, settings, sql
):
    ids = queue_mails(settings["DATABASE_URL"], 200)
    in_background(run_worker, WEBHOOK_CONCURRENCY=16)
    wait_for(lambda: len(receiver.received) == 200, timeout=60, message="200 webhooks")
    payloads = receiver.verified()
    assert sorted(p["data"]["mail_id"] for p in payloads) == sorted(ids)
    assert {p["type"] for p in payloads} == {"mail.sent"}
    assert Counter(p["id"] for p in payloads).most_common(1)[0][1] == 1
    assert {p["id"] for p in payloads} == outbox_ids(sql)
    assert receiver.most_at_once > 1  # posted side by side, not one after another
    assert len(receiver.peers) <= 16  # a connection per post thread, kept alive
    assert receiver.overlaps == []


def test_one_mails_webhooks_arrive_in_the_order_they_were_raised(
    client, mail, run_worker, receiver, sql
):
    ids = [
        client.post("/mail", json={**mail, "to": RECIPIENTS}).get_json()["id"] for _ in range(30)
    ]
    receiver.answering.clear()  # the first webhooks wait in flight while the rest are raised
    in_background(run_worker, WEBHOOK_CONCURRENCY=16, WEBHOOK_TIMEOUT=60.0)
    wait_for(lambda: sent_count(sql) == 30, timeout=30, message="every mail sent")
    # Every recipient of every mail delivered, the mails interleaved at random: each mail's
    # webhooks must arrive in the order its events were.
    events = [(mail_id, address) for mail_id in ids for address in RECIPIENTS]
    random.shuffle(events)
    expected = {
        mail_id: [("mail.sent", None)] + [("mail.delivered", a) for m, a in events if m == mail_id]
        for mail_id in ids
    }
    for mail_id, address in events:
        answer = client.post(
            "/webhooks/mailgun", json=mailgun_body("delivered", address, mail_id=mail_id)
        )
        assert answer.status_code == 200, answer.get_json()
    receiver.answering.set()
    wait_for(lambda: len(receiver.received) == 120, timeout=60, message="120 webhooks")
    assert by_mail(receiver.verified()) == expected
    assert receiver.overlaps == []
    assert receiver.most_at_once > 1


def test_a_receiver_that_fails_then_recovers_gets_each_webhook_once_in_order(
    client, mail, run_worker, receiver, sql
):
    receiver.failing_until = float("inf")
    ids = [client.post("/mail", json=mail).get_json()["id"] for _ in range(40)]
    in_background(run_worker, WEBHOOK_CONCURRENCY=16)
    wait_for(lambda: sent_count(sql) == 40, timeout=30, message="every mail sent")
    for mail_id in ids:
        answer = client.post(
            "/webhooks/mailgun", json=mailgun_body("delivered", mail["to"], mail_id=mail_id)
        )
        assert answer.status_code == 200, answer.get_json()
    wait_for(
        lambda: (
            sql("SELECT count(*) AS n FROM webhook_attempt WHERE status_code = 503")[0]["n"] >= 20
        ),
        timeout=30,
        message="webhooks failing",
    )
    receiver.failing_until = 0.0
    wait_for(lambda: len(receiver.received) == 80, timeout=60, message="80 webhooks")
    payloads = receiver.verified()
    assert Counter(p["id"] for p in payloads).most_common(1)[0][1] == 1  # none twice
    assert {p["id"] for p in payloads} == outbox_ids(sql)
    assert by_mail(payloads) == {
        mail_id: [("mail.sent", None), ("mail.delivered", mail["to"])] for mail_id in ids
    }
    assert receiver.overlaps == []
    wait_for(
        lambda: (
            sql("SELECT status, count(*) AS n FROM webhook_outbox GROUP BY status")
            == [{"status": "delivered", "n": 80}]
        ),
        timeout=10,
        message="every webhook recorded as delivered",
    )


def write_webhooks(engine, ids, rounds):
    """Raise ``rounds`` webhooks per mail through the outbox, one statement per round, the
    mails shuffled in each; the recipient names the round."""
    for number in range(rounds):
        items = [(mail_id, outbox.DELIVERED, f"r{number}@example.com", None) for mail_id in ids]
        random.shuffle(items)
        with engine.begin() as conn:
            webhooks.insert(conn, items, outbox.EVENTS)


def test_two_senders_side_by_side_keep_each_mails_order(app, receiver, settings):
    ids = queue_mails(settings["DATABASE_URL"], 60)
    config = load_config(overrides={**settings, "WEBHOOK_CONCURRENCY": 8}, environ={})
    engines = [make_engine(config, pool_size=4, worker=True) for _ in range(2)]
    senders = [WebhookSender(engine, config) for engine in engines]
    try:
        write_webhooks(engines[0], ids, rounds=4)
        for sender in senders:
            sender.start()
        wait_for(lambda: len(receiver.received) == 240, timeout=60, message="240 webhooks")
    finally:
        for sender in senders:
            sender.stop()
        for engine in engines:
            engine.dispose()
    payloads = receiver.verified()
    assert by_mail(payloads) == {
        mail_id: [("mail.delivered", f"r{number}@example.com") for number in range(4)]
        for mail_id in ids
    }
    assert Counter(p["id"] for p in payloads).most_common(1)[0][1] == 1
    assert receiver.overlaps == []
    assert all(sender.outcomes["delivered"] > 0 for sender in senders)  # both took a share
