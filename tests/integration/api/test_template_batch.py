"""POST /mail/batch with ``{"defaults", "mails"}``: each item merged over the defaults, rendered
from its template with its own variables, stored all or none."""

import pytest
from helpers import mail_rows

# Rows are read back through connections of their own, so they must be committed.
pytestmark = pytest.mark.committed

RECEIPT = {
    "name": "receipt",
    "subject": "Order {{ order_id }}",
    "html": "<p>Hi {{ first_name }}</p>",
}
DEFAULTS = {"from": "shop@example.com", "template": "receipt", "tags": ["receipts"]}


def personal(count):
    """``count`` items, each with its own recipient and variables."""
    return [
        {
            "to": f"rcpt{index}@example.com",
            "variables": {"first_name": f"P{index}", "order_id": str(index)},
        }
        for index in range(count)
    ]


def test_a_batch_of_personal_mails_renders_each_with_its_variables(client, settings):
    assert client.post("/templates", json=RECEIPT).status_code == 201
    response = client.post("/mail/batch", json={"defaults": DEFAULTS, "mails": personal(1000)})
    assert response.status_code == 202, response.get_json()
    ids = response.get_json()["ids"]
    rows = mail_rows(settings["DATABASE_URL"])
    assert len(rows) == 1000
    row = rows[ids[17]]
    assert row["subject"] == "Order 17" and row["html"] == "<p>Hi P17</p>"
    assert row["to_address"] == ["rcpt17@example.com"] and row["from_address"] == "shop@example.com"
    assert row["tags"] == ["receipts"] and row["template"] == "receipt"
    assert row["template_version"] == 1


def test_an_item_overrides_the_defaults(client, settings):
    client.post("/templates", json=RECEIPT)
    mails = personal(2)
    # null is "none": this item is rendered by the client, not from the default's template
    mails[1] = {"to": "own@example.com", "template": None, "subject": "Plain", "text": "Body"}
    mails[1]["tags"] = ["other"]
    response = client.post("/mail/batch", json={"defaults": DEFAULTS, "mails": mails})
    assert response.status_code == 202, response.get_json()
    first, second = (mail_rows(settings["DATABASE_URL"])[i] for i in response.get_json()["ids"])
    assert first["subject"] == "Order 0" and first["tags"] == ["receipts"]
    assert second["subject"] == "Plain" and second["tags"] == ["other"]
    assert second["template"] is None and second["from_address"] == "shop@example.com"


def test_bad_items_are_named_by_index_and_nothing_is_stored(client, settings):
    client.post("/templates", json=RECEIPT)
    mails = personal(20)
    del mails[17]["variables"]["order_id"]
    mails[3]["template"] = "nothing"
    mails[5]["to"] = "not an address"
    mails[8]["variables"] = "not an object"
    response = client.post("/mail/batch", json={"defaults": DEFAULTS, "mails": mails})
    assert response.status_code == 400
    fields = {(e["index"], e["field"]) for e in response.get_json()["errors"]}
    assert fields == {
        (17, "[17].variables.order_id"),
        (3, "[3].template"),
        (5, "[5].to"),
        (8, "[8].variables"),
    }
    assert mail_rows(settings["DATABASE_URL"]) == {}


@pytest.mark.parametrize("count", [2, 30])
def test_each_item_s_variables_are_bounded_whether_or_not_the_batch_s_fit_together(
    app, client, settings, count
):
    app.config["MAX_VARIABLES_BYTES"] = 1000
    client.post("/templates", json=RECEIPT)
    mails = personal(count)
    for mail in mails:
        # 400 bytes of UTF-8: two fit in 1,000 together, thirty do not
        mail["variables"]["note"] = "é" * 200
    assert (
        client.post("/mail/batch", json={"defaults": DEFAULTS, "mails": mails}).status_code == 202
    )
    mails[1]["variables"]["note"] = "é" * 500
    response = client.post("/mail/batch", json={"defaults": DEFAULTS, "mails": mails})
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["[1].variables"]


def test_the_batch_object_is_checked(client):
    for body in (
        {"defaults": DEFAULTS, "mails": []},
        {"defaults": DEFAULTS},
        {"defaults": DEFAULTS, "mails": personal(1001)},
    ):
        response = client.post("/mail/batch", json=body)
        assert response.status_code == 400 and response.get_json()["errors"][0]["field"] == "body"
    wrong = client.post("/mail/batch", json={"defaults": [1], "mails": personal(1)})
    assert wrong.get_json()["errors"][0]["field"] == "defaults"
    extra = client.post("/mail/batch", json={"mails": personal(1), "colour": 1})
    assert extra.get_json()["errors"][0]["field"] == "colour"


def test_an_idempotent_templated_batch_is_stored_once(client, settings):
    client.post("/templates", json=RECEIPT)
    body = {"defaults": DEFAULTS, "mails": personal(3)}
    headers = {"Idempotency-Key": "batch-1"}
    first = client.post("/mail/batch", json=body, headers=headers)
    again = client.post("/mail/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["ids"] == first.get_json()["ids"]
    assert len(mail_rows(settings["DATABASE_URL"])) == 3
