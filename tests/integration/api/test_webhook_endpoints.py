"""``/webhook-endpoints``: a tenant's client webhook endpoints, each with a secret shown once;
scope ``webhooks:manage``; another tenant's endpoints are unknown; URLs that would reach the
operator's network are refused."""

import pytest

from mailer import database, principals
from mailer.api import auth

PUBLIC = "https://hooks.example.com/mail"  # resolves to nothing here, or to public addresses


@pytest.fixture
def key(app):
    """Make a stored key of ``tenant`` with ``scopes``; its Authorization header."""

    def make(tenant, scopes=("webhooks:manage",)):
        with app.app_context():
            with database.transaction() as conn:
                new = principals.issue(
                    conn,
                    {"name": f"{tenant} key", "tenant": tenant, "scopes": list(scopes)},
                    principals.LOCAL,
                    "test",
                )
            auth.keys_changed()
        return {"Authorization": f"Bearer {new.key}"}

    return make


def create(client, headers, url=PUBLIC, **fields):
    """POST /webhook-endpoints; the response."""
    return client.post("/webhook-endpoints", json={"url": url, **fields}, headers=headers)


def test_an_endpoint_is_created_with_its_secret_shown_once(client, key, sql):
    shop = key("shop")
    created = create(client, shop, events=["mail.delivered", "mail.bounced"])
    assert created.status_code == 201
    body = created.get_json()
    assert body["secret"].startswith("whsec_")
    assert body["url"] == PUBLIC and body["tenant"] == "shop" and body["disabled"] is False
    assert body["events"] == ["mail.delivered", "mail.bounced"]
    assert created.headers["Location"] == f"/webhook-endpoints/{body['id']}"
    read = client.get(f"/webhook-endpoints/{body['id']}", headers=shop)
    assert read.status_code == 200
    assert "secret" not in read.get_json() and body["secret"] not in read.get_data(as_text=True)
    listed = client.get("/webhook-endpoints", headers=shop).get_json()
    assert [e["id"] for e in listed["endpoints"]] == [body["id"]]
    assert body["secret"] not in str(listed)
    # Stored as it is: it signs.
    assert sql("SELECT secret FROM webhook_endpoint")[0]["secret"] == body["secret"]


def test_a_tenant_sees_and_changes_only_its_own_endpoints(client, key):
    shop, billing = key("shop"), key("billing")
    mine = create(client, shop).get_json()["id"]
    theirs = create(client, billing).get_json()["id"]
    assert [
        e["id"] for e in client.get("/webhook-endpoints", headers=shop).get_json()["endpoints"]
    ] == [mine]
    for method in ("get", "patch", "delete"):
        answer = getattr(client, method)(f"/webhook-endpoints/{theirs}", headers=shop, json={})
        assert answer.status_code == 404, method
        assert answer.get_json()["errors"] == [{"field": "endpoint_id", "message": "Unknown"}]
    assert client.get("/webhook-endpoints/not-an-id", headers=shop).status_code == 404
    assert client.get(f"/webhook-endpoints/{theirs}", headers=billing).status_code == 200


def test_patch_changes_url_events_and_disabled(client, key):
    shop = key("shop")
    endpoint = create(client, shop).get_json()["id"]
    changed = client.patch(
        f"/webhook-endpoints/{endpoint}",
        headers=shop,
        json={"url": "https://other.example.com/h", "events": ["mail.sent"], "disabled": True},
    )
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["url"], body["events"], body["disabled"]) == (
        "https://other.example.com/h",
        ["mail.sent"],
        True,
    )
    again = client.patch(f"/webhook-endpoints/{endpoint}", headers=shop, json={"disabled": False})
    assert again.get_json()["disabled"] is False
    assert again.get_json()["url"] == "https://other.example.com/h"
    bad = client.patch(f"/webhook-endpoints/{endpoint}", headers=shop, json={"events": ["nope"]})
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "events"


def test_delete_answers_204_then_404(client, key, sql):
    shop = key("shop")
    endpoint = create(client, shop).get_json()["id"]
    assert client.delete(f"/webhook-endpoints/{endpoint}", headers=shop).status_code == 204
    assert client.delete(f"/webhook-endpoints/{endpoint}", headers=shop).status_code == 404
    assert client.get(f"/webhook-endpoints/{endpoint}", headers=shop).status_code == 404
    assert client.get("/webhook-endpoints", headers=shop).get_json()["endpoints"] == []
    assert sql("SELECT secret FROM webhook_endpoint") == [{"secret": ""}]


def test_every_operation_needs_the_scope(client, key):
    reader = key("shop", scopes=("mail:read", "mail:send"))
    owner = key("shop")
    endpoint = create(client, owner).get_json()["id"]
    answers = [
        create(client, reader),
        client.get("/webhook-endpoints", headers=reader),
        client.get(f"/webhook-endpoints/{endpoint}", headers=reader),
        client.patch(f"/webhook-endpoints/{endpoint}", headers=reader, json={"disabled": True}),
        client.delete(f"/webhook-endpoints/{endpoint}", headers=reader),
    ]
    for answer in answers:
        assert answer.status_code == 403
        assert answer.get_json()["errors"] == [
            {"field": "scope", "message": "needs webhooks:manage"}
        ]


@pytest.mark.parametrize(
    "url, says",
    [
        ("https://localhost/hooks", "loopback"),
        ("https://127.0.0.1:8443/hooks", "loopback"),
        ("https://[::1]/hooks", "loopback"),
        ("https://[::ffff:127.0.0.1]/hooks", "loopback"),
        ("https://2130706433/hooks", "loopback"),  # 127.0.0.1 as one number
        ("https://10.1.2.3/hooks", "private"),
        ("https://192.168.1.10/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hooks", "link-local"),
        ("https://0.0.0.0/hooks", "unspecified"),
        ("https://224.0.0.1/hooks", "multicast"),
        ("https://100.64.0.1/hooks", "non-public"),
        ("http://hooks.example.com/mail", "https"),
        ("ftp://hooks.example.com/mail", "https"),
        ("https://user:pw@hooks.example.com/mail", "credentials"),
        ("https:///nohost", "host"),
    ],
)
def test_urls_that_would_reach_the_operators_network_are_refused(client, key, url, says):
    shop = key("shop")
    answer = create(client, shop, url=url)
    assert answer.status_code == 400, answer.get_json()
    [error] = answer.get_json()["errors"]
    assert error["field"] == "url" and says in error["message"]
    endpoint = create(client, shop).get_json()["id"]
    changed = client.patch(f"/webhook-endpoints/{endpoint}", headers=shop, json={"url": url})
    assert changed.status_code == 400 and changed.get_json()["errors"][0]["field"] == "url"


def test_the_settings_allow_http_and_private_addresses(app, client, key):
    shop = key("shop")
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    assert create(client, shop, url="http://localhost:8080/hooks").status_code == 201
    assert create(client, shop, url="https://10.1.2.3/hooks").status_code == 201
    app.config.update(WEBHOOK_ALLOW_PRIVATE=False)
    assert create(client, shop, url="http://localhost:8080/hooks").status_code == 400


def test_listing_pages_with_a_cursor(client, key):
    shop = key("shop")
    made = [create(client, shop).get_json()["id"] for _ in range(3)]
    first = client.get("/webhook-endpoints?limit=2", headers=shop).get_json()
    assert first["count"] == 2 and first["next_cursor"]
    rest = client.get(
        f"/webhook-endpoints?limit=2&cursor={first['next_cursor']}", headers=shop
    ).get_json()
    assert rest["next_cursor"] is None
    listed = [e["id"] for e in first["endpoints"] + rest["endpoints"]]
    assert sorted(listed) == sorted(made)  # each once (newest first; one transaction's are ties)
    assert client.get("/webhook-endpoints?cursor=zzz", headers=shop).status_code == 400
