"""The audit log through the API: each change a managing key makes to suppressions and
templates appears exactly once, with who, tenant, target and client, and no secret; GET /audit
answers by scope (admin: every tenant, keys:manage: its own), pages by cursor, and checks its
query; rows are never updated, and only the purge deletes them."""

import json

import pytest
from sqlalchemy.exc import DBAPIError

from integration.keyring import make_key
from mailer.database import transaction
from mailer.queue import audit

TEMPLATE = {"name": "welcome", "subject": "Hi {{ name }}", "text": "Hello {{ name }}"}


def rows(sql, **where):
    """The audit log's rows (``where``: column = value), oldest first."""
    clause = " AND ".join(f"{column} = :{column}" for column in where) or "true"
    return sql(
        "SELECT actor, key_id::text, tenant, action, target, summary, client FROM audit_log "
        f"WHERE {clause} ORDER BY id",
        **where,
    )


def test_suppression_changes_are_logged_once_each(app, client, sql):
    headers, key_id = make_key(app, "shop", ["suppressions:write"], name="ops-bot")
    body = {"address": "Ann <ann@Example.com>", "reason": "manual", "detail": "asked us"}
    assert client.post("/suppressions", json=body, headers=headers).status_code == 201
    assert client.post("/suppressions", json=body, headers=headers).status_code == 200
    assert client.delete("/suppressions/ann@example.com", headers=headers).status_code == 204
    assert client.delete("/suppressions/ann@example.com", headers=headers).status_code == 404
    assert rows(sql) == [
        {
            "actor": "key:ops-bot",
            "key_id": key_id,
            "tenant": "shop",
            "action": "suppression.add",
            "target": "ann@example.com",
            "summary": {"reason": "manual", "detail": "asked us"},
            "client": "127.0.0.1",
        },
        {
            "actor": "key:ops-bot",
            "key_id": key_id,
            "tenant": "shop",
            "action": "suppression.remove",
            "target": "ann@example.com",
            "summary": {},
            "client": "127.0.0.1",
        },
    ]


def test_template_changes_are_logged_once_each(app, client, sql):
    headers, _ = make_key(app, "shop", ["templates:write", "templates:read"])
    assert client.post("/templates", json=TEMPLATE, headers=headers).status_code == 201
    assert client.post("/templates", json=TEMPLATE, headers=headers).status_code == 409
    again = {"subject": "Hello {{ name }}", "text": "Hi", "description": "shorter"}
    assert client.put("/templates/welcome", json=again, headers=headers).status_code == 201
    assert client.get("/templates/welcome", headers=headers).status_code == 200
    assert client.delete("/templates/welcome", headers=headers).status_code == 204
    assert client.delete("/templates/welcome", headers=headers).status_code == 404
    logged = [(row["action"], row["target"], row["summary"]) for row in rows(sql)]
    assert logged == [
        ("template.create", "welcome", {"version": 1, "description": None}),
        ("template.version", "welcome", {"version": 2, "description": "shorter"}),
        ("template.delete", "welcome", {}),
    ]


def test_reads_and_mail_are_not_logged(app, client, sql, mail):
    headers, _ = make_key(app, "shop", ["mail:send", "mail:read", "suppressions:read"])
    assert client.post("/mail", json=mail, headers=headers).status_code == 202
    assert client.get("/mail", headers=headers).status_code == 200
    assert client.get("/suppressions", headers=headers).status_code == 200
    assert rows(sql) == []


def test_no_secret_is_ever_stored(app, client, sql):
    headers, key_id = make_key(app, "shop", ["admin"], name="root")
    secrets = {
        "key": headers["Authorization"].split()[1],
        "secret": "whsec_c2VjcmV0",
        "password": "s3cret",
        "nested": [{"token": "t0ken", "url": "https://example.com/hook"}],
    }
    with app.app_context(), transaction() as conn:
        audit.record(conn, audit.key(key_id, "root"), "shop", "webhook.create", "ep_1", secrets)
    client.post("/suppressions", json={"address": "a@example.com"}, headers=headers)
    [stored] = rows(sql, action="webhook.create")
    assert stored["summary"] == {"nested": [{"url": "https://example.com/hook"}]}
    dumped = json.dumps([dict(row) for row in rows(sql)])
    for secret in ("whsec_c2VjcmV0", "s3cret", "t0ken", secrets["key"], secrets["key"][8:]):
        assert secret not in dumped


def test_get_audit_needs_keys_manage(app, client):
    headers, _ = make_key(app, "shop", ["mail:send", "mail:read", "suppressions:write"])
    answer = client.get("/audit", headers=headers)
    assert answer.status_code == 403
    assert answer.get_json()["errors"] == [{"field": "scope", "message": "needs keys:manage"}]


def test_a_tenant_reads_its_own_rows_and_admin_every_one(app, client):
    shop, _ = make_key(app, "shop", ["suppressions:write", "keys:manage"], name="shop-ops")
    billing, _ = make_key(app, "billing", ["suppressions:write", "keys:manage"])
    root, _ = make_key(app, "ops", ["admin"], name="root")
    client.post("/suppressions", json={"address": "a@example.com"}, headers=shop)
    client.post("/suppressions", json={"address": "b@example.com"}, headers=billing)

    def targets(headers, query=""):
        answer = client.get(f"/audit{query}", headers=headers)
        assert answer.status_code == 200, answer.get_json()
        return [entry["target"] for entry in answer.get_json()["entries"]]

    assert targets(shop) == ["a@example.com"]
    assert targets(billing) == ["b@example.com"]
    assert targets(root) == ["b@example.com", "a@example.com"]
    assert targets(root, "?tenant=shop") == ["a@example.com"]
    assert targets(root, "?action=suppression.add&target=b@example.com") == ["b@example.com"]
    assert targets(root, "?action=template.delete") == []
    refused = client.get("/audit?tenant=billing", headers=shop)
    assert refused.status_code == 403 and refused.get_json()["errors"][0]["field"] == "tenant"
    [entry] = client.get("/audit", headers=shop).get_json()["entries"]
    assert entry["actor"] == "key:shop-ops" and entry["tenant"] == "shop"
    assert entry["client"] == "127.0.0.1" and entry["at"].endswith("+00:00")


def test_pages_follow_the_cursor(app, client):
    root, _ = make_key(app, "ops", ["admin"])
    for n in range(5):
        client.post("/suppressions", json={"address": f"r{n}@example.com"}, headers=root)
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/audit{query}", headers=root).get_json()
        seen += [entry["target"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"r{n}@example.com" for n in reversed(range(5))]


@pytest.mark.parametrize(
    "query, field",
    [
        ("?cursor=bm90IGEgY3Vyc29y", "cursor"),
        ("?limit=0", "limit"),
        ("?tenant=no%20spaces", "tenant"),
        ("?action=", "action"),
        ("?colour=red", "colour"),
    ],
)
def test_a_bad_query_is_a_400_naming_it(app, client, query, field):
    root, _ = make_key(app, "ops", ["admin"])
    answer = client.get(f"/audit{query}", headers=root)
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == field


def test_rows_are_never_updated_and_purged_past_retention(app, client, sql):
    root, _ = make_key(app, "ops", ["admin"])
    client.post("/suppressions", json={"address": "new@example.com"}, headers=root)
    sql(
        "INSERT INTO audit_log (at, actor, action, target) "
        "VALUES (now() - interval '400 days', 'admin:ops', 'mail.cancel', 'old')"
    )
    sql("SAVEPOINT before_update")
    with pytest.raises(DBAPIError, match="append-only"):
        sql("UPDATE audit_log SET actor = 'someone else'")
    sql("ROLLBACK TO SAVEPOINT before_update")
    with app.app_context(), transaction() as conn:
        assert audit.purge(conn, app.config["AUDIT_RETENTION_DAYS"], 100) == 1
    assert [row["target"] for row in rows(sql)] == ["new@example.com"]


def test_keys_and_webhook_endpoints_are_audited_once_each_without_their_secrets(app, client, sql):
    headers, manager = make_key(app, "shop", ["keys:manage", "webhooks:manage"], name="ops")
    made = client.post("/keys", json={"name": "checkout", "scopes": ["mail:send"]}, headers=headers)
    assert made.status_code == 201, made.get_json()
    key, key_id = made.get_json()["key"], made.get_json()["id"]
    assert client.delete(f"/keys/{key_id}", headers=headers).status_code == 204
    endpoints = "/webhook-endpoints"
    created = client.post(endpoints, json={"url": "https://hooks.example.com/h"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    endpoint, secret = created.get_json()["id"], created.get_json()["secret"]
    changed = client.patch(f"{endpoints}/{endpoint}", json={"disabled": True}, headers=headers)
    assert changed.status_code == 200
    assert client.delete(f"{endpoints}/{endpoint}", headers=headers).status_code == 204
    logged = rows(sql)
    assert [(row["action"], row["target"]) for row in logged] == [
        ("key.create", key_id),
        ("key.revoke", key_id),
        ("webhook_endpoint.create", endpoint),
        ("webhook_endpoint.update", endpoint),
        ("webhook_endpoint.delete", endpoint),
    ]
    assert {(row["actor"], row["key_id"], row["tenant"]) for row in logged} == {
        ("key:ops", manager, "shop")
    }
    everything = json.dumps([row["summary"] for row in logged])
    assert key not in everything and key[-12:] not in everything and secret not in everything
    assert logged[0]["summary"]["scopes"] == ["mail:send"]
    assert logged[3]["summary"] == {"disabled": True}
