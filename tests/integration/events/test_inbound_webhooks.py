"""``mail.received`` reaches the client: signed (verified with the Standard Webhooks
library), at the endpoint of the received mail's tenant (the tenant of the mail it answers, the
settings' ``WEBHOOK_URL`` for one that answers none), once however often the provider posts the
same delivery."""

import threading

import pytest
from helpers import sample_mail, wait_for
from standardwebhooks import Webhook

from integration.inbound_mail import inbound_mail, take
from integration.keyring import make_key
from integration.receiver import SECRET, Receiver

pytestmark = pytest.mark.committed


@pytest.fixture
def receivers():
    """The settings' WEBHOOK_URL's receiver and a tenant's, on loopback."""
    servers = {name: Receiver() for name in ("settings", "shop")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def settings(settings, receivers):
    """Client webhooks to the settings' receiver; tenants' endpoints on loopback allowed."""
    return {
        **settings,
        "WEBHOOK_URL": receivers["settings"].url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE": True,
    }


def in_background(run_worker):
    """Start a worker on a thread (it posts the outbox's webhooks); return it once it exists."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def test_mail_received_reaches_the_tenants_endpoint_once(app, client, receivers, run_worker, sql):
    shop, _ = make_key(app, "shop", ["mail:send", "mail:read", "webhooks:manage"])
    created = client.post(
        "/webhook-endpoints",
        json={"url": receivers["shop"].url, "events": ["mail.received"]},
        headers=shop,
    ).get_json()
    mail_id = client.post("/mail", json=sample_mail(), headers=shop).get_json()["id"]
    reply = inbound_mail(in_reply_to=f"<{mail_id}@example.com>", subject="Re: Hello")
    received = take(app, reply)
    assert take(app, reply).inbound_id == received.inbound_id  # the provider posts it again
    unlinked = take(app, inbound_mail(subject="A question")).inbound_id
    in_background(run_worker)
    wait_for(lambda: receivers["shop"].received, timeout=15, message="the shop's mail.received")
    wait_for(
        lambda: receivers["settings"].received, timeout=15, message="the default's mail.received"
    )
    [shop_payload] = [
        Webhook(created["secret"]).verify(body, headers)
        for headers, body in receivers["shop"].received
    ]
    assert shop_payload["type"] == "mail.received"
    data = shop_payload["data"]
    assert data.pop("received_at").endswith("Z")
    assert data == {
        "inbound_id": str(received.inbound_id),
        "from": "Ann <ann@example.org>",
        "to": ["Support <support@in.example.com>"],
        "subject": "Re: Hello",
        "in_reply_to_mail_id": mail_id,
        "auto_reply": False,
        "url": f"/inbound/{received.inbound_id}",
    }
    fetched = client.get(data["url"], headers=shop)
    assert fetched.status_code == 200 and fetched.get_json()["subject"] == "Re: Hello"
    settings_payloads = [
        Webhook(SECRET).verify(body, headers) for headers, body in receivers["settings"].received
    ]
    assert [(p["type"], p["data"]["inbound_id"]) for p in settings_payloads] == [
        ("mail.received", str(unlinked))
    ]
    rows = sql(
        "SELECT tenant, email_id, inbound_id FROM webhook_outbox "
        "WHERE event_type = 'mail.received' ORDER BY tenant"
    )
    assert rows == [
        {"tenant": "default", "email_id": None, "inbound_id": unlinked},
        {"tenant": "shop", "email_id": None, "inbound_id": received.inbound_id},
    ]
