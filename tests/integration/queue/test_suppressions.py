"""The suppression list: the API, expiry, how addresses compare, and a worker that
never sends to a suppressed address, in to, cc or bcc, through either provider."""

import pytest
from helpers import mail_rows, queue_mails

from app import create_app


def suppress(client, address, **fields):
    """POST /suppressions."""
    return client.post("/suppressions", json={"address": address, **fields})


def listed(client, query=""):
    """The addresses GET /suppressions lists."""
    return [
        entry["address"] for entry in client.get(f"/suppressions{query}").get_json()["suppressions"]
    ]


# --- The API --------------------------------------------------------------------------------


def test_add_list_and_delete_an_address(client):
    added = suppress(client, "Ann <ann@Example.COM>", detail="asked by phone")
    assert added.status_code == 201
    assert added.get_json()["address"] == "ann@example.com"
    assert added.get_json()["reason"] == "manual" and added.get_json()["expires_at"] is None
    assert suppress(client, "ann@example.com").status_code == 200  # already on it
    assert listed(client) == ["ann@example.com"]
    assert client.delete("/suppressions/ann@EXAMPLE.com").status_code == 204
    assert listed(client) == []
    assert client.delete("/suppressions/ann@example.com").status_code == 404


def test_the_local_part_compares_as_given(client):
    suppress(client, "Ann@example.com")
    assert client.delete("/suppressions/ann@example.com").status_code == 404
    assert listed(client) == ["Ann@example.com"]


def test_pages_and_filter_by_reason(client):
    for index in range(5):
        suppress(client, f"r{index}@example.com", reason="bounce" if index % 2 else "complaint")
    first = client.get("/suppressions?limit=2").get_json()
    second = client.get(f"/suppressions?limit=2&cursor={first['next_cursor']}").get_json()
    third = client.get(f"/suppressions?limit=2&cursor={second['next_cursor']}").get_json()
    pages = [first, second, third]
    assert sum(page["count"] for page in pages) == 5 and third["next_cursor"] is None
    assert len({e["address"] for page in pages for e in page["suppressions"]}) == 5
    assert sorted(listed(client, "?reason=bounce")) == ["r1@example.com", "r3@example.com"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"address": "nobody"}, "address"),
        ({}, "address"),
        ({"address": "a@example.com", "reason": "dislike"}, "reason"),
        ({"address": "a@example.com", "reason": {}}, "reason"),
        ({"address": "a@example.com", "reason": ""}, "reason"),
        ({"address": "a@example.com", "colour": "red"}, "colour"),
    ],
)
def test_bad_requests_are_400(client, body, field):
    answer = client.post("/suppressions", json=body)
    assert answer.status_code == 400
    assert field in [error["field"] for error in answer.get_json()["errors"]]


def test_bad_queries_are_400(client):
    assert client.get("/suppressions?reason=x").status_code == 400
    assert client.get("/suppressions?cursor=garbage").status_code == 400
    assert client.get("/suppressions?colour=red").status_code == 400


def test_the_list_needs_the_api_key(settings):
    client = create_app({**settings, "API_KEYS": "secret-key"}).test_client()
    assert client.get("/suppressions").status_code == 401
    assert client.post("/suppressions", json={"address": "a@example.com"}).status_code == 401
    assert client.delete("/suppressions/a@example.com").status_code == 401
    assert client.get("/suppressions", headers={"X-API-Key": "secret-key"}).status_code == 200


def test_bounce_entries_expire_and_others_do_not(client, sql):
    suppress(client, "bounced@example.com", reason="bounce")
    suppress(client, "complained@example.com", reason="complaint")
    row = sql(
        "SELECT expires_at - created_at AS kept FROM suppression "
        "WHERE address = 'bounced@example.com'"
    )[0]
    assert row["kept"].days == 30
    sql("UPDATE suppression SET expires_at = now() - interval '1 second' WHERE reason = 'bounce'")
    assert listed(client) == ["complained@example.com"]
    assert suppress(client, "bounced@example.com", reason="bounce").status_code == 201  # anew


def test_a_complaint_outranks_a_bounce_but_not_the_reverse(client, sql):
    suppress(client, "a@example.com", reason="bounce")
    suppress(client, "a@example.com", reason="complaint")
    suppress(client, "a@example.com", reason="bounce")
    assert sql("SELECT reason, expires_at FROM suppression") == [
        {"reason": "complaint", "expires_at": None}
    ]


# --- The worker leaves suppressed addresses out --------------------------------------------


def received_addresses(sandbox):
    """Every address each message the sandbox accepted went to (to, cc and bcc)."""
    return [sorted(m["to"] + m["cc"] + m["bcc"]) for m in sandbox.messages()]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
@pytest.mark.committed
def test_a_suppressed_address_is_never_sent_to_in_to_cc_or_bcc(
    client, sandbox, run_worker, settings, provider
):
    for address in ("to2@example.com", "cc@Example.com", "BCC@example.com"):
        assert suppress(client, address, reason="complaint").status_code == 201
    mail = {
        "from": "s@example.com",
        "to": ["to1@example.com", "to2@EXAMPLE.com"],
        "cc": ["cc@example.com", "cc2@example.com"],
        "bcc": ["BCC@example.com"],
        "subject": "Hi",
        "text": "Hello",
    }
    mail_id = client.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS=provider)
    assert received_addresses(sandbox) == [["cc2@example.com", "to1@example.com"]]
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent"
    assert {r["address"]: r["status"] for r in body["recipients"]} == {
        "to1@example.com": "sent",
        "to2@example.com": "suppressed",
        "cc@example.com": "suppressed",
        "cc2@example.com": "sent",
        "BCC@example.com": "suppressed",
    }
    assert "complaint" in body["recipients"][1]["reason"]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
@pytest.mark.committed
def test_mail_to_suppressed_addresses_only_ends_suppressed_without_a_call(
    client, sandbox, run_worker, settings, provider
):
    suppress(client, "gone@example.com", reason="bounce")
    mail_id = client.post(
        "/mail",
        json={
            "from": "s@example.com",
            "to": "gone@example.com",
            "bcc": "gone@EXAMPLE.COM",
            "subject": "Hi",
            "text": "Hello",
        },
    ).get_json()["id"]
    run_worker(PROVIDERS=provider)
    assert sandbox.requests() == []
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "suppressed" and body["provider"] is None
    assert body["recipients"][0]["status"] == "suppressed"


@pytest.mark.committed
def test_with_every_to_suppressed_the_cc_take_its_place(client, sandbox, run_worker):
    suppress(client, "to@example.com")
    client.post(
        "/mail",
        json={
            "from": "s@example.com",
            "to": "to@example.com",
            "cc": "cc@example.com",
            "bcc": "bcc@example.com",
            "subject": "Hi",
            "text": "Hello",
        },
    )
    run_worker()
    message = sandbox.messages()[0]
    assert (message["to"], message["cc"], message["bcc"]) == (
        ["cc@example.com"],
        [],
        ["bcc@example.com"],
    )


@pytest.mark.committed
def test_an_expired_bounce_no_longer_suppresses(client, sandbox, run_worker, sql):
    suppress(client, "back@example.com", reason="bounce")
    sql("UPDATE suppression SET expires_at = now() - interval '1 second'")
    client.post(
        "/mail",
        json={"from": "s@example.com", "to": "back@example.com", "subject": "Hi", "text": "Hello"},
    )
    run_worker()
    assert received_addresses(sandbox) == [["back@example.com"]]


@pytest.mark.committed
def test_a_batch_of_mails_leaves_out_only_the_suppressed_one(client, sandbox, run_worker, settings):
    suppress(client, "rcpt7@example.com")
    ids = queue_mails(settings["DATABASE_URL"], 20)
    run_worker(WORKER_BATCH_SIZE=20)
    rows = mail_rows(settings["DATABASE_URL"])
    assert [rows[mail_id]["status"] for mail_id in ids] == ["sent"] * 7 + ["suppressed"] + [
        "sent"
    ] * 12
    assert len(sandbox.messages()) == 19
