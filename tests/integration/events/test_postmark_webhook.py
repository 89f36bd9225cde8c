"""``POST /webhooks/postmark``: Postmark's events, authenticated by the basic auth of the
webhook URL, move recipients and mail; wrong or missing credentials change nothing (issue 20,
item 2)."""

import pytest
from signed import new_id, postmark_event, postmark_headers

from app import create_app

ANN, BOB = "ann@example.com", "bob@example.com"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def postmark(client, body, headers=None):
    """Post one Postmark event with the webhook's basic auth (or ``headers``)."""
    return client.post(
        "/webhooks/postmark", json=body, headers=postmark_headers() if headers is None else headers
    )


def statuses(client, mail_id):
    """(the mail's status, {recipient: status})."""
    body = client.get(f"/mail/{mail_id}").get_json()
    return body["status"], {r["address"]: r["status"] for r in body["recipients"]}


def count(sql, table):
    """Rows in ``table``."""
    return sql(f"SELECT count(*) AS n FROM {table}")[0]["n"]


def test_a_delivery_by_our_mail_id_and_one_by_postmarks_message_id(client, sent):
    mail_id = sent(to=ANN, cc=[BOB], provider="postmark", message_id=MESSAGE_ID)
    answer = postmark(client, postmark_event("Delivery", ANN, mail_id=mail_id))
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    assert statuses(client, mail_id) == ("sent", {ANN: "delivered", BOB: "sent"})
    postmark(client, postmark_event("Delivery", BOB, message_id=MESSAGE_ID))
    assert statuses(client, mail_id) == ("delivered", {ANN: "delivered", BOB: "delivered"})
    events = client.get(f"/mail/{mail_id}").get_json()["events"]
    assert {(e["type"], e["provider"]) for e in events} == {("delivered", "postmark")}


def test_a_hard_bounce_suppresses_and_a_soft_one_defers(client, sent, sql):
    mail_id = sent(to=ANN, cc=[BOB], provider="postmark", message_id=MESSAGE_ID)
    postmark(client, postmark_event("Bounce", ANN, mail_id=mail_id, Type="HardBounce"))
    postmark(client, postmark_event("Bounce", BOB, mail_id=mail_id, Type="SoftBounce"))
    assert statuses(client, mail_id) == ("bounced", {ANN: "bounced", BOB: "deferred"})
    [entry] = client.get("/suppressions").get_json()["suppressions"]
    assert (entry["address"], entry["reason"]) == (ANN, "bounce")


@pytest.mark.parametrize(
    "body, reason",
    [
        (postmark_event("SpamComplaint", ANN, Type="SpamComplaint"), "complaint"),
        (
            postmark_event(
                "SubscriptionChange",
                ANN,
                SuppressSending=True,
                SuppressionReason="ManualSuppression",
                ChangedAt="2026-01-01T00:00:00Z",
            ),
            "unsubscribe",
        ),
    ],
)
def test_complaints_and_unsubscribes_suppress(client, sent, body, reason):
    mail_id = sent(to=ANN, provider="postmark")
    answer = postmark(client, {**body, "Metadata": {"mail_id": mail_id}})
    assert answer.get_json()["new"] == 1
    assert client.get("/suppressions").get_json()["suppressions"][0]["reason"] == reason


def test_a_replay_is_a_repeat_that_changes_nothing(client, sent, sql):
    mail_id = sent(to=ANN, provider="postmark")
    delivery = postmark_event("Delivery", ANN, mail_id=mail_id)
    bounce = postmark_event("Bounce", ANN, mail_id=mail_id, Type="SoftBounce")
    for body in (delivery, bounce):
        assert postmark(client, body).get_json()["new"] == 1
        assert postmark(client, body).get_json() == {
            "success": True,
            "received": 1,
            "new": 0,
            "repeats": 1,
            "unmatched": 0,
        }
    assert count(sql, "delivery_event") == 2


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "Missing"),
        (postmark_headers(("postmark", "guess")), "Wrong"),
        (postmark_headers(("someone", "guess")), "Wrong"),
        ({"Authorization": "Bearer token"}, "Missing"),
    ],
)
def test_missing_or_wrong_basic_auth_is_401_and_stores_nothing(client, sent, sql, headers, message):
    mail_id = sent(to=ANN, provider="postmark")
    answer = postmark(
        client, postmark_event("Bounce", ANN, mail_id=mail_id, Type="HardBounce"), headers
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    [error] = answer.get_json()["errors"]
    assert error["field"] == "Authorization" and error["message"].startswith(message)
    assert statuses(client, mail_id) == ("sent", {ANN: "sent"})
    assert count(sql, "delivery_event") == count(sql, "suppression") == 0


def test_a_body_that_is_not_a_postmark_event_is_400(client, sql):
    answer = postmark(client, {"RecordType": "Delivery", "Recipient": ANN})
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "body"
    assert count(sql, "delivery_event") == 0


def test_an_event_for_an_unknown_mail_is_200_unmatched(client, sql):
    answer = postmark(client, postmark_event("Delivery", ANN, mail_id=new_id()))
    assert answer.status_code == 200 and answer.get_json()["unmatched"] == 1
    assert count(sql, "delivery_event") == 0


@pytest.mark.parametrize("unset", ["POSTMARK_WEBHOOK_USERNAME", "POSTMARK_WEBHOOK_PASSWORD"])
def test_the_endpoint_is_off_until_both_credentials_are_set(settings, unset):
    client = create_app({**settings, unset: ""}).test_client()
    answer = postmark(client, postmark_event("Delivery", ANN, mail_id=new_id()))
    assert answer.status_code == 404
    assert unset in answer.get_json()["errors"][0]["message"]
    other = next(
        name for name in ("POSTMARK_WEBHOOK_USERNAME", "POSTMARK_WEBHOOK_PASSWORD") if name != unset
    )
    assert other not in answer.get_json()["errors"][0]["message"]


def test_a_client_that_keeps_guessing_gets_429(settings, app, sql):
    guessed = create_app({**settings, "AUTH_FAILURE_LIMIT": 2}).test_client()
    wrong = postmark_headers(("postmark", "guess"))
    body = postmark_event("Delivery", ANN, mail_id=new_id())
    codes = [postmark(guessed, body, wrong).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert postmark(guessed, body).status_code == 200  # the right credentials still pass
