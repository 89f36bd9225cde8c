"""The admin's API keys: made with the form (the key shown once, on the answer's page), listed
without the key, and revoked (the key stops working)."""

import re

from helpers import sample_mail

from integration.admin.pages import csrf_token


def test_the_admin_makes_lists_and_revokes_a_key(client, sql):
    token = csrf_token(client, "/admin/api_key/new/")
    made = client.post(
        "/admin/api_key/new/",
        data={
            "name": "checkout",
            "tenant": "shop",
            "scopes": ["mail:send", "mail:read"],
            "allowed_from_domains": "",
            "rate_limit": "",
            "daily_quota": "",
            "csrf_token": token,
        },
    )
    assert made.status_code == 200
    key = re.search(r"mk_live_[A-Za-z0-9_-]{43}", made.get_data(as_text=True)).group(0)
    assert "Set-Cookie" not in made.headers or key not in made.headers["Set-Cookie"]
    [row] = sql("SELECT id, tenant, name, scopes FROM api_key")
    assert (row["tenant"], row["name"], row["scopes"]) == (
        "shop",
        "checkout",
        ["mail:send", "mail:read"],
    )
    listed = client.get("/admin/api_key/").get_data(as_text=True)
    assert "checkout" in listed and key[-4:] in listed and key not in listed
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/mail", json=sample_mail(), headers=headers).status_code == 202
    answer = client.post(
        "/admin/api_key/action/",
        data={"action": "revoke", "rowid": str(row["id"]), "csrf_token": token},
    )
    assert answer.status_code == 302
    assert sql("SELECT revoked_at IS NOT NULL AS revoked FROM api_key")[0]["revoked"]
    assert client.post("/mail", json=sample_mail(), headers=headers).status_code == 401


def test_a_wrong_key_form_names_the_field(client, sql):
    token = csrf_token(client, "/admin/api_key/new/")
    answer = client.post(
        "/admin/api_key/new/",
        data={"name": "x", "tenant": "bad tenant!", "scopes": ["mail:send"], "csrf_token": token},
    )
    assert "tenant:" in answer.get_data(as_text=True)
    assert sql("SELECT count(*) AS n FROM api_key")[0]["n"] == 0
