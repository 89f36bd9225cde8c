"""Client webhooks per tenant: each tenant's mail's webhooks go to its own endpoints only,
signed with each endpoint's own secret (verified with the Standard Webhooks library); a
disabled or deleted endpoint gets nothing; an endpoint whose host resolves to loopback is
refused at delivery, not only at creation."""

import threading

import pytest
from helpers import wait_for
from signed import mailgun_body
from standardwebhooks import Webhook

from app import create_app
from integration.receiver import SECRET, Receiver
from mailer import database, principals
from mailer.api import auth

pytestmark = pytest.mark.committed


@pytest.fixture
def receivers():
    """Three receivers on loopback: the settings' WEBHOOK_URL's, and one per tenant."""
    servers = {name: Receiver() for name in ("settings", "shop", "billing")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def settings(settings, receivers):
    """Client webhooks to the settings' receiver (the default tenant's endpoint); tenants'
    endpoints on loopback over http allowed, as in development."""
    return {
        **settings,
        "WEBHOOK_URL": receivers["settings"].url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_ALLOW_HTTP": True,
        "WEBHOOK_ALLOW_PRIVATE": True,
    }


@pytest.fixture
def key(app):
    """Make a stored key of ``tenant`` that sends mail and manages webhooks; its headers."""

    def make(tenant):
        with app.app_context():
            with database.transaction() as conn:
                new = principals.issue(
                    conn,
                    {
                        "name": f"{tenant} app",
                        "tenant": tenant,
                        "scopes": ["mail:send", "mail:read", "webhooks:manage"],
                    },
                    principals.LOCAL,
                    "test",
                )
            auth.keys_changed()
        return {"Authorization": f"Bearer {new.key}"}

    return make


def endpoint(client, headers, url, **fields):
    """Create an endpoint; its answer (with the secret)."""
    answer = client.post("/webhook-endpoints", json={"url": url, **fields}, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def in_background(run_worker, **overrides):
    """Start a worker on a thread; return it once it exists."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def verified(receiver, secret):
    """The payloads ``receiver`` got, each verified with ``secret`` (raises if one fails)."""
    return [Webhook(secret).verify(body, headers) for headers, body in receiver.received]


def test_each_tenant_receives_only_its_own_webhooks_signed_with_its_own_secret(
    client, mail, key, receivers, run_worker, sql
):
    shop, billing, default = key("shop"), key("billing"), key("default")
    shop_secret = endpoint(client, shop, receivers["shop"].url)["secret"]
    billing_secret = endpoint(client, billing, receivers["billing"].url)["secret"]
    mails = {
        name: client.post("/mail", json={**mail, "subject": name}, headers=headers).get_json()["id"]
        for name, headers in (("shop", shop), ("billing", billing), ("default", default))
    }
    in_background(run_worker)
    for name in ("shop", "billing", "settings"):
        wait_for(lambda r=receivers[name]: r.received, timeout=15, message=f"{name}'s webhook")

    def mail_ids(receiver, secret):
        return [(p["type"], p["data"]["mail_id"]) for p in verified(receiver, secret)]

    assert mail_ids(receivers["shop"], shop_secret) == [("mail.sent", mails["shop"])]
    assert mail_ids(receivers["billing"], billing_secret) == [("mail.sent", mails["billing"])]
    assert mail_ids(receivers["settings"], SECRET) == [("mail.sent", mails["default"])]
    with pytest.raises(Exception, match="signature"):  # the other tenant's secret fails
        verified(receivers["shop"], billing_secret)
    wait_for(
        lambda: (
            sql("SELECT count(*) AS n FROM webhook_outbox WHERE status = 'delivered'")[0]["n"] == 3
        ),
        timeout=10,
        message="each delivery recorded",
    )
    rows = sql(
        "SELECT o.tenant, e.url FROM webhook_outbox o LEFT JOIN webhook_endpoint e "
        "ON e.id = o.endpoint_id ORDER BY o.tenant"
    )
    assert rows == [
        {"tenant": "billing", "url": receivers["billing"].url},
        {"tenant": "default", "url": None},
        {"tenant": "shop", "url": receivers["shop"].url},
    ]


def test_every_endpoint_of_a_tenant_gets_the_events_it_takes(
    client, mail, key, receivers, run_worker
):
    shop = key("shop")
    all_events = endpoint(client, shop, receivers["shop"].url)["secret"]
    endpoint(client, shop, receivers["billing"].url, events=["mail.delivered"])
    mail_id = client.post("/mail", json=mail, headers=shop).get_json()["id"]
    in_background(run_worker)
    wait_for(lambda: receivers["shop"].received, timeout=15, message="mail.sent")
    assert [p["data"]["mail_id"] for p in verified(receivers["shop"], all_events)] == [mail_id]
    assert receivers["billing"].calls == 0  # it takes mail.delivered only
    assert receivers["settings"].calls == 0  # shop's mail is not the default tenant's


def test_a_disabled_or_deleted_endpoint_gets_nothing(client, mail, key, receivers, run_worker, sql):
    shop, billing = key("shop"), key("billing")
    paused = endpoint(client, shop, receivers["shop"].url)["id"]
    gone = endpoint(client, shop, receivers["settings"].url)["id"]
    billing_secret = endpoint(client, billing, receivers["billing"].url)["secret"]
    changed = client.patch(f"/webhook-endpoints/{paused}", json={"disabled": True}, headers=shop)
    assert changed.get_json()["disabled"] is True
    assert client.delete(f"/webhook-endpoints/{gone}", headers=shop).status_code == 204
    client.post("/mail", json=mail, headers=shop)
    billing_mail = client.post("/mail", json=mail, headers=billing).get_json()["id"]
    in_background(run_worker)
    # A send's webhooks are written with it: once both are sent, every webhook there is.
    wait_for(
        lambda: sql("SELECT count(*) AS n FROM email WHERE status = 'sent'")[0]["n"] == 2,
        timeout=15,
        message="both mails sent",
    )
    wait_for(lambda: receivers["billing"].received, timeout=15, message="billing's webhook")
    assert [p["data"]["mail_id"] for p in verified(receivers["billing"], billing_secret)] == [
        billing_mail
    ]
    assert receivers["shop"].calls == 0 and receivers["settings"].calls == 0
    assert sql("SELECT tenant FROM webhook_outbox") == [{"tenant": "billing"}]


def test_a_loopback_endpoint_is_refused_at_delivery_without_the_setting(
    client, mail, key, receivers, run_worker, sql, settings
):
    shop = key("shop")
    # Created while loopback was allowed (or while its name resolved elsewhere): localhost
    # resolves to 127.0.0.1, which the worker, without WEBHOOK_ALLOW_PRIVATE, refuses.
    url = receivers["shop"].url.replace("127.0.0.1", "localhost")
    endpoint(client, shop, url)
    client.post("/mail", json=mail, headers=shop)
    in_background(run_worker, WEBHOOK_ALLOW_PRIVATE=False)
    attempts = wait_for(
        lambda: sql("SELECT status_code, error FROM webhook_attempt"),
        timeout=15,
        message="the refused attempt",
    )
    assert attempts[0]["status_code"] is None
    assert attempts[0]["error"].startswith("refused: localhost resolves to 127.0.0.1")
    assert "loopback" in attempts[0]["error"]
    assert receivers["shop"].calls == 0
    [row] = sql("SELECT status, last_error FROM webhook_outbox")
    assert row["status"] == "pending" and row["last_error"] == attempts[0]["error"]


def test_a_providers_event_raises_a_tenants_webhook_without_a_webhook_url(
    client, mail, key, receivers, settings, sql
):
    # No WEBHOOK_URL: the events' statement builds webhooks only because a tenant's endpoint
    # is there, and not at all once it is gone.
    bare = create_app({**settings, "WEBHOOK_URL": "", "WEBHOOK_SECRET": ""}).test_client()
    shop = key("shop")
    shop_endpoint = endpoint(client, shop, receivers["shop"].url)["id"]
    first, second = (
        client.post("/mail", json=mail, headers=shop).get_json()["id"] for _ in range(2)
    )
    sql("UPDATE email SET status = 'sent', provider = 'mailgun'")
    sql(
        "INSERT INTO recipient (email_id, address, status) "
        "SELECT id, unnest(recipients), 'sent' FROM email"
    )
    delivered = mailgun_body("delivered", mail["to"], mail_id=first)
    assert bare.post("/webhooks/mailgun", json=delivered).status_code == 200
    written = sql(
        "SELECT event_type, email_id::text AS mail, endpoint_id::text AS endpoint "
        "FROM webhook_outbox"
    )
    assert written == [{"event_type": "mail.delivered", "mail": first, "endpoint": shop_endpoint}]
    assert client.delete(f"/webhook-endpoints/{shop_endpoint}", headers=shop).status_code == 204
    delivered = mailgun_body("delivered", mail["to"], mail_id=second)
    assert bare.post("/webhooks/mailgun", json=delivered).status_code == 200
    assert sql("SELECT status FROM email WHERE id = :id", id=second) == [{"status": "delivered"}]
    assert sql("SELECT count(*) AS n FROM webhook_outbox WHERE email_id = :id", id=second) == [
        {"n": 0}
    ]
