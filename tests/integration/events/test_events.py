"""Events in: signed Mailgun and SendGrid webhooks, statuses that only move forward,
the timeline, and what a tampered, unsigned, stale, replayed or malformed request gets."""

import json
import logging
import threading
import time

import pytest
from helpers import wait_for
from signed import (
    SENDGRID_PRIVATE_KEY,
    mailgun_body,
    new_id,
    sendgrid_event,
    sendgrid_request,
)
from sqlalchemy import create_engine

from app import create_app
from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    new_sendgrid_keys,
    sendgrid_sign,
)

ANN, BOB = "ann@example.com", "bob@example.com"


def mailgun(client, body):
    """Post a Mailgun event."""
    return client.post("/webhooks/mailgun", json=body)


def sendgrid(client, events, raw=None, headers=None):
    """Post a signed SendGrid batch (or ``raw`` bytes with ``headers``)."""
    body, signed_headers = sendgrid_request(events)
    return client.post(
        "/webhooks/sendgrid",
        data=raw if raw is not None else body,
        headers=headers if headers is not None else signed_headers,
    )


def mail_of(client, mail_id):
    """The mail as GET /mail/<id> shows it."""
    return client.get(f"/mail/{mail_id}").get_json()


def statuses(client, mail_id):
    """(the mail's status, {recipient: status})."""
    body = mail_of(client, mail_id)
    return body["status"], {r["address"]: r["status"] for r in body["recipients"]}


def count(sql, table):
    """Rows in ``table``."""
    return sql(f"SELECT count(*) AS n FROM {table}")[0]["n"]


# --- Valid events move statuses -----------------------------------------------------------------


def test_a_mailgun_delivery_moves_the_mail_to_delivered_with_a_timeline(client, sent):
    mail_id = sent()
    answer = mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id))
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    body = mail_of(client, mail_id)
    assert body["status"] == "delivered"
    assert body["recipients"] == [
        {
            "address": ANN,
            "status": "delivered",
            "reason": None,
            "updated_at": body["recipients"][0]["updated_at"],
        }
    ]
    assert [(e["type"], e["provider"], e["recipient"]) for e in body["events"]] == [
        ("delivered", "mailgun", ANN)
    ]


def test_a_mail_is_delivered_only_once_every_recipient_is(client, sent):
    mail_id = sent(to=ANN, cc=[BOB])
    mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id))
    assert statuses(client, mail_id) == ("sent", {ANN: "delivered", BOB: "sent"})
    mailgun(client, mailgun_body("delivered", BOB, mail_id=mail_id))
    assert statuses(client, mail_id) == ("delivered", {ANN: "delivered", BOB: "delivered"})


def test_events_find_their_mail_by_the_providers_message_id(client, sent):
    by_mailgun = sent(message_id="<20260101.xyz@mg.example.com>")
    by_sendgrid = sent(provider="sendgrid", message_id="W86EgYT6SQKk0lRflfLRsA")
    mailgun(client, mailgun_body("delivered", ANN, message_id="20260101.xyz@mg.example.com"))
    answer = sendgrid(
        client,
        [
            sendgrid_event(
                "delivered", ANN, sg_message_id="W86EgYT6SQKk0lRflfLRsA.filter0425p1las1-14525-0.0"
            )
        ],
    )
    assert answer.get_json()["new"] == 1
    assert mail_of(client, by_mailgun)["status"] == "delivered"
    assert mail_of(client, by_sendgrid)["status"] == "delivered"


def test_a_temporary_mailgun_failure_is_a_deferral_not_a_bounce(client, sent, sql):
    mail_id = sent()
    mailgun(client, mailgun_body("failed", ANN, mail_id=mail_id, severity="temporary"))
    assert statuses(client, mail_id) == ("sent", {ANN: "deferred"})
    assert count(sql, "suppression") == 0
    mailgun(client, mailgun_body("failed", ANN, mail_id=mail_id, severity="permanent"))
    body = mail_of(client, mail_id)
    assert body["status"] == "bounced"
    assert body["recipients"][0]["reason"] == "550 5.1.1 mailbox unknown"
    entry = sql(
        "SELECT reason, email_id::text AS mail, expires_at > now() + interval '29 days' "
        "AS expires_later FROM suppression WHERE address = :a",
        a=ANN,
    )[0]
    assert entry == {"reason": "bounce", "mail": mail_id, "expires_later": True}


@pytest.mark.parametrize(
    "event, reason", [("complained", "complaint"), ("unsubscribed", "unsubscribe")]
)
def test_complaints_and_unsubscribes_suppress_for_good(client, sent, sql, event, reason):
    mail_id = sent()
    mailgun(client, mailgun_body(event, ANN, mail_id=mail_id))
    assert sql("SELECT reason, expires_at FROM suppression") == [
        {"reason": reason, "expires_at": None}
    ]


def test_sendgrid_types_map_like_mailgun_ones(client, sent, sql):
    ids = {kind: sent(to=f"{kind}@example.com") for kind in ("bounce", "blocked", "spam")}
    answer = sendgrid(
        client,
        [
            sendgrid_event(
                "bounce",
                "bounce@example.com",
                ids["bounce"],
                type="bounce",
                reason="550 no such user",
            ),
            sendgrid_event("bounce", "blocked@example.com", ids["blocked"], type="blocked"),
            sendgrid_event("spamreport", "spam@example.com", ids["spam"]),
            sendgrid_event("open", "spam@example.com", ids["spam"]),
        ],
    )
    assert answer.get_json() == {
        "success": True,
        "received": 4,
        "new": 4,
        "repeats": 0,
        "unmatched": 0,
    }
    assert mail_of(client, ids["bounce"])["status"] == "bounced"
    assert statuses(client, ids["blocked"]) == ("sent", {"blocked@example.com": "deferred"})
    assert mail_of(client, ids["spam"])["status"] == "complained"
    assert [e["type"] for e in mail_of(client, ids["spam"])["events"]] == ["complained", "opened"]
    assert {row["address"]: row["reason"] for row in sql("SELECT * FROM suppression")} == {
        "bounce@example.com": "bounce",
        "spam@example.com": "complaint",
    }


# --- Out of order: statuses never move back -------------------------------------------------


def test_a_late_deferral_never_undoes_a_delivery(client, sent):
    mail_id = sent()
    mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id))
    mailgun(client, mailgun_body("failed", ANN, mail_id=mail_id, severity="temporary"))
    sendgrid(
        client,
        [sendgrid_event("deferred", ANN, mail_id), sendgrid_event("processed", ANN, mail_id)],
    )
    assert statuses(client, mail_id) == ("delivered", {ANN: "delivered"})
    assert len(mail_of(client, mail_id)["events"]) == 4  # every one is on the timeline


def test_a_complaint_after_delivery_moves_it_forward(client, sent):
    mail_id = sent()
    mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id))
    mailgun(client, mailgun_body("complained", ANN, mail_id=mail_id))
    mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id))
    assert statuses(client, mail_id) == ("complained", {ANN: "complained"})


def test_events_of_one_batch_in_any_order_reach_the_furthest(client, sent):
    mail_id = sent()
    sendgrid(
        client,
        [
            sendgrid_event("spamreport", ANN, mail_id),
            sendgrid_event("delivered", ANN, mail_id),
            sendgrid_event("deferred", ANN, mail_id),
        ],
    )
    assert statuses(client, mail_id) == ("complained", {ANN: "complained"})


def test_a_batch_rolls_each_mail_up_from_every_one_of_its_recipients(client, sent):
    half, whole = sent(to=ANN, cc=[BOB]), sent(to=ANN, cc=[BOB])
    answer = sendgrid(
        client,
        [
            sendgrid_event("delivered", ANN, half),
            sendgrid_event("deferred", BOB, whole),
            sendgrid_event("delivered", ANN, whole),
            sendgrid_event("delivered", BOB, whole),
        ],
    )
    assert answer.get_json()["new"] == 4
    assert statuses(client, half) == ("sent", {ANN: "delivered", BOB: "sent"})
    assert statuses(client, whole) == ("delivered", {ANN: "delivered", BOB: "delivered"})
    again = sendgrid(client, [sendgrid_event("delivered", BOB, half)]).get_json()
    assert (again["new"], statuses(client, half)) == (
        1,
        ("delivered", {ANN: "delivered", BOB: "delivered"}),
    )


@pytest.mark.committed
def test_a_batch_waiting_for_another_on_its_mail_rolls_up_what_both_said(
    client, sent, sql, database_url
):
    """A batch locks its mails before it reads their recipients: one that waits for another
    batch's transaction on the same mail sees what that one moved, so that the last of the two
    rolls the mail up from every recipient (reading them before the lock, each would see the
    other's recipient still sent, and the mail would stay sent)."""
    mail_id = sent(to=ANN, cc=[BOB], provider="sendgrid")
    engine = create_engine(database_url)
    answers = []
    try:
        with engine.connect() as first:
            batch = first.begin()  # as record_events: the mail locked, then ANN moved
            first.exec_driver_sql("SELECT id FROM email WHERE id = %s FOR UPDATE", (mail_id,))
            first.exec_driver_sql(
                "UPDATE recipient SET status = 'delivered' WHERE email_id = %s AND address = %s",
                (mail_id, ANN),
            )
            poster = threading.Thread(
                target=lambda: answers.append(
                    sendgrid(client, [sendgrid_event("delivered", BOB, mail_id)])
                )
            )
            poster.start()
            wait_for(
                lambda: sql(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE "
                    "wait_event_type = 'Lock' AND datname = current_database()"
                )[0]["n"],
                30,
                message="the second batch to wait for the lock",
            )
            batch.commit()
            poster.join(60)
    finally:
        engine.dispose()
    assert answers[0].get_json()["new"] == 1
    assert statuses(client, mail_id) == ("delivered", {ANN: "delivered", BOB: "delivered"})


def test_timeline_is_oldest_first_by_the_providers_clock(client, sent):
    mail_id = sent()
    late = sendgrid_event("delivered", ANN, mail_id)
    early = {**sendgrid_event("processed", ANN, mail_id), "timestamp": late["timestamp"] - 60}
    sendgrid(client, [late, early])
    assert [e["type"] for e in mail_of(client, mail_id)["events"]] == ["accepted", "delivered"]


# --- Refused or ignored, and nothing stored -----------------------------------------------------


def test_a_tampered_mailgun_event_is_401_and_stores_nothing(client, sent, sql):
    mail_id = sent()
    body = mailgun_body("delivered", ANN, mail_id=mail_id)
    body["signature"]["timestamp"] = str(int(body["signature"]["timestamp"]) + 1)
    assert mailgun(client, body).status_code == 401
    body = mailgun_body("delivered", ANN, mail_id=mail_id)
    body["event-data"]["recipient"] = BOB  # the event is not signed; its token and time are
    body["signature"]["token"] = body["signature"]["token"][::-1]
    assert mailgun(client, body).status_code == 401
    wrong_key = mailgun_body("delivered", ANN, mail_id=mail_id, key="not-the-key")
    assert mailgun(client, wrong_key).status_code == 401
    assert count(sql, "delivery_event") == 0 and mail_of(client, mail_id)["status"] == "sent"


@pytest.mark.parametrize(
    "body",
    [
        {"event-data": {"event": "delivered"}},
        {"signature": {"timestamp": "1", "token": "t"}, "event-data": {"event": "delivered"}},
        {"signature": "nope", "event-data": {}},
    ],
)
def test_an_unsigned_mailgun_event_is_401(client, sql, body):
    answer = mailgun(client, body)
    assert answer.status_code == 401
    assert answer.get_json()["success"] is False
    assert count(sql, "delivery_event") == 0


@pytest.mark.parametrize("age", [86400 + 120, -600])
def test_stale_or_future_mailgun_timestamps_are_refused(client, sent, sql, age):
    mail_id = sent()
    answer = mailgun(client, mailgun_body("delivered", ANN, mail_id=mail_id, age=age))
    assert answer.status_code == 401
    assert answer.get_json()["errors"][0]["field"] == "signature.timestamp"
    assert count(sql, "delivery_event") == 0 and mail_of(client, mail_id)["status"] == "sent"


def test_a_replayed_mailgun_event_answers_200_and_changes_nothing(client, sent, sql):
    mail_id = sent()
    body = mailgun_body("failed", ANN, mail_id=mail_id, severity="permanent")
    first, again = mailgun(client, body), mailgun(client, body)
    assert first.status_code == again.status_code == 200
    assert (first.get_json()["new"], again.get_json()["repeats"]) == (1, 1)
    assert count(sql, "delivery_event") == 1


def test_sendgrid_duplicates_are_counted_once(client, sent, sql):
    mail_id = sent()
    event = sendgrid_event("delivered", ANN, mail_id)
    first = sendgrid(client, [event, event, event]).get_json()
    again = sendgrid(client, [event]).get_json()
    assert (first["new"], again["new"], again["repeats"]) == (1, 0, 1)
    assert count(sql, "delivery_event") == 1


def test_a_batch_is_stored_as_sent_whatever_its_strings_hold(client, sent, sql):
    mail_id = sent()
    odd = 'a "quoted" word, a back\\slash, {braces}, NULL, é, 😀'
    events = [
        sendgrid_event("bounce", ANN, mail_id, type="bounce", reason=odd, category=[odd, None]),
        sendgrid_event("deferred", ANN, mail_id, response="421 try later\nline\t2"),
        sendgrid_event("open", ANN, mail_id, useragent=odd, sg_event_id=f"key {odd}"),
    ]
    assert sendgrid(client, events).get_json()["new"] == 3
    rows = sql(
        "SELECT dedup_key, provider_event, recipient, reason, severity, payload "
        "FROM delivery_event ORDER BY id"
    )
    assert [row["payload"] for row in rows] == events
    assert [
        (row["dedup_key"], row["provider_event"], row["recipient"], row["reason"], row["severity"])
        for row in rows
    ] == [
        (events[0]["sg_event_id"], "bounce", ANN, odd, "permanent"),
        (events[1]["sg_event_id"], "deferred", ANN, "421 try later\nline\t2", None),
        (f"key {odd}", "open", ANN, None, None),
    ]
    assert sql("SELECT status, reason FROM recipient") == [{"status": "bounced", "reason": odd}]


def test_a_tampered_or_unsigned_sendgrid_batch_is_401(client, sent, sql):
    mail_id = sent()
    raw, headers = sendgrid_request([sendgrid_event("delivered", ANN, mail_id)])
    tampered = raw.replace(b"delivered", b"bounce\x20\x20\x20")
    assert sendgrid(client, [], raw=tampered, headers=headers).status_code == 401
    reserialized = json.dumps(json.loads(raw), indent=1).encode()  # same JSON, other bytes
    assert sendgrid(client, [], raw=reserialized, headers=headers).status_code == 401
    assert sendgrid(client, [], raw=raw, headers={}).status_code == 401
    other_key, _ = new_sendgrid_keys()
    assert (
        client.post(
            "/webhooks/sendgrid",
            data=raw,
            headers={
                **headers,
                SENDGRID_SIGNATURE: sendgrid_request([], other_key)[1][SENDGRID_SIGNATURE],
            },
        ).status_code
        == 401
    )
    assert count(sql, "delivery_event") == 0 and mail_of(client, mail_id)["status"] == "sent"
    assert sendgrid(client, [], raw=raw, headers=headers).status_code == 200  # the real one


@pytest.mark.parametrize("body", [{"event": "delivered"}, [{"event": "delivered"}], ["x"]])
def test_a_malformed_sendgrid_batch_is_400_and_stores_none_of_it(client, sent, sql, body):
    mail_id = sent()
    if isinstance(body, list):  # a good event, then a bad one: none of the batch is stored
        body = [sendgrid_event("delivered", ANN, mail_id), *body]
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time()))
    headers = {
        SENDGRID_TIMESTAMP: timestamp,
        SENDGRID_SIGNATURE: sendgrid_sign(SENDGRID_PRIVATE_KEY, timestamp, raw),
    }
    assert sendgrid(client, [], raw=raw, headers=headers).status_code == 400
    assert count(sql, "delivery_event") == 0 and mail_of(client, mail_id)["status"] == "sent"


def test_a_malformed_mailgun_body_is_400(client):
    assert (
        client.post(
            "/webhooks/mailgun", data=b"{not json", content_type="application/json"
        ).status_code
        == 400
    )
    body = mailgun_body("delivered", ANN)
    body["event-data"]["timestamp"] = "yesterday"
    assert mailgun(client, body).status_code == 400


def test_an_event_for_an_unknown_mail_is_200_and_logged(client, sql, caplog):
    caplog.set_level(logging.INFO, logger="mail_service.events")
    answer = mailgun(client, mailgun_body("delivered", ANN, mail_id=new_id()))
    assert answer.status_code == 200 and answer.get_json()["unmatched"] == 1
    assert count(sql, "delivery_event") == 0
    assert "for no known mail" in caplog.text


def test_an_endpoint_without_its_key_is_404(settings):
    app = create_app(
        {**settings, "MAILGUN_WEBHOOK_SIGNING_KEY": "", "SENDGRID_WEBHOOK_PUBLIC_KEY": ""}
    )
    client = app.test_client()
    assert client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN)).status_code == 404
    raw, headers = sendgrid_request([])
    assert client.post("/webhooks/sendgrid", data=raw, headers=headers).status_code == 404


def test_webhooks_need_no_api_key_and_work_in_protected_mode(client, sent, settings):
    remote = {"REMOTE_ADDR": "203.0.113.7"}
    mail_id = sent()
    assert client.get(f"/mail/{mail_id}", environ_base=remote).status_code == 401
    answer = client.post(
        "/webhooks/mailgun",
        environ_base=remote,
        json=mailgun_body("delivered", ANN, mail_id=mail_id),
    )
    assert answer.status_code == 200
    keyed = create_app({**settings, "API_KEYS": "secret-key"}).test_client()
    assert (
        keyed.post(
            "/webhooks/mailgun",
            environ_base=remote,
            json=mailgun_body("delivered", ANN, mail_id=new_id()),
        ).status_code
        == 200
    )
