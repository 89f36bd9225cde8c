"""Protected mode holds against web pages, DNS rebinding and proxies; no guessing."""

import pytest

from app import create_app

ORIGIN_CASES = [
    ({"Host": "attacker.example"}, "a rebinding Host"),
    ({"Host": "attacker.example:5000"}, "a rebinding Host with a port"),
    ({"Origin": "https://evil.example"}, "a cross-site Origin"),
    ({"Origin": "null"}, "an opaque Origin (sandboxed frame, file://)"),
    ({"Sec-Fetch-Site": "cross-site"}, "a cross-site fetch"),
    ({"Sec-Fetch-Site": "same-site"}, "another port of localhost"),
]


@pytest.mark.parametrize("headers, why", ORIGIN_CASES)
def test_protected_api_refuses_web_pages_and_rebinding(client, sql, mail, headers, why):
    response = client.post("/mail", data=mail, headers=headers)
    assert response.status_code == 401, why
    assert response.get_json()["errors"][0]["field"] == "Authorization"
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


@pytest.mark.parametrize("headers, why", ORIGIN_CASES)
def test_protected_admin_refuses_web_pages_and_rebinding(client, headers, why):
    assert client.get("/admin/email/", headers=headers).status_code == 401, why


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Host": "localhost:5000"},
        {"Host": "127.0.0.1:5000"},
        {"Host": "[::1]:5000"},
        {"Origin": "http://127.0.0.1:5000", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_protected_mode_still_serves_local_tools_and_its_own_pages(client, mail, headers):
    assert client.post("/mail", json=mail, headers=headers).status_code == 202
    assert client.get("/admin/email/", headers=headers).status_code == 200


def test_the_start_up_log_says_protected_mode_is_for_a_developer(settings, app, caplog):
    create_app({**settings, "API_KEYS": "", "ADMIN_PASSWORD": ""})
    [line] = [r.getMessage() for r in caplog.records if "protected mode" in r.getMessage()]
    assert "developer's machine" in line and "proxy" in line


def test_wrong_api_keys_are_throttled_per_address(settings, app, mail):
    app = create_app(
        {**settings, "API_KEYS": "right-key", "AUTH_FAILURE_LIMIT": 3, "AUTH_BLOCK_SECONDS": 120}
    )
    client = app.test_client()
    wrong = {"Authorization": "Bearer wrong"}
    assert [client.post("/mail", json=mail, headers=wrong).status_code for _ in range(3)] == [
        401,
        401,
        401,
    ]
    blocked = client.post("/mail", json=mail, headers=wrong)
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 120
    assert blocked.get_json()["errors"][0]["field"] == "Authorization"
    # A valid key is never refused for the failures of others at the same address (issue 19).
    right = client.post("/mail", json=mail, headers={"Authorization": "Bearer right-key"})
    assert right.status_code == 202
    other = app.test_client()
    response = other.get(
        "/mail/x",
        headers={"Authorization": "Bearer wrong"},
        environ_base={"REMOTE_ADDR": "127.0.0.2"},
    )
    assert response.status_code == 401  # another address is not blocked


def test_wrong_admin_passwords_are_throttled(settings, app):
    app = create_app({**settings, "ADMIN_PASSWORD": "s3cret", "AUTH_FAILURE_LIMIT": 2})
    client = app.test_client()
    assert [client.get("/admin/", auth=("admin", "guess")).status_code for _ in range(2)] == [
        401,
        401,
    ]
    assert client.get("/admin/", auth=("admin", "guess")).status_code == 429
    assert client.get("/admin/", auth=("admin", "s3cret")).status_code == 200


def test_get_on_mail_batch_is_405_allowing_post(client):
    response = client.get("/mail/batch")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}
    assert response.get_json()["success"] is False
    options = client.options("/mail/batch")
    assert "GET" not in options.headers["Allow"]
    assert client.get("/mail/not-a-uuid").status_code == 404
