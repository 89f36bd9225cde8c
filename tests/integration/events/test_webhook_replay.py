"""Issue 19, items 1 and 2: a provider's signature signs one event, once, while it is fresh.

Mailgun's HMAC covers the timestamp and the token, not the event: every token that passes is
kept with its event, so that it signs no other (whatever the first one matched), while the
very same event again (Mailgun retrying) is a repeat. SendGrid's timestamps age like Mailgun's.
"""

import json
import threading
import time

import psycopg2
import pytest
from signed import (
    MAILGUN_SIGNING_KEY,
    SENDGRID_PRIVATE_KEY,
    mailgun_body,
    new_id,
    sendgrid_event,
    sendgrid_request,
)

from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_signature,
    sendgrid_sign,
)
from mailer.queue.webhook_tokens import event_digest

ANN = "ann@example.com"
DAY = 86400


@pytest.fixture
def sent(client, sql, mail):
    """A mail as the worker leaves it once Mailgun took it, to ANN; returns its id."""

    def make():
        mail_id = client.post("/mail", json={**mail, "to": ANN}).get_json()["id"]
        sql("UPDATE email SET status = 'sent', provider = 'mailgun' WHERE id = :id", id=mail_id)
        sql(
            "INSERT INTO recipient (email_id, address, status) VALUES (:id, :address, 'sent')",
            id=mail_id,
            address=ANN,
        )
        return mail_id

    return make


def untouched(client, sql, mail_id):
    """Whether the mail, its recipient and the suppression list are as ``sent`` left them."""
    body = client.get(f"/mail/{mail_id}").get_json()
    return (
        body["status"] == "sent"
        and [r["status"] for r in body["recipients"]] == ["sent"]
        and body["events"] == []
        and sql("SELECT count(*) AS n FROM suppression")[0]["n"] == 0
    )


def with_event_of(signed, other):
    """``signed``'s signature with ``other``'s event data: what a replay posts."""
    return {"signature": signed["signature"], "event-data": other["event-data"]}


# --- Mailgun: a token signs one event -------------------------------------------------------


def test_a_token_first_used_for_an_unknown_mail_signs_no_other_event(client, sent, sql):
    mail_id = sent()
    captured = mailgun_body("delivered", "someone@example.com", mail_id=new_id())
    first = client.post("/webhooks/mailgun", json=captured)
    assert first.status_code == 200 and first.get_json()["unmatched"] == 1
    complaint = mailgun_body("complained", ANN, mail_id=mail_id)
    replay = client.post("/webhooks/mailgun", json=with_event_of(captured, complaint))
    assert replay.status_code == 401
    assert replay.get_json()["errors"] == [
        {
            "field": "signature.token",
            "message": "Already used for another event: refused as a replay",
        }
    ]
    assert untouched(client, sql, mail_id)
    # The complaint with its own signature is taken: only the borrowed one was refused.
    assert client.post("/webhooks/mailgun", json=complaint).get_json()["new"] == 1


def test_a_token_used_for_one_mail_signs_no_event_of_another(client, sent, sql):
    first_mail, second_mail = sent(), sent()
    delivered = mailgun_body("delivered", ANN, mail_id=first_mail)
    assert client.post("/webhooks/mailgun", json=delivered).get_json()["new"] == 1
    bounce = mailgun_body("failed", ANN, mail_id=second_mail, severity="permanent")
    assert (
        client.post("/webhooks/mailgun", json=with_event_of(delivered, bounce)).status_code == 401
    )
    assert untouched(client, sql, second_mail)


def test_mailguns_retry_of_the_same_event_is_a_repeat_even_unmatched(client, sql):
    event = mailgun_body("delivered", ANN, mail_id=new_id())
    answers = [client.post("/webhooks/mailgun", json=event) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.get_json()["unmatched"] for answer in answers] == [1, 1, 1]
    # The same event written out otherwise (keys in another order, other spacing) is the same.
    rewritten = json.dumps(
        {"event-data": event["event-data"], "signature": event["signature"]}, indent=2
    )
    reordered = client.post("/webhooks/mailgun", data=rewritten, content_type="application/json")
    assert reordered.status_code == 200


def test_a_token_is_kept_until_its_timestamp_is_too_old_anyway(client, sql):
    event = mailgun_body("delivered", ANN, mail_id=new_id(), age=100)
    assert client.post("/webhooks/mailgun", json=event).status_code == 200
    [row] = sql(
        "SELECT event_digest, extract(epoch FROM expires_at) AS expires FROM webhook_token "
        "WHERE token = :token",
        token=event["signature"]["token"],
    )
    assert row["event_digest"] == event_digest(event["event-data"])
    assert float(row["expires"]) == pytest.approx(int(event["signature"]["timestamp"]) + DAY)


def test_a_token_whose_event_was_malformed_signs_no_other(client, sent, sql):
    mail_id = sent()
    malformed = mailgun_body("delivered", ANN, mail_id=mail_id)
    malformed["event-data"]["timestamp"] = "yesterday"
    assert client.post("/webhooks/mailgun", json=malformed).status_code == 400
    complaint = mailgun_body("complained", ANN, mail_id=mail_id)
    assert (
        client.post("/webhooks/mailgun", json=with_event_of(malformed, complaint)).status_code
        == 401
    )
    assert untouched(client, sql, mail_id)


def test_each_new_token_deletes_expired_ones(client, sql):
    sql(
        "INSERT INTO webhook_token (token, event_digest, expires_at) "
        "SELECT 'old-' || n, 'x', now() - interval '1 minute' FROM generate_series(1, 15) n"
    )
    sql(
        "INSERT INTO webhook_token (token, event_digest, expires_at) "
        "VALUES ('fresh', 'x', now() + interval '1 hour')"
    )
    client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN, mail_id=new_id()))
    assert sql("SELECT count(*) AS n FROM webhook_token WHERE token LIKE 'old-%'")[0]["n"] == 5
    client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN, mail_id=new_id()))
    tokens = {row["token"] for row in sql("SELECT token FROM webhook_token")}
    assert not any(token.startswith("old-") for token in tokens) and "fresh" in tokens
    assert len(tokens) == 3


@pytest.mark.committed
def test_a_first_use_in_flight_elsewhere_is_waited_for(app, database_url):
    # Two API processes take the same token at once: the second waits for the first's
    # transaction, then compares with the event that one stored.
    captured = mailgun_body("delivered", ANN, mail_id=new_id())
    other = mailgun_body("complained", ANN, mail_id=new_id())
    elsewhere = psycopg2.connect(database_url)
    try:
        with elsewhere.cursor() as cursor:
            cursor.execute(
                "INSERT INTO webhook_token VALUES (%s, %s, now() + interval '1 day')",
                (captured["signature"]["token"], event_digest(captured["event-data"])),
            )
        answers = []
        post = threading.Thread(
            target=lambda: answers.append(
                app.test_client().post("/webhooks/mailgun", json=with_event_of(captured, other))
            )
        )
        post.start()
        time.sleep(0.5)
        assert answers == []  # waiting on the uncommitted first use
        elsewhere.commit()
        post.join(10)
        assert answers[0].status_code == 401
        assert app.test_client().post("/webhooks/mailgun", json=captured).status_code == 200
    finally:
        elsewhere.close()


# --- Stale timestamps, Mailgun's and SendGrid's ------------------------------------------------


def sendgrid_at(timestamp, events):
    """A SendGrid batch signed with the right key, its timestamp header being ``timestamp``."""
    raw = json.dumps(events).encode()
    return raw, {
        SENDGRID_TIMESTAMP: timestamp,
        SENDGRID_SIGNATURE: sendgrid_sign(SENDGRID_PRIVATE_KEY, timestamp, raw),
        "Content-Type": "application/json",
    }


STALE = [
    ("1577836800", "2020-01-01"),
    (str(int(time.time()) + 10 * DAY), "10 days ahead"),
    ("not-a-time", "not a number"),
    ("nan", "not a number either"),
    ("inf", "infinitely far ahead"),
]


@pytest.mark.parametrize("timestamp, why", STALE, ids=[why for _, why in STALE])
def test_sendgrid_refuses_a_stale_future_or_unreadable_timestamp(client, sent, sql, timestamp, why):
    mail_id = sent()
    raw, headers = sendgrid_at(timestamp, [sendgrid_event("spamreport", ANN, mail_id)])
    answer = client.post("/webhooks/sendgrid", data=raw, headers=headers)
    assert answer.status_code == 401, why
    assert answer.get_json()["errors"][0]["field"] == SENDGRID_TIMESTAMP
    assert untouched(client, sql, mail_id)


def test_sendgrid_takes_a_timestamp_within_the_window(client, sent):
    mail_id = sent()
    hour_ago = str(int(time.time()) - 3600)
    raw, headers = sendgrid_at(hour_ago, [sendgrid_event("delivered", ANN, mail_id)])
    assert client.post("/webhooks/sendgrid", data=raw, headers=headers).get_json()["new"] == 1
    fresh_raw, fresh_headers = sendgrid_request([])
    assert (
        client.post("/webhooks/sendgrid", data=fresh_raw, headers=fresh_headers).status_code == 200
    )


def test_webhook_max_age_applies_to_sendgrid(client, app):
    app.config["WEBHOOK_MAX_AGE"] = 60
    raw, headers = sendgrid_at(str(int(time.time()) - 120), [])
    assert client.post("/webhooks/sendgrid", data=raw, headers=headers).status_code == 401


def test_mailgun_refuses_an_unreadable_timestamp(client, sent, sql):
    mail_id = sent()
    body = mailgun_body("complained", ANN, mail_id=mail_id)
    token = body["signature"]["token"]
    body["signature"] = {
        "timestamp": "not-a-time",
        "token": token,
        "signature": mailgun_signature(MAILGUN_SIGNING_KEY, "not-a-time", token),
    }
    answer = client.post("/webhooks/mailgun", json=body)
    assert answer.status_code == 401
    assert answer.get_json()["errors"][0]["field"] == "signature.timestamp"
    assert untouched(client, sql, mail_id)
