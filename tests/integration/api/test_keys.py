"""Stored keys and tenants: keys made with ``POST /keys`` (and ``flask keys create``), shown
once; each tenant's keys see and act on that tenant's mail, suppressions and templates only;
scopes, ``allowed_from_domains``, ``rate_limit`` and ``daily_quota``; revoked keys; and no key
in a log or a later answer. ``API_KEYS`` (here ``ROOT``) is the default tenant with every
scope."""

import logging
import uuid

import pytest
from helpers import sample_mail

from mailer import principals
from mailer.queue import suppressions

ROOT = "root-key-for-tests"
EVERYTHING = [
    "mail:send",
    "mail:read",
    "mail:manage",
    "suppressions:read",
    "suppressions:write",
    "templates:read",
    "templates:write",
]


@pytest.fixture
def settings(settings):
    """The test settings with an ``API_KEYS`` key (the operator's: every scope)."""
    return {**settings, "API_KEYS": ROOT}


def bearer(key):
    """The Authorization header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


def make_key(client, tenant, scopes=EVERYTHING, by=ROOT, **fields):
    """POST /keys as ``by``: the new key's body (with ``key``)."""
    answer = client.post(
        "/keys",
        json={"name": f"{tenant} app", "tenant": tenant, "scopes": scopes, **fields},
        headers=bearer(by),
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def as_key(client, key):
    """A caller of the API with ``key``: ``call(method, path, **kwargs)``."""

    def call(method, path, **kwargs):
        return client.open(path, method=method, headers=bearer(key), **kwargs)

    return call


def error_fields(answer):
    """The fields an error answer names."""
    return [error["field"] for error in answer.get_json()["errors"]]


def test_a_key_is_shown_once_and_stored_as_its_hash(client, sql):
    made = make_key(client, "shop")
    key = made["key"]
    assert key.startswith("mk_live_") and len(key) >= len("mk_live_") + 32
    assert made["prefix"] == key[:12] and made["last4"] == key[-4:]
    assert made["tenant"] == "shop" and made["scopes"] == EVERYTHING
    [row] = sql("SELECT key_hash FROM api_key")
    assert row["key_hash"] == principals.hash_of(key)
    listed = client.get("/keys", headers=bearer(ROOT))
    assert listed.status_code == 200
    assert key not in listed.get_data(as_text=True)
    assert row["key_hash"] not in listed.get_data(as_text=True)
    [shown] = listed.get_json()["keys"]
    assert shown["id"] == made["id"] and shown["last4"] == key[-4:] and "key" not in shown
    test_key = make_key(client, "shop", test=True)["key"]
    assert test_key.startswith("mk_test_")


def test_two_tenants_each_see_and_act_on_their_own_mail_only(client):
    shop = as_key(client, make_key(client, "shop")["key"])
    billing = as_key(client, make_key(client, "billing")["key"])
    shop_mail = shop("POST", "/mail", json=sample_mail(subject="shop")).get_json()
    billing_mail = billing("POST", "/mail", json=sample_mail(subject="billing")).get_json()
    assert shop_mail["tenant"] == "shop" and shop_mail["api_key_id"] is not None
    assert billing_mail["tenant"] == "billing"

    def listed(call, query=""):
        return [mail["id"] for mail in call("GET", f"/mail{query}").get_json()["mails"]]

    assert listed(shop) == [shop_mail["id"]]
    assert listed(billing) == [billing_mail["id"]]
    unknown = shop("GET", f"/mail/{uuid.uuid4()}")
    for path in ("", "/events"):
        others = shop("GET", f"/mail/{billing_mail['id']}{path}")
        assert others.status_code == 404 and others.get_json() == unknown.get_json()
    for action in ("cancel", "retry"):
        others = shop("POST", f"/mail/{billing_mail['id']}/{action}")
        assert others.status_code == 404 and others.get_json() == unknown.get_json()
    assert billing("GET", f"/mail/{billing_mail['id']}").get_json()["status"] == "queued"
    assert shop("POST", f"/mail/{shop_mail['id']}/cancel").status_code == 200
    assert shop("POST", f"/mail/{shop_mail['id']}/retry").status_code == 202
    assert billing("POST", f"/mail/{billing_mail['id']}/cancel").status_code == 200
    # The operator's key sees every tenant's, and may list one.
    root = as_key(client, ROOT)
    assert set(listed(root)) == {shop_mail["id"], billing_mail["id"]}
    assert listed(root, "?tenant=billing") == [billing_mail["id"]]
    forbidden = shop("GET", "/mail?tenant=billing")
    assert forbidden.status_code == 403 and error_fields(forbidden) == ["tenant"]
    assert root("GET", f"/mail/{shop_mail['id']}").get_json()["tenant"] == "shop"
    metrics = root("GET", "/metrics").get_data(as_text=True)
    assert 'mail_submitted_total{tenant="shop"}' in metrics
    assert 'mail_submitted_total{tenant="billing"}' in metrics


def test_each_tenant_has_its_own_suppressions_and_templates(client, app, sql):
    shop = as_key(client, make_key(client, "shop")["key"])
    billing = as_key(client, make_key(client, "billing")["key"])
    added = shop("POST", "/suppressions", json={"address": "gone@example.com"})
    assert added.status_code == 201 and added.get_json()["tenant"] == "shop"
    assert billing("GET", "/suppressions").get_json()["suppressions"] == []
    assert billing("DELETE", "/suppressions/gone@example.com").status_code == 404
    [entry] = shop("GET", "/suppressions").get_json()["suppressions"]
    assert entry["address"] == "gone@example.com"
    # The worker holds back shop's mail to it, not billing's; an operator's '*' entry both.
    with app.app_context():
        from models import db

        conn = db.session.connection()
        suppressions.add(conn, "all@example.com", tenant=suppressions.ALL_TENANTS)
        blocked = suppressions.active(
            conn, {"gone@example.com", "all@example.com"}, {"shop", "billing"}
        )
    assert set(suppressions.for_tenant(blocked, "shop")) == {"gone@example.com", "all@example.com"}
    assert set(suppressions.for_tenant(blocked, "billing")) == {"all@example.com"}

    template = {"name": "welcome", "subject": "Hi {{ name }}", "text": "Hello {{ name }}"}
    assert shop("POST", "/templates", json=template).status_code == 201
    assert billing("GET", "/templates/welcome").status_code == 404
    assert billing("GET", "/templates").get_json()["templates"] == []
    mail = sample_mail(template="welcome", variables={"name": "Ann"})
    del mail["subject"], mail["text"]
    assert billing("POST", "/mail", json=mail).status_code == 400
    assert billing("POST", "/templates", json={**template, "subject": "Yo"}).status_code == 201
    sent = shop("POST", "/mail", json=mail).get_json()
    assert sent["subject"] == "Hi Ann"
    assert billing("POST", "/mail", json=mail).get_json()["subject"] == "Yo"


def test_a_key_without_the_scope_is_403_naming_it(client):
    reader = as_key(client, make_key(client, "shop", scopes=["mail:read"])["key"])
    answer = reader("POST", "/mail", json=sample_mail())
    assert answer.status_code == 403
    assert answer.get_json()["errors"] == [{"field": "scope", "message": "needs mail:send"}]
    assert reader("GET", "/mail").status_code == 200
    needs = {
        ("POST", "/mail/batch"): "mail:send",
        ("POST", f"/mail/{uuid.uuid4()}/cancel"): "mail:manage",
        ("GET", "/suppressions"): "suppressions:read",
        ("POST", "/suppressions"): "suppressions:write",
        ("GET", "/templates"): "templates:read",
        ("POST", "/templates/x/render"): "templates:read",
        ("POST", "/templates"): "templates:write",
        ("GET", "/keys"): "keys:manage",
        ("POST", "/keys"): "keys:manage",
    }
    for (method, path), scope in needs.items():
        answer = reader(method, path, json={})
        assert answer.status_code == 403, (method, path)
        assert answer.get_json()["errors"] == [{"field": "scope", "message": f"needs {scope}"}]


def test_a_keys_manager_manages_its_own_tenant_s_keys_only(client):
    manager_key = make_key(client, "shop", scopes=["keys:manage"])
    other = make_key(client, "billing")
    manager = as_key(client, manager_key["key"])
    refused = manager(
        "POST", "/keys", json={"name": "x", "tenant": "billing", "scopes": EVERYTHING}
    )
    assert refused.status_code == 400 and error_fields(refused) == ["tenant"]
    refused = manager("POST", "/keys", json={"name": "x", "scopes": ["admin"]})
    assert refused.status_code == 400 and error_fields(refused) == ["scopes"]
    made = manager("POST", "/keys", json={"name": "checkout", "scopes": ["mail:send"]})
    assert made.status_code == 201 and made.get_json()["tenant"] == "shop"
    listed = {key["id"] for key in manager("GET", "/keys").get_json()["keys"]}
    assert listed == {manager_key["id"], made.get_json()["id"]}
    assert manager("GET", "/keys?tenant=billing").status_code == 403
    assert manager("DELETE", f"/keys/{other['id']}").status_code == 404
    assert manager("DELETE", f"/keys/{made.get_json()['id']}").status_code == 204


def test_a_revoked_key_stops_working(client):
    made = make_key(client, "shop")
    shop = as_key(client, made["key"])
    assert shop("GET", "/mail").status_code == 200
    assert client.delete(f"/keys/{made['id']}", headers=bearer(ROOT)).status_code == 204
    answer = shop("GET", "/mail")
    assert answer.status_code == 401 and error_fields(answer) == ["Authorization"]
    [listed] = client.get("/keys", headers=bearer(ROOT)).get_json()["keys"]
    assert listed["revoked_at"] is not None and listed["last_used_at"] is not None


def test_allowed_from_domains_refuses_other_senders_naming_the_domain(client):
    shop = as_key(client, make_key(client, "shop", allowed_from_domains=["Shop.example"])["key"])
    assert shop("POST", "/mail", json=sample_mail(**{"from": "a@shop.example"})).status_code == 202
    refused = shop("POST", "/mail", json=sample_mail(**{"from": "a@evil.example"}))
    assert refused.status_code == 403 and error_fields(refused) == ["from"]
    assert "evil.example" in refused.get_json()["errors"][0]["message"]
    batch = [sample_mail(**{"from": "a@shop.example"}), sample_mail(**{"from": "b@x.example"})]
    refused = shop("POST", "/mail/batch", json=batch)
    assert refused.status_code == 403 and error_fields(refused) == ["[1].from"]


def test_the_daily_quota_counts_each_mail_of_a_batch(client):
    shop = as_key(client, make_key(client, "shop", daily_quota=3)["key"])
    assert shop("POST", "/mail/batch", json=[sample_mail(), sample_mail()]).status_code == 202
    assert shop("POST", "/mail/batch", json=[sample_mail(), sample_mail()]).status_code == 429
    assert shop("POST", "/mail", json=sample_mail()).status_code == 202
    refused = shop("POST", "/mail", json=sample_mail())
    assert refused.status_code == 429 and error_fields(refused) == ["daily_quota"]
    assert 0 < int(refused.headers["Retry-After"]) <= 86400


def test_the_rate_limit_answers_429_with_retry_after(client):
    shop = as_key(client, make_key(client, "shop", rate_limit=0.01)["key"])
    assert shop("POST", "/mail", json=sample_mail()).status_code == 202
    refused = shop("POST", "/mail", json=sample_mail())
    assert refused.status_code == 429 and error_fields(refused) == ["rate_limit"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 100


def test_flask_keys_create_prints_a_working_key(app, client):
    result = app.test_cli_runner().invoke(
        args=[
            "keys",
            "create",
            "--tenant",
            "shop",
            "--name",
            "checkout",
            "--scopes",
            "mail:send,mail:read",
        ]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("mk_live_") and "\n" not in key
    shop = as_key(client, key)
    assert shop("POST", "/mail", json=sample_mail()).status_code == 202
    assert shop("GET", "/mail").get_json()["mails"][0]["tenant"] == "shop"
    assert shop("POST", "/suppressions", json={"address": "a@example.com"}).status_code == 403


def test_keys_never_appear_in_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    made = make_key(client, "shop")
    shop = as_key(client, made["key"])
    shop("POST", "/mail", json=sample_mail())
    shop("GET", "/mail")
    as_key(client, made["key"] + "x")("GET", "/mail")
    client.delete(f"/keys/{made['id']}", headers=bearer(ROOT))
    shop("GET", "/mail")
    assert made["key"] not in caplog.text
    assert made["key"][8:] not in caplog.text
